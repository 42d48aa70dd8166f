# Two commands for a newcomer: `make demo` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test test-tools demo bench clean dashboard-vendor

install: $(STAMP)

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# Re-installs only when the declared dependencies or the C fold change (it is compiled at install).
$(STAMP): pyproject.toml setup.py projections/_fold.c | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

# Four processes on two cores: most of the suite's time is spent waiting for brokers, workers and
# group joins, not computing. A test file runs whole in one process (its shared broker with it).
# The tools pip cannot install (apt: Chromium, docker-compose, promtool) install beside journey's venv.
test:
	@$(MAKE) --no-print-directory -j2 install test-tools
	$(BIN)/python -m pytest -n 4 --dist loadfile

test-tools:
	@scripts/ensure-test-tools

demo: install
	$(BIN)/journey demo

bench: install
	$(BIN)/python -m bench.run

# The dashboard's front-end libraries from the npm registry (committed; only to change a version).
dashboard-vendor:
	scripts/vendor-dashboard

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .hypothesis projections/*.so
