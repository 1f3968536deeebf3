# mmgen: the two newcomer commands are `make demo` and `make test`; both set
# everything up first. See README.md.
SHELL := /bin/bash
ROOT := $(CURDIR)
BUILD ?= $(ROOT)/build
JOBS ?= $(shell nproc)
VENV_PY := $(ROOT)/.venv/bin/python

# ccache keyed on paths relative to the checkout, so a clone elsewhere hits.
export CCACHE_BASEDIR := $(ROOT)
export CCACHE_NOHASHDIR := 1
export CCACHE_SLOPPINESS := pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_MAXSIZE ?= 8G

CMAKE_FLAGS ?=
TORCH_PREFIX = $(shell $(VENV_PY) -c 'import torch.utils; print(torch.utils.cmake_prefix_path)' 2>/dev/null)

.PHONY: all setup configure build test test-unit test-integration demo bench fixtures stack compose-check clean

all: build

setup:
	@scripts/setup.sh

$(BUILD)/build.ninja: CMakeLists.txt
	cmake -G Ninja -S $(ROOT) -B $(BUILD) -DCMAKE_PREFIX_PATH="$(TORCH_PREFIX)" \
	  -DMMGEN_PYTHON=$(VENV_PY) $(CMAKE_FLAGS)

configure: setup
	@$(MAKE) --no-print-directory $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

# ctest runs $(JOBS) tests at once; one intra-op thread each keeps the cores
# from being oversubscribed (tests are not benchmarks).
test: build
	cd $(BUILD) && OMP_NUM_THREADS=$${OMP_NUM_THREADS:-1} ctest --output-on-failure -j $(JOBS) --timeout 900

test-unit: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -L unit

test-integration: build
	cd $(BUILD) && ctest --output-on-failure -L integration

demo: build
	@scripts/demo.sh $(BUILD)

bench: build
	@scripts/bench.sh $(BUILD)

# Regenerate the tiny checkpoints and reference outputs in tests/fixtures/.
fixtures: setup
	@set -e; for f in scripts/fixtures/make_*_fixtures.py; do echo "== $$f"; $(VENV_PY) $$f; done

stack: build
	@scripts/stack.sh --build $(BUILD) up

compose-check:
	docker-compose -f compose.yaml config -q

clean:
	rm -rf $(BUILD)
