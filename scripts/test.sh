#!/usr/bin/env bash
# The test command (README, CI): the whole suite, offline, on 2 pytest-xdist workers (the machine's 2 cores; the
# tests that share a module fixture stay on one worker: their xdist_group). NRIQA_TEST_WORKERS=0 runs it in one
# process. pytest's exit 5 (no test collected) is a failure.
set -uo pipefail
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
workers="${NRIQA_TEST_WORKERS:-2}"
if [ "$workers" = "0" ]; then
  python -m pytest -q "$@"
else
  python -m pytest -q -n "$workers" --dist loadgroup "$@"
fi
rc=$?
if [ "$rc" -eq 5 ]; then echo "error: pytest collected no tests" >&2; exit 1; fi
exit "$rc"
