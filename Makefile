# Two commands on a fresh clone: `make demo` and `make test`. Everything else comes from PyPI.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e '.[dev,test,report]'
	touch $(STAMP)

demo: venv
	$(VENV)/bin/streamsense dev

CLUSTER_TIER = tests/integration/test_fraud_processor.py tests/integration/test_reco_processor.py \
	tests/integration/test_checkpoints.py tests/integration/test_redis_trust.py \
	tests/integration/test_reco_path.py tests/integration/test_experiment_arms.py

test: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest
	SS_TEST_REDIS=cluster $(VENV)/bin/python -m pytest $(CLUSTER_TIER)

# Pure code only: doctests and unit tests, no broker, no Redis, no long model-quality runs; property tests
# explore an eighth of their examples (tests/budget.py).
test-fast: venv
	$(VENV)/bin/ruff check .
	SS_TEST_FAST=1 $(VENV)/bin/python -m pytest -m "not integration and not slow"

clean:
	rm -rf $(VENV) build *.egg-info .streamsense-data .ruff_cache
