# Two commands for a fresh machine (see README.md):  make demo   and   make test
PYTHON  ?= python3.11
VENV    ?= .venv
EXTRAS  ?= dev,s3,xgboost,torch,onnx
PY      := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: demo test lint format venv system-deps clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	touch $@

system-deps:
	scripts/system-deps

demo: venv system-deps
	$(VENV)/bin/sagedock demo

test: venv system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
