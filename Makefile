# The two commands: `make demo` and `make test`. Both set everything up on a fresh clone.
PYTHON ?= python3
VENV ?= .venv
REF_VENV ?= .venv-ref
PY := $(abspath $(VENV))/bin/python
CARGO_DIR := rust_ext
export SPARK_LOCAL_IP := 127.0.0.1
export DOLMA_REFERENCE_PYTHON ?= $(abspath $(REF_VENV))/bin/python
# Python writes its bytecode caches (__pycache__/, ignored by git) as it does by default: the suite starts many
# short `dolma` processes, and without caches each compiles the toolkit's modules again (~0.2 s of CPU each; the
# process-heavy test files took 17 % longer) when the environment sets PYTHONDONTWRITEBYTECODE.
unexport PYTHONDONTWRITEBYTECODE

LOCKS := .ci/locks
# Every Python package is installed from a committed lock with hashes (exact versions, verified downloads), by uv
# (itself pinned in the dev lock and installed by pip first): the dev environment took pip 2 minutes on one core
# (unpacking, compiling every module), uv seconds from its cache (modules are compiled when first imported).
UV := $(abspath $(VENV))/bin/uv
UV_LOCKED = $(UV) pip install -q --require-hashes --no-deps --python

.PHONY: all venv build demo test test-fast test-local test-rust rust-prebuild test-python lint format reference profanity \
	datatrove compat bench clean lock lock-upgrade faults golden FORCE

all: build

$(VENV)/.created: $(LOCKS)/dev.txt
	$(PYTHON) -m venv $(VENV)
	awk '/^uv==/ {keep = 1; print; next} keep && /^ / {print; next} {keep = 0}' $(LOCKS)/dev.txt > $(VENV)/uv-lock.txt
	$(PY) -m pip install -q --disable-pip-version-check --require-hashes --no-deps -r $(VENV)/uv-lock.txt
	$(UV_LOCKED) $(PY) -r $(LOCKS)/dev.txt
	touch $@

venv: $(VENV)/.created

# Builds the Rust extension (release) and installs the packages in editable mode (their dependencies, dev
# tools included, are already installed from the lock, so maturin finds them satisfied). Done again only when a
# file under rust_ext/ (its target/ aside), pyproject.toml or the venv changed, or the module is missing: `make test`
# after `make build` (as .ci/run does) does not build twice.
RUST_SOURCES := $(shell find $(CARGO_DIR) -path $(CARGO_DIR)/target -prune -o -type f -print)
BUILT := $(VENV)/.built
$(BUILT): $(VENV)/.created pyproject.toml $(RUST_SOURCES) $(if $(wildcard dolma/_rust*.so),,FORCE)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release -q
	touch $@

FORCE:

build: $(BUILT)

# Refreshes the locks after a change of dependencies in pyproject.toml or .ci/locks/*.in, keeping every pin that
# still fits (commit the result on its own). `make lock-upgrade` moves every package to its newest version.
UV_COMPILE = $(VENV)/bin/uv pip compile -q --universal --python-version 3.10 --generate-hashes \
	--custom-compile-command "make lock" $(UV_FLAGS)
lock: venv
	$(UV_COMPILE) pyproject.toml --extra dev -o $(LOCKS)/dev.txt
	$(UV_COMPILE) --only-binary :all: --no-binary langdetect $(LOCKS)/reference.in -o $(LOCKS)/reference.txt
	$(UV_COMPILE) $(LOCKS)/datatrove.in -o $(LOCKS)/datatrove.txt
	$(subst 3.10,3.11,$(UV_COMPILE)) $(LOCKS)/profanity.in -o $(LOCKS)/profanity.txt

lock-upgrade:
	$(MAKE) lock UV_FLAGS=--upgrade

# The reference toolkit (AllenAI dolma 1.2.1) in its own virtual environment, used only as a test oracle.
# Its packages: .ci/locks/reference.in (locked in reference.txt), wheels only except langdetect (pure Python, it
# publishes no wheel).
$(REF_VENV)/.created: $(LOCKS)/reference.txt $(VENV)/.created
	$(PYTHON) -m venv $(REF_VENV)
	$(UV_LOCKED) $(REF_VENV)/bin/python -r $(LOCKS)/reference.txt --only-binary :all: --no-binary langdetect
	touch $@

reference: $(REF_VENV)/.created

# The reference's own golden fixtures (tests/config + tests/data of the dolma 1.2.1 sdist), run through our CLI by
# tests/compat/test_reference_golden.py: downloaded once into $(GOLDEN_DIR), checked against the sha256 in
# .ci/locks/golden.txt (a download that does not match is deleted and fails the build) and unpacked. Not committed.
GOLDEN_DIR ?= .cache/golden
GOLDEN_LOCK ?= $(LOCKS)/golden.txt
export DOLMA_GOLDEN_DIR ?= $(abspath $(GOLDEN_DIR))/dolma-1.2.1
$(GOLDEN_DIR)/.fetched: $(GOLDEN_LOCK)
	mkdir -p $(GOLDEN_DIR)
	set -e; grep -v '^#' $(GOLDEN_LOCK) | while read -r name sha url; do \
		[ -n "$$name" ] || continue; \
		if ! echo "$$sha  $(GOLDEN_DIR)/$$name" | sha256sum -c --status 2>/dev/null; then \
			curl -fsSL --retry 3 -o $(GOLDEN_DIR)/$$name.part "$$url"; \
			echo "$$sha  $(GOLDEN_DIR)/$$name.part" | sha256sum -c --quiet || { rm -f $(GOLDEN_DIR)/$$name.part; exit 1; }; \
			mv $(GOLDEN_DIR)/$$name.part $(GOLDEN_DIR)/$$name; \
		fi; \
		rm -rf $(GOLDEN_DIR)/$${name%.tar.gz}; \
		tar -xzf $(GOLDEN_DIR)/$$name -C $(GOLDEN_DIR) $${name%.tar.gz}/tests/config $${name%.tar.gz}/tests/data; \
	done
	touch $@

golden: $(GOLDEN_DIR)/.fetched

# alt-profanity-check (Python >= 3.11, an exact scikit-learn) in its own virtual environment, used only as the test
# oracle of the toxicity_offensive_* taggers: .ci/locks/profanity.in (locked in profanity.txt).
PROF_VENV ?= .venv-profanity
export DOLMA_PROFANITY_PYTHON ?= $(abspath $(PROF_VENV))/bin/python
$(PROF_VENV)/.created: $(LOCKS)/profanity.txt $(VENV)/.created
	$(PYTHON) -m venv $(PROF_VENV)
	$(UV_LOCKED) $(PROF_VENV)/bin/python -r $(LOCKS)/profanity.txt --only-binary :all:
	touch $@

profanity: $(PROF_VENV)/.created

# datatrove (benchmarks only), in its own virtual environment: .ci/locks/datatrove.in (locked in datatrove.txt).
DT_VENV ?= .venv-datatrove
BENCH_SIZE_MB ?= 300
BENCH_REPEATS ?= 3
# Optional: BENCH_STAGES=tag,dedupe (stage plugins to run), BENCH_ONLY=gopher (cases whose name contains it),
# BENCH_INPUT_SCALE=2 (multiplies the per-case input caps; 0 = whole corpus everywhere), BENCH_WARC_MB=100 (MB of
# .warc.gz the warc stage reads). See docs/benchmarks.md and docs/warc.md.
export BENCH_STAGES BENCH_ONLY BENCH_INPUT_SCALE BENCH_WARC_MB
$(DT_VENV)/.created: $(LOCKS)/datatrove.txt $(VENV)/.created
	$(PYTHON) -m venv $(DT_VENV)
	$(UV_LOCKED) $(DT_VENV)/bin/python -r $(LOCKS)/datatrove.txt
	touch $@

datatrove: $(DT_VENV)/.created

# Benchmarks (not part of `make test`): builds the corpus if missing (apt-get download of its Debian sources),
# runs every stage for this project, the reference and datatrove, and writes the table in docs/benchmarks.md.
bench: build reference datatrove
	$(VENV)/bin/python -m benchmarks.run --fetch --readme --size-mb $(BENCH_SIZE_MB) --repeats $(BENCH_REPEATS)

demo: build
	$(VENV)/bin/python -m dolma.demo

test: build reference profanity golden lint test-rust test-python

test-rust:
	cd $(CARGO_DIR) && cargo test --workspace --exclude dolma-py -q

# Compiles the Rust tests and runs clippy's checks, which need nothing of the Python side: .ci/run starts this beside
# the package installs and the extension's build (`make test` then finds both compiled and runs them in seconds).
rust-prebuild:
	cd $(CARGO_DIR) && cargo test --workspace --exclude dolma-py -q --no-run
	cd $(CARGO_DIR) && cargo clippy --workspace --all-targets -q -- -D warnings

# Tests reach nothing but 127.0.0.1 (also set by tests/conftest.py): no cloud metadata service, no proxies.
OFFLINE := env -u HTTP_PROXY -u HTTPS_PROXY -u ALL_PROXY -u http_proxy -u https_proxy -u all_proxy \
	-u AWS_CONTAINER_CREDENTIALS_FULL_URI -u AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
	AWS_EC2_METADATA_DISABLED=true NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

# Two workers (pytest-xdist), a test file per worker at a time: module fixtures (the reference's runs) stay shared.
# Files are handed out in collection order, the longest first (LONGEST_FILES in tests/conftest.py).
XDIST := -n 2 --dist loadfile --no-loadscope-reorder

test-python: build reference profanity golden
	$(OFFLINE) $(VENV)/bin/python -m pytest -q $(XDIST) --durations=25 tests

# The edit loop: every Python test except those on Spark, against the reference toolkit or running the whole demo
# pipeline (markers assigned by tests/conftest.py from what each test uses; the fault suite's long cases never run
# outside `make faults`).
# the edit loop (~1.5 min): in-process tests only: no Spark, no reference, no demo run, no S3 server, no process of
# their own (markers assigned by tests/conftest.py)
test-fast: build golden
	$(OFFLINE) $(VENV)/bin/python -m pytest -q -m "not spark and not reference and not slow and not s3 and not process" tests

# everything that runs on this machine without Spark, the reference or the demo (~10 min)
test-local: build golden
	$(OFFLINE) $(VENV)/bin/python -m pytest -q $(XDIST) -m "not spark and not reference and not slow" tests

# stubtest: the stub dolma/_rust.pyi says exactly what the compiled module has (names, signatures, classes).
lint: build
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/python -m mypy.stubtest dolma._rust
	cd $(CARGO_DIR) && cargo fmt --all -- --check
	cd $(CARGO_DIR) && cargo clippy --workspace --all-targets -q -- -D warnings

format: build
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .
	cd $(CARGO_DIR) && cargo fmt --all

# The fault suite (not part of `make test`): every command under kill -9 and SIGTERM (FAULT_SEEDS seeds each),
# S3 faults through a fault proxy (FAULT_S3_SEEDS), a full disk and a read-only destination; ~20 min on 2 cores.
# Writes faults-report.json and the table in docs/faults.md.
FAULT_SEEDS ?= 5
FAULT_S3_SEEDS ?= 2
faults: build
	$(OFFLINE) $(VENV)/bin/python -m pytest -q tests/dolma/test_faults.py --faults --fault-seeds $(FAULT_SEEDS) \
		--fault-s3-seeds $(FAULT_S3_SEEDS) --fault-report faults-report.json --fault-readme

compat: build reference golden
	$(OFFLINE) $(VENV)/bin/python -m pytest -q -m reference tests

clean:
	rm -rf $(VENV) $(REF_VENV) $(PROF_VENV) $(DT_VENV) $(CARGO_DIR)/target demo-output $(GOLDEN_DIR)
