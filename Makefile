# The README's two commands live here: `make pipeline` and `make test`.
# Everything is installed into .venv by this file; nothing needs root except the optional
# Debian packages that .ci/run adds (arm-none-eabi-gcc).
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU build of torch: a plain `pip install torch` pulls a multi-GB CUDA build on Linux.
# Override on a GPU machine, e.g. `make setup TORCH=torch`.
TORCH ?= torch==2.13.0
PYTEST_ARGS ?= -m "not slow" -n 2

.PHONY: setup pipeline test test-all bench clean

# --no-compile: pip's byte-compiling of every installed module (torch's thousands) made the
# set-up 1.32x slower (bench/setup_speed.sh); Python compiles what a run imports on first use.
$(BIN)/tinykws: pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q --no-compile "$(TORCH)"
	$(BIN)/pip install -q --no-compile -e ".[all]"
	touch $(BIN)/tinykws

setup: $(BIN)/tinykws

pipeline: setup
	$(BIN)/tinykws pipeline --out runs/default

# The venv's bin goes first on PATH so tests that call the `tinykws` command find it.
test: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest $(PYTEST_ARGS)

test-all: setup
	PATH="$(abspath $(BIN)):$$PATH" $(BIN)/python -m pytest -n 2

clean:
	rm -rf runs build .pytest_cache
