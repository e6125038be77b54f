# Two commands matter: `make demo` and `make test`. Both set themselves up first.
# `make test-pythons` runs the tests on the oldest and newest supported Pythons too (CI does).
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.bootstrap-stamp
PYTHONS := 3.9 3.13

.PHONY: bootstrap demo test test-pythons test-wheel lint format types unit docs dist bench clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml scripts/bootstrap.sh
	bash scripts/bootstrap.sh
	touch $@

demo: $(STAMP)
	$(PY) -m awsiot_credentialhelper.emulator.demo

test: lint types docs unit

# The pytest suite (no coverage) in .venv-3.9 and .venv-3.13; $(STAMP) brings the system packages.
test-pythons: $(STAMP)
	bash scripts/test-pythons.sh $(PYTHONS)

# The documentation site, into site/, warnings as errors. mkdocs-material + mkdocstrings rather
# than Sphinx + furo + myst: the pages are already Markdown, one YAML file configures it, its
# search works offline, and mkdocstrings renders the Google-style docstrings as they are.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict --quiet --site-dir site

# The sdist (with tests and docs) and the wheel in dist/, checked by twine.
dist: $(STAMP)
	rm -rf dist
	$(PY) -m build --outdir dist .
	$(VENV)/bin/twine check --strict dist/*

# Installs the wheel from `make dist`, bare and with [emulator], into clean virtualenvs on the
# oldest and newest supported Pythons, and fetches credentials from the emulator with it.
test-wheel: dist
	bash scripts/test-wheel.sh $(PYTHONS)

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
	$(PY) bench/aio.py
	$(PY) bench/fleet.py
	$(PY) bench/fleet.py --no-jitter
	$(PY) bench/emulator.py
	$(PY) bench/cli_startup.py
	$(PY) bench/serve.py
	$(PY) bench/serve.py --baseline

clean:
	rm -rf $(VENV) $(addprefix .venv-,$(PYTHONS)) .mypy_cache .ruff_cache .coverage htmlcov site dist build tests/docs/js/node_modules
