# Quick start (fresh machine):  make repro   |   make test
PY ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1
export PATH := $(BIN):$(PATH)

.PHONY: install repro test smoke bench manifests site clean

install: $(VENV)/.installed

# exact pins from requirements-lock.txt (torch 2.14.1 / torchvision 0.29.1, CPU-capable), then the package. uv
# installs the same pinned set as pip, in parallel, with its bytecode compiled as pip does (where
# PYTHONDONTWRITEBYTECODE=1 is set, as on CI, nothing else writes it and every process compiled what it imported:
# a fresh-clone test suite took 1083 s instead of 464): 76 s instead of pip's 119-142 s, cold caches, 2 cores
$(VENV)/.installed: pyproject.toml requirements-lock.txt
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q uv==0.13.9
	$(BIN)/uv pip install --python $(BIN)/python --compile-bytecode -q -r requirements-lock.txt
	$(BIN)/python -m pip install -q --no-deps --no-build-isolation -e .
	# JupyterLab's settings for this environment: never fetch news or check for updates (offline; no "get notified
	# about official Jupyter news?" prompt)
	mkdir -p $(VENV)/share/jupyter/lab/settings
	printf '%s\n' '{"@jupyterlab/apputils-extension:notification": {"fetchNews": "false", "checkForUpdates": false}}' \
	  > $(VENV)/share/jupyter/lab/settings/overrides.json
	touch $@

repro: install
	dvc repro

test: install
	bash scripts/test.sh

# the smoke profile (random weights: checks the code path, not results) through `cli profile`, in .smoke/
smoke: install
	python scripts/smoke.py

# the static site of the rendered study (docs/site/index.html) from what `make repro` rendered in results/
site: install
	python -m nriqa_lib.pipeline.site

bench: install
	python -m nriqa_lib.bench

# rebuild data_manifests/ from the label tables in ../shared (byte-identical when nothing changed)
manifests: install
	python -m nriqa_lib.data.build_manifests --labels ../shared/labels --clive ../shared/datasets/clive

clean:
	rm -rf $(VENV)
