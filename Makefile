# purenng: `make demo` and `make test` work on a fresh machine with Python 3.11+.
# Each target bootstraps .venv (created if missing, reinstalled when
# pyproject.toml changes).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.purenng-installed
PYTEST_ARGS ?=
# nng-ssl (NNG 2.0 with Mbed TLS, the TLS interop peer) installs the same `nng`
# module as the `nng` package, so it gets a venv of its own.
NNGSSL       := .venv-nngssl
NNGSSL_STAMP := $(NNGSSL)/.purenng-installed

.PHONY: demo test lint typecheck check bench clean nngssl fuzz

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

$(NNGSSL_STAMP):
	@test -x $(NNGSSL)/bin/python || $(PYTHON) -m venv $(NNGSSL)
	$(NNGSSL)/bin/python -m pip install --quiet nng-ssl==0.2.0 \
		&& touch $(NNGSSL_STAMP) \
		|| echo "warning: nng-ssl not installed; its TLS interop tests will skip (or fail with PURENNG_REQUIRE_PEERS)"

nngssl: $(NNGSSL_STAMP)

demo: $(STAMP)
	$(BIN)/purenng demo

test: $(STAMP) $(NNGSSL_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

# Fuzzing (docs/fuzzing.md): atheris when installed (pip install -e '.[fuzz]'),
# else the plain seeded mutation driver.  FUZZ_INPUTS is the total over all
# targets; FUZZ_TIME caps each target's seconds (0: no cap).
FUZZ_INPUTS ?= 10000000
FUZZ_TIME   ?= 0
FUZZ_ENGINE ?= auto
FUZZ_ARGS   ?=
fuzz: $(STAMP)
	$(BIN)/python -m fuzz.run --inputs $(FUZZ_INPUTS) --time $(FUZZ_TIME) --engine $(FUZZ_ENGINE) $(FUZZ_ARGS)

bench: $(STAMP)
	$(BIN)/purenng bench

clean:
	rm -rf $(VENV) $(NNGSSL) .pytest_cache .mypy_cache .ruff_cache build dist
