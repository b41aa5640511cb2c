# Thin wrapper over CMake.  `make` builds, `make test` runs the suite (normal
# build, then the tests again under AddressSanitizer + UBSan), `make demo`
# runs the built-in demo, `make bench` the benchmarks.
BUILD   ?= build
ASAN    ?= build-asan
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=

.PHONY: all deps build test test-fast test-asan test-mpi demo bench install clean fuzz fuzz-ci

all: build

deps:
	@bash scripts/install-deps --check-or-install

$(BUILD)/Makefile: CMakeLists.txt
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=$(PREFIX) -DRR_WERROR=ON $(CMAKE_FLAGS)

build: deps $(BUILD)/Makefile
	cmake --build $(BUILD) -j $(JOBS)

test-fast: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: deps
	cmake -S . -B $(ASAN) -DCMAKE_BUILD_TYPE=Debug -DRR_WERROR=ON -DRR_SANITIZE=address,undefined $(CMAKE_FLAGS)
	cmake --build $(ASAN) -j $(JOBS)
	cd $(ASAN) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 RR_TEST_SCALE=small ctest --output-on-failure -j $(JOBS)

test: test-fast test-asan

# `make test-mpi`: an extra build with -DRR_MPI=ON (Open MPI, found by
# CMake's FindMPI) and the MPI tests, run through mpirun --oversubscribe
# at 2 and 3 ranks (tests/mpi_*; docs/distributed.md).  The other builds
# need no MPI.
MPI_BUILD ?= build-mpi-ci
test-mpi: deps
	cmake -S . -B $(MPI_BUILD) -DCMAKE_BUILD_TYPE=Release -DRR_WERROR=ON -DRR_MPI=ON $(CMAKE_FLAGS)
	cmake --build $(MPI_BUILD) -j $(JOBS) --target rnnrec mpi_dist
	cd $(MPI_BUILD) && OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 ctest --output-on-failure -R '^mpi_'

demo: build
	@bash scripts/demo.sh $(BUILD)/rnnrec

bench: build
	@bash scripts/install-deps --check-or-install --bench
	cmake --build $(BUILD) -j $(JOBS) --target benches
	@bash bench/run.sh $(BUILD)

# `make fuzz`: builds the libFuzzer harnesses with clang (fuzz/Makefile) and
# runs each for FUZZ_SECONDS; see docs/reliability.md.
FUZZ_SECONDS ?= 60
fuzz:
	@for h in reader model http; do bash fuzz/run.sh $$h $(FUZZ_SECONDS) || exit 1; done

# `make fuzz-ci`: what CI runs after `make test`: each harness for
# FUZZ_SECONDS from the committed seeds only (build-fuzz/ci); fails on any
# crash, leak or timeout and prints one stats line per harness.
fuzz-ci:
	@bash fuzz/ci.sh $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN)
