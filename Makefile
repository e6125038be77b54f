# Two commands matter: `make demo` and `make test`. Both set themselves up first.
# `make test-pythons` runs the tests on the oldest and newest supported Pythons too (CI does).
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.bootstrap-stamp
PYTHONS := 3.9 3.13

.PHONY: bootstrap demo test test-pythons lint format types unit bench clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

demo: $(STAMP)
	$(PY) -m awsiot_credentialhelper.emulator.demo

test: lint types unit

# The pytest suite (no coverage) in .venv-3.9 and .venv-3.13; $(STAMP) brings the system packages.
test-pythons: $(STAMP)
	bash scripts/test-pythons.sh $(PYTHONS)

lint: $(STAMP)
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

types: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	$(PY) -m pytest -n 2 --cov --cov-report=term

bench: $(STAMP)
	$(PY) bench/fetch.py
	$(PY) bench/fetch.py --tls12
	$(PY) bench/refresh.py
	$(PY) bench/fleet.py
	$(PY) bench/fleet.py --no-jitter
	$(PY) bench/emulator.py
	$(PY) bench/cli_startup.py
	$(PY) bench/serve.py
	$(PY) bench/serve.py --baseline

clean:
	rm -rf $(VENV) $(addprefix .venv-,$(PYTHONS)) .mypy_cache .ruff_cache .coverage htmlcov
