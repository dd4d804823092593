# perfprobe developer entry points. `make demo` and `make test` do all set-up on a fresh machine.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
NP2_VENV ?= .venv-numpy2
NP2_STAMP := $(NP2_VENV)/.installed
# KServe's ModelServer and Seldon MLServer, test-only, each in its own environment (both need numpy 2)
OTHER_SERVERS := kserve mlserver
OTHER_STAMPS := $(foreach kind,$(OTHER_SERVERS),.venv-$(kind)/.installed)

.PHONY: setup demo test lint protos docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[server,cuda,cluster,dev]'
	touch $(STAMP)

# a second environment with numpy 2 and no server wheel (nvidia-pytriton pins numpy<2)
$(NP2_STAMP): pyproject.toml
	$(PYTHON) -m venv $(NP2_VENV)
	$(NP2_VENV)/bin/pip install --quiet --upgrade pip
	$(NP2_VENV)/bin/pip install --quiet -e '.[dev,cuda]' 'numpy>=2' pillow
	touch $(NP2_STAMP)

.venv-%/.installed: tests/other_servers/requirements-%.txt
	$(PYTHON) -m venv .venv-$*
	.venv-$*/bin/pip install --quiet --upgrade pip
	.venv-$*/bin/pip install --quiet -r $<
	touch $@

# AIPerf, for benchmarks/vs_aiperf.py only (its pins are its own)
.venv-aiperf/.installed: benchmarks/requirements-aiperf.txt
	$(PYTHON) -m venv .venv-aiperf
	.venv-aiperf/bin/pip install --quiet --upgrade pip
	.venv-aiperf/bin/pip install --quiet -r $<
	touch $@

setup: $(STAMP)

# the main job: a concurrency sweep of ResNet-50 on the embedded real Triton server
demo: $(STAMP)
	$(BIN)/perfprobe sweep --serve -m resnet50 --concurrency 1:4:x2 --measurement-interval 3000

test: $(STAMP) $(NP2_STAMP) $(OTHER_STAMPS)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check perfprobe tests protos
	@# both suites run, and both results show, even when the first fails; make fails if either did
	status=0; $(BIN)/python -m pytest -q -ra || status=$$?; \
	tests/numpy2_suite.sh $(VENV) $(NP2_VENV) || status=$$?; \
	exit $$status

protos: $(STAMP)
	$(BIN)/python protos/generate.py

clean:
	rm -rf $(VENV) $(NP2_VENV) $(foreach kind,$(OTHER_SERVERS),.venv-$(kind)) .pytest_cache .ruff_cache

# docs/cli.md from the option declarations and the figure table (tests/test_docs.py checks it is current)
docs: $(STAMP)
	$(BIN)/python -m perfprobe.commands.reference > docs/cli.md
