# Two commands for a fresh machine (see README.md):  make demo   and   make test
PYTHON  ?= python3.11
VENV    ?= .venv
EXTRAS  ?= dev,s3,xgboost,torch,onnx,linear-learner
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

# The Docker engine serves tests/images (they build the images once per run, bootstrapping the
# Debian base when no registry has it); docker-down stops it only if docker-up started it.
# Without an engine the image tests skip, or fail when SAGEDOCK_REQUIRE_DOCKER is set (.ci/run).
test: venv system-deps
	scripts/docker-up || echo "make test: no Docker engine could start; tests/images will skip" \
	    "(they fail instead where SAGEDOCK_REQUIRE_DOCKER is set: .ci/run sets it)"
	status=0; $(PY) -m pytest $(PYTEST_ARGS) || status=$$?; scripts/docker-down; exit $$status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	PYTHON=$(PY) scripts/typecheck

format: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache .mypy_cache
