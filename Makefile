# `make run` and `make test` set everything up on a fresh machine (Python 3.12+ venv) and go.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml 2>/dev/null | cut -c1-8)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
OUT ?= runs/default
WORKERS ?= 2

# First interpreter >= 3.12 among PATH names and pyenv versions.
find-python = for c in "$$PYTHON" python3.13 python3.12 python3 \
	  $$(ls -d $$(pyenv root 2>/dev/null)/versions/3.1[2-9]*/bin/python3 2>/dev/null) \
	  /usr/local/bin/python3.1[2-9] /usr/bin/python3.1[2-9]; do \
	  [ -n "$$c" ] && "$$c" -c 'import sys; sys.exit(sys.version_info < (3, 12))' >/dev/null 2>&1 \
	  && { echo "$$c"; break; }; done

.PHONY: setup run test lint bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml
	@py=$$($(find-python)); \
	if [ -z "$$py" ]; then echo "error: Python 3.12+ is required (Mesa 3.5). Install it, e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv', or set PYTHON=/path/to/python3.12" >&2; exit 1; fi; \
	echo "using $$py"; \
	[ -x $(PY) ] || "$$py" -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*; touch $@

run: setup
	$(VENV)/bin/market run scenarios/default.toml --out $(OUT) --workers $(WORKERS)

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/python -m pytest

lint: setup
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

bench: setup
	$(VENV)/bin/market bench --requests 3553 --resources 888 --json

clean:
	rm -rf $(VENV) .numba_cache runs
