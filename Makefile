# The two commands of the README: `make test` and `make demo`. Each installs what is missing (tools/bootstrap.sh),
# configures build/ once (tools/configure.sh), builds incrementally with ccache, then runs.
JOBS ?= $(shell nproc)

.PHONY: all deps build test demo gpu-debs gpu-check clean

all: build

deps:
	@tools/bootstrap.sh

build: deps
	@tools/configure.sh
	@cmake --build build -j $(JOBS)

test: build
	@cd build && ctest --output-on-failure -j $(JOBS) $(CTEST_ARGS)

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
