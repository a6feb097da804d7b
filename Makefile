# The two commands of the README: `make test` and `make demo`. Each installs what is missing (tools/bootstrap.sh),
# configures build/ once (tools/configure.sh), builds incrementally with ccache, then runs.
JOBS ?= $(shell nproc)
FUZZ_RUNS ?= 1000000

.PHONY: all deps build fuzz-build test test-asan fuzz soak demo gpu-debs gpu-check clean

all: build

deps:
	@tools/bootstrap.sh

build: deps
	@tools/configure.sh
	@cmake --build build -j $(JOBS)

# The suite, then the fuzz build's replay of every seed and kept regression and its short fuzz runs.
test: build fuzz-build
	@cd build && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)
	@cd build/fuzz && ctest --output-on-failure -j $(JOBS)

# The torch-free parsers and their libFuzzer targets, built with clang under ASan + UBSan (fuzz/).
fuzz-build: deps
	@BUILD_DIR=build/fuzz AGORA_CMAKE_ARGS="-DAGORA_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++" tools/configure.sh
	@cmake --build build/fuzz -j $(JOBS)

# FUZZ_RUNS executions of every fuzz target (or FUZZ_TARGETS="recipe record"), a table in build/fuzz/fuzz_report.md.
fuzz: fuzz-build
	@fuzz/run_all.sh build/fuzz $(FUZZ_RUNS) $(FUZZ_TARGETS)

# The CPU suite built and run under AddressSanitizer + UndefinedBehaviorSanitizer, in build/asan. The write-fault
# shim is LD_PRELOADed ahead of the ASan runtime, hence verify_asan_link_order=0.
ASAN_OPTIONS ?= verify_asan_link_order=0:detect_leaks=1
test-asan: deps
	@BUILD_DIR=build/asan AGORA_CMAKE_ARGS="-DAGORA_SANITIZE=ON" tools/configure.sh
	@cmake --build build/asan -j $(JOBS)
	@cd build/asan && ASAN_OPTIONS=$(ASAN_OPTIONS) UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --output-on-failure -j $(JOBS) -LE gpu $(CTEST_ARGS)

# 30 minutes of the tiny recipe on the CPU with its resident memory sampled (SOAK_SECONDS to change; SOAK=simulate
# soaks the tiny sandbox closed loop instead: simulate, train, eval, round after round in one process).
soak: build
	@tools/soak.sh build $${SOAK_SECONDS:-1800} $${SOAK:-train}

demo: build
	@tools/demo.sh

# On a build machine: download the Debian packages the GPU machine lacks into .debs/ (ignored by git).
gpu-debs:
	@tools/gpu-debs.sh

# On the GPU machine (no network): unpack .debs/, build against its torch, run the GPU checks in one bounded
# command (the GPU machine has no make: there, run `bash tools/gpu-session.sh` itself).
gpu-check:
	@tools/gpu-session.sh

clean:
	rm -rf build
