# One entry point for people and CI. Every target creates the virtual environment first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed

.PHONY: install run test fuzz lint bench screenshots serve clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	# The CPU build of torch first: an unpinned torch would pull a multi-GB CUDA build.
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## The main job on the embedded default: store, check and show the cache, then open the panel.
run: $(STAMP)
	$(VENV)/bin/semcache-tui demo
	@if [ -t 0 ] && [ -t 1 ]; then $(VENV)/bin/semcache-tui; else echo "(no terminal: run .venv/bin/semcache-tui to open the control panel)"; fi

test: $(STAMP)
	$(VENV)/bin/pytest -q

## The API fuzzed from its OpenAPI schema on both stores (also part of `test`); more examples: FUZZ_EXAMPLES=200.
fuzz: $(STAMP)
	SEMCACHE_FUZZ_EXAMPLES=$(or $(FUZZ_EXAMPLES),25) $(VENV)/bin/pytest -q tests/test_fuzz_api.py

lint: $(STAMP)
	$(VENV)/bin/ruff check engine semcache_tui tests bench
	$(VENV)/bin/ruff format --check engine semcache_tui tests bench
	$(VENV)/bin/mypy engine semcache_tui

## Benchmarks print figures (they assert nothing). Each takes a few minutes on 2 cores.
bench: $(STAMP)
	$(PIP) install --quiet -e '.[dev,bench]'
	$(PY) bench/local_store.py
	$(PY) bench/redis_store.py
	$(PY) -m bench.embedder
	$(PY) -m bench.server
	$(PY) -m bench.proxy
	$(PY) bench/startup.py

screenshots: $(STAMP)
	$(PY) -m semcache_tui.screenshots screenshots

serve: $(STAMP)
	$(VENV)/bin/semcache-tui --serve

clean:
	rm -rf $(VENV) .pytest_cache
