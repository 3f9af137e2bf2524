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
# The plugin distributions of this repository (plugins/*/), installed into
# .venv like any third-party plugin; `make test` runs each one's own tests
# from its own directory, with its own pytest configuration.
PLUGINS      := $(patsubst %/pyproject.toml,%,$(wildcard plugins/*/pyproject.toml))
PLUGIN_STAMP := $(VENV)/.purenng-plugins-installed

.PHONY: demo test lint typecheck check bench clean nngssl fuzz soak

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

$(PLUGIN_STAMP): $(STAMP) $(addsuffix /pyproject.toml,$(PLUGINS))
	@for p in $(PLUGINS); do \
		echo "installing $$p"; \
		$(BIN)/python -m pip install --quiet -e "$$p[test]" || exit 1; \
	done
	@touch $(PLUGIN_STAMP)

nngssl: $(NNGSSL_STAMP)

demo: $(STAMP)
	$(BIN)/purenng demo

test: $(STAMP) $(PLUGIN_STAMP) $(NNGSSL_STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)
	@for p in $(PLUGINS); do \
		echo "== tests of $$p"; \
		(cd $$p && $(CURDIR)/$(BIN)/python -m pytest $(PYTEST_ARGS)) || exit 1; \
	done

lint: $(STAMP)
	$(BIN)/ruff check src tests fuzz
	$(BIN)/ruff format --check src tests fuzz

# mypy --strict over src and tests (the files of [tool.mypy] in pyproject.toml),
# then pyright's check that the public API is completely typed (it finds the
# editable install through the venv's python, hence the PATH).
typecheck: $(STAMP)
	$(BIN)/mypy
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/pyright --verifytypes purenng --ignoreexternal

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

# Soak (docs/soak.md): mixed traffic over every transport with peer kills and
# redials; fails on a loss on a reliable path, a hang or unbounded growth.
# SOAK_RESTART: seconds between two disturbances of one transport.
SOAK_MINUTES    ?= 30
SOAK_TRANSPORTS ?= tcp,ipc,inproc,tls,ws,wss
SOAK_RESTART    ?= 60
SOAK_RATE       ?= 1
SOAK_OUT        ?= build/soak
SOAK_ARGS       ?=
soak: $(STAMP)
	$(BIN)/python -m purenng.soak --minutes $(SOAK_MINUTES) --transports $(SOAK_TRANSPORTS) \
		--restart-every $(SOAK_RESTART) --rate $(SOAK_RATE) \
		--json $(SOAK_OUT)/soak.json --plot $(SOAK_OUT)/soak.png $(SOAK_ARGS)

clean:
	rm -rf $(VENV) $(NNGSSL) .pytest_cache .mypy_cache .ruff_cache build dist
