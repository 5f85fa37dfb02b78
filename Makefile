# The two commands: `make demo` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
REF_VENV ?= .venv-ref
PY := $(abspath $(VENV))/bin/python
CARGO_DIR := rust_ext
export SPARK_LOCAL_IP := 127.0.0.1
export DOLMA_REFERENCE_PYTHON ?= $(abspath $(REF_VENV))/bin/python

.PHONY: all venv build demo test test-rust test-python lint format reference datatrove compat bench clean

all: build

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "maturin>=1.7,<2"
	touch $@

venv: $(VENV)/.created

# Builds the Rust extension (release) and installs the packages in editable mode, with dev extras.
build: venv
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --extras dev -q

# The reference toolkit (AllenAI dolma 1.2.1) in its own virtual environment, used only as a test oracle.
$(REF_VENV)/.created:
	$(PYTHON) -m venv $(REF_VENV)
	$(REF_VENV)/bin/python -m pip install -q --upgrade pip
	$(REF_VENV)/bin/python -m pip install -q --only-binary=:all: \
		dolma==1.2.1 boto3==1.28.17 botocore==1.31.17 aiobotocore==2.5.4
	touch $@

# The reference's code taggers need its `code` extras (detect-secrets etc.); a separate stamp so existing
# reference venvs get them too.
$(REF_VENV)/.code-extras: $(REF_VENV)/.created
	$(REF_VENV)/bin/python -m pip install -q --only-binary=:all: detect-secrets==1.4.0 beautifulsoup4 pygments
	touch $@

reference: $(REF_VENV)/.created $(REF_VENV)/.code-extras

# datatrove (benchmarks only), in its own virtual environment, with just what its JSONL reader/writer and the
# fastText/Gopher/C4 filters import (its extras pull in much more).
DT_VENV ?= .venv-datatrove
BENCH_SIZE_MB ?= 300
BENCH_REPEATS ?= 3
# Optional: BENCH_STAGES=tag,dedupe (stage plugins to run), BENCH_ONLY=gopher (cases whose name contains it),
# BENCH_INPUT_SCALE=2 (multiplies the per-case input caps; 0 = whole corpus everywhere). See README "Benchmarks".
export BENCH_STAGES BENCH_ONLY BENCH_INPUT_SCALE
$(DT_VENV)/.created:
	$(PYTHON) -m venv $(DT_VENV)
	$(DT_VENV)/bin/python -m pip install -q --upgrade pip
	$(DT_VENV)/bin/python -m pip install -q datatrove==0.10.1 orjson regex fasteners requests aiohttp \
		fasttext-numpy2-wheel
	touch $@

# datatrove's Gopher and C4 filters split English words with spacy (a separate stamp so that existing
# datatrove environments get it too).
$(DT_VENV)/.spacy: $(DT_VENV)/.created
	$(DT_VENV)/bin/python -m pip install -q spacy==3.8.18
	touch $@

datatrove: $(DT_VENV)/.created $(DT_VENV)/.spacy

# Benchmarks (not part of `make test`): builds the corpus if missing (apt-get download of its Debian sources),
# runs every stage for this project, the reference and datatrove, and writes the README table.
bench: build reference datatrove
	$(VENV)/bin/python -m benchmarks.run --fetch --readme --size-mb $(BENCH_SIZE_MB) --repeats $(BENCH_REPEATS)

demo: build
	$(VENV)/bin/python -m dolma.demo

test: build reference lint test-rust test-python

test-rust:
	cd $(CARGO_DIR) && cargo test --workspace --exclude dolma-py -q

test-python: build reference
	$(VENV)/bin/python -m pytest -q tests

lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	cd $(CARGO_DIR) && cargo fmt --all -- --check
	cd $(CARGO_DIR) && cargo clippy --workspace --all-targets -q -- -D warnings

format: build
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	cd $(CARGO_DIR) && cargo fmt --all

compat: build reference
	$(VENV)/bin/python -m pytest -q -m reference tests

clean:
	rm -rf $(VENV) $(REF_VENV) $(DT_VENV) $(CARGO_DIR)/target demo-output
