#!/usr/bin/env bash
# The test command (README, CI): the whole suite, offline. pytest's exit 5 (no test collected) is a failure.
set -uo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
python -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
