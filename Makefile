# Two entry points for a new machine: `make demo` and `make test`. Both create the virtual environment.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint

venv: $(STAMP)

# torch==2.13.0 is taken from a local wheel when the machine has one (--no-index: never the multi-GB CUDA
# build from the registry); elsewhere the package's own `torch>=2.1` requirement picks a build.
$(STAMP): setup.py
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	-$(PY) -m pip install -q --no-index torch==2.13.0
	$(PY) -m pip install -q -e ".[onnx,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/vqhps-ros demo

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
