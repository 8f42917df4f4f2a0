# The two commands: `make demo` (the whole pipeline on local simulators) and `make test` (everything CI runs).
# Both bootstrap on their own (virtualenv, Python packages, Debian's mosquitto and influxdb).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bootstrapped
ARGS ?=

.PHONY: demo test bootstrap lint typecheck imports contract-docs pytest bench clean

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

bench: bootstrap
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
