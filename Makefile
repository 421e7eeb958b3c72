# The README's commands. `make setup` builds the environment everything else uses.
VENV ?= .venv
PYTHON ?= python3
# CPU wheel on CPU machines; on a GPU cluster: make setup TORCH="torch==<your CUDA build>"
TORCH ?= torch==2.13.0
PY := $(VENV)/bin/python

.PHONY: setup test clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH)"
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

test: setup
	$(PY) -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
