# spargio — `make demo` and `make test` work on a fresh Debian machine as root.
#
#   make deps    Debian packages the build and the benchmarks need (only the missing ones)
#   make venv    .venv with the package installed (not editable: tests run the installed copy)
#   make test    the whole test suite, plus ruff and mypy
#   make demo    the mixed service (aiohttp on uvloop) under wrk: spargio vs aiofiles vs to_thread, nginx as anchor
#   make fs-demo spargio.fs against asyncio.to_thread and aiofiles, on asyncio and uvloop (no HTTP)
#   make soak    10^6 file ops + 10^5 boundary calls per loop and backend, sampled (RELIABILITY row 28)
#   make bench   the pyperf benchmark suite -> benches/results/{results.json,table.md,plot.png}
#   make dev     editable install for working on spargio itself

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q
APT_PACKAGES := liburing-dev pkg-config gcc python3-dev python3-venv fio wrk nginx-light
SOURCES := $(shell find spargio -name '*.py' -o -name '*.c') pyproject.toml setup.py
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: deps venv test lint demo fs-demo soak bench bench-quick dev clean

# policy-rc.d (exit 101) stops Debian from starting the system nginx on port 80 while it
# installs: the demo runs its own nginx on loopback and nothing else should listen.
deps:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  guard=""; if [ ! -e /usr/sbin/policy-rc.d ]; then guard=1; \
	    printf '#!/bin/sh\nexit 101\n' | $(SUDO) tee /usr/sbin/policy-rc.d >/dev/null; \
	    $(SUDO) chmod +x /usr/sbin/policy-rc.d; fi; \
	  $(SUDO) apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing >/dev/null; \
	  status=$$?; [ -n "$$guard" ] && $(SUDO) rm -f /usr/sbin/policy-rc.d; exit $$status; \
	fi

$(PY):
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "spargio needs Python 3.11+"'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip setuptools wheel cffi

$(VENV)/.installed: $(PY) $(SOURCES)
	rm -f spargio/native/_uring*.so
	$(PIP) install --no-build-isolation ".[test,bench,dev]"
	touch $@

venv: deps $(VENV)/.installed

lint: venv
	$(VENV)/bin/ruff check spargio tests benches examples
	$(VENV)/bin/ruff format --check spargio tests benches examples
	$(VENV)/bin/mypy

test: venv
	$(PY) -P -c 'import spargio, sys; print("testing", spargio.__file__, "backend:", spargio.backend_info().name)'
	$(VENV)/bin/pytest
	$(MAKE) --no-print-directory lint

demo: venv
	PYTHONPATH=examples $(PY) -P -m mixed_service.demo

fs-demo: venv
	$(PY) -P examples/fs_demo.py

soak: venv
	$(PY) -P benches/soak.py

bench: venv
	$(PY) -P benches/run.py

bench-quick: venv
	$(PY) -P benches/run.py --quick

dev: deps $(PY)
	$(PIP) install --no-build-isolation -e ".[test,bench,dev]"

clean:
	rm -rf $(VENV) build *.egg-info spargio/native/_uring*.so spargio/native/_uring.c
