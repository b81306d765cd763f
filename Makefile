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

# `make bench-authors`: our MOHAF round against the authors' own package (PyPI mohaf 0.2.0,
# the paper's implementation) on the same instance, side by side: `market bench --authors`
# hands the benched market to their MOHAFAuction in a subprocess of $(AUTHORS_VENV)'s Python
# and prints both times and the ratio as JSON. Their package is installed apart, in its own
# venv (never in $(VENV), never in pyproject.toml): it is measured as published, unmodified,
# with the dependencies pip resolves for it, and the project does not depend on it. The venv
# uses the same interpreter search as ours (3.12+; the package itself needs 3.8+), so both
# sides run on the same Python. AUTHORS_RUNS: their auction is run this many times (a fresh
# process each, 30-80 s each at 3553 x 888 on 2 busy cores); the median is reported.
AUTHORS_VENV ?= .venv-authors
AUTHORS_RUNS ?= 3
AUTHORS_STAMP := $(AUTHORS_VENV)/.installed-mohaf-0.2.0

$(AUTHORS_STAMP):
	@set -e; \
	if [ ! -x $(AUTHORS_VENV)/bin/python ]; then \
	  py=$$($(find-python)) || true; \
	  if [ -z "$$py" ]; then echo "error: Python 3.12+ is required for $(AUTHORS_VENV) (the same search as $(VENV)); set PYTHON=/path/to/python3" >&2; exit 1; fi; \
	  echo "creating $(AUTHORS_VENV) with $$py"; "$$py" -m venv $(AUTHORS_VENV); \
	fi; \
	echo "installing mohaf==0.2.0 (the authors' package) and its dependencies in $(AUTHORS_VENV) with pip"; \
	$(AUTHORS_VENV)/bin/python -m pip install -q --disable-pip-version-check mohaf==0.2.0; \
	rm -f $(AUTHORS_VENV)/.installed-*; touch $@

.PHONY: bench-authors
bench-authors: setup $(AUTHORS_STAMP)
	$(VENV)/bin/market bench --requests 3553 --resources 888 --json \
	  --authors $(AUTHORS_VENV)/bin/python --authors-runs $(AUTHORS_RUNS)
