# The two commands a newcomer needs: `make demo` and `make test`. Everything else is here for them.
PYTHON ?= python3
UV_VERSION := 0.13.8
UV := .tools/bin/uv
VENV := .venv
export UV_PYTHON_DOWNLOADS := never
export UV_PROJECT_ENVIRONMENT := $(VENV)

.PHONY: demo test lint format install browser

## Everything: what the portal runs on and the `dev` group (pytest, Playwright, schemathesis, ruff).
install: $(VENV)/.installed

$(UV):
	$(PYTHON) -m venv .tools
	.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --python $(PYTHON)
	touch $@ $(VENV)/.installed-runtime

# Only what the portal runs on (no `dev` group); --inexact keeps the test tools of an earlier
# `make install` instead of removing them.
$(VENV)/.installed-runtime: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --no-dev --inexact --python $(PYTHON)
	touch $@

## Run the demo on the embedded default (SQLite, in-process tasks) at http://127.0.0.1:$${PORT:-8000}/
demo: $(VENV)/.installed-runtime
	$(VENV)/bin/python manage.py demo

## Run the whole test suite (CI=true: PostgreSQL, Redis and the browser are required).
test: install browser
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

## Debian's chromium for the browser tests (installed when missing and we may).
browser:
	@scripts/ensure-chromium

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .
