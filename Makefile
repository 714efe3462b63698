# Two commands on a fresh clone: `make demo` and `make test`. Everything else comes from PyPI.
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: venv demo test test-fast clean lock

venv: $(STAMP)

# Every dependency, direct or not, at the version requirements.lock names (the image uses it too).
$(STAMP): pyproject.toml requirements.lock
	test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -c requirements.lock -e '.[dev,test,report]'
	touch $(STAMP)

# After a change to pyproject.toml's dependencies: compile the lock again (pip-tools, in its own venv).
lock:
	test -x .lock-venv/bin/pip-compile || ($(PYTHON) -m venv .lock-venv && .lock-venv/bin/pip install --quiet pip-tools==7.6.2)
	.lock-venv/bin/pip-compile --quiet --all-extras --strip-extras --no-emit-index-url --no-emit-find-links \
		--no-emit-trusted-host --allow-unsafe --output-file requirements.lock pyproject.toml

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
	rm -rf $(VENV) .lock-venv build *.egg-info .streamsense-data .ruff_cache
