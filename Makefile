# Two commands on a fresh clone: `make demo` and `make test`. Everything else comes from PyPI.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: venv demo test clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,test]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/streamsense dev

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

clean:
	rm -rf $(VENV) build *.egg-info .streamsense-data .ruff_cache
