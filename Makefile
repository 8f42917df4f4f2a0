# The two commands: `make demo` (the whole pipeline on local simulators) and `make test` (everything CI runs).
# Both bootstrap on their own (virtualenv, Python packages, Debian's mosquitto and influxdb).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped
ARGS ?=

.PHONY: demo test bootstrap lint typecheck imports contract-docs pytest bench clean release

$(STAMP): pyproject.toml scripts/bootstrap.sh
	VENV=$(VENV) scripts/bootstrap.sh
	touch $(STAMP)

bootstrap: $(STAMP)
	@VENV=$(VENV) scripts/bootstrap.sh >/dev/null

demo: bootstrap
	$(VENV)/bin/gridedge demo $(ARGS)

test: bootstrap lint typecheck imports contract-docs pytest

lint:
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck:
	$(PY) -m mypy

imports:
	$(VENV)/bin/lint-imports

contract-docs:
	$(PY) tools/gen_contract_docs.py --check

# pytest exits 5 when it collected no test: that is a failure here, not a pass. Two workers (the machines
# have 2 cores; most integration tests wait on wire time, brokers and timers), a test file per worker.
PYTEST_WORKERS ?= 2
pytest:
	@$(PY) -m pytest -q -p no:cacheprovider -n $(PYTEST_WORKERS) --dist loadfile $(ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

# The field artifact (README "Install on a Pi"): dist/gridedge-<version>-<platform>.tar.gz, the gridedge wheel
# and a wheel of every runtime dependency for the target, install.sh and the systemd unit; installed
# offline on the Pi, and what a signed `update` command installs. RELEASE_PLATFORM=native: this machine.
RELEASE_PLATFORM ?= manylinux_2_36_aarch64
release: bootstrap
	$(PY) scripts/build_release.py --out dist --platform $(RELEASE_PLATFORM)

bench: bootstrap
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
