# perfprobe developer entry points. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test lint protos clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,cuda,dev]'
	touch $(STAMP)

setup: $(STAMP)

# the main job against the embedded real Triton server
demo: $(STAMP)
	$(BIN)/perfprobe infer --serve -m resnet50 -c 5 -s INCEPTION docs/sample.jpg
	$(BIN)/perfprobe infer --serve -m simple -i grpc

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check perfprobe tests protos
	$(BIN)/python -m pytest -q -ra

protos: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
