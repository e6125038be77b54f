# Two commands matter: `make demo` and `make test`. Both set themselves up first.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bootstrap-stamp

.PHONY: bootstrap demo test lint format types unit bench clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

demo: $(STAMP)
	$(PY) -m awsiot_credentialhelper.emulator.demo

test: lint types unit

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
	$(PY) bench/emulator.py
	$(PY) bench/cli_startup.py
	$(PY) bench/serve.py
	$(PY) bench/serve.py --baseline

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .coverage htmlcov
