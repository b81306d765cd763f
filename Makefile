# `make run` and `make test` set everything up on a fresh machine (Python 3.12+ venv) and go.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell md5sum pyproject.toml 2>/dev/null | cut -c1-8)
export NUMBA_CACHE_DIR ?= $(CURDIR)/.numba_cache
# uv installs without compiling bytecode (compiling all ~10,000 modules of the venv would
# double the set-up); Python then writes each .pyc on first import, once. A shell that sets
# PYTHONDONTWRITEBYTECODE would instead recompile every module in every process (a 3 s
# import becomes 9 s), so make's commands run without it.
unexport PYTHONDONTWRITEBYTECODE
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

# The venv gets the project (editable) and its dev extras, whatever pyproject.toml lists,
# from uv: parallel downloads and installs, 50-80 s from a cold cache on a busy 2-core
# machine where pip takes 200 s. uv comes from the venv itself (installed there with pip on
# the first set-up) or from PATH. If uv cannot be had or fails, plain pip does the install.
# MARKET_INSTALLER=pip forces pip (`make setup MARKET_INSTALLER=pip`, or in the environment).
# A change to pyproject.toml re-installs (the stamp holds its hash).
MARKET_INSTALLER ?= uv

$(STAMP): pyproject.toml
	@set -e; \
	if [ ! -x $(PY) ]; then \
	  py=$$($(find-python)) || true; \
	  if [ -z "$$py" ]; then echo "error: Python 3.12+ is required (Mesa 3.5). Install it, e.g. 'pyenv install 3.12' or 'apt-get install python3.12 python3.12-venv', or set PYTHON=/path/to/python3.12" >&2; exit 1; fi; \
	  echo "creating $(VENV) with $$py"; "$$py" -m venv $(VENV); \
	fi; \
	uv=; \
	if [ "$(MARKET_INSTALLER)" != pip ]; then \
	  if [ -x $(VENV)/bin/uv ]; then uv=$(VENV)/bin/uv; else uv=$$(command -v uv || true); fi; \
	  if [ -z "$$uv" ] && $(PY) -m pip install -q uv 2>/dev/null; then uv=$(VENV)/bin/uv; fi; \
	fi; \
	if [ -n "$$uv" ] && echo "installing the project and its dev tools with $$uv" \
	   && "$$uv" pip install -q --python $(PY) -e '.[dev]'; then :; \
	else \
	  [ "$(MARKET_INSTALLER)" = pip ] || echo "uv unavailable or failed: installing with pip instead" >&2; \
	  echo "installing the project and its dev tools with pip"; \
	  $(PY) -m pip install -q --upgrade pip; \
	  $(PY) -m pip install -q -e '.[dev]'; \
	fi; \
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
