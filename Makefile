# The two commands of the README: `make run` and `make test`.
# Both install the Debian packages they need (as root), configure and build.
BUILD_DIR ?= build
JOBS      ?= $(shell nproc)
ARGS      ?=

APT_PACKAGES := cmake g++ make pkg-config libwebsockets-dev libcjson-dev \
                liblua5.4-dev catch2 libssl-dev libcurl4-openssl-dev python3 python3-websockets \
                openssl
# What only the test suite needs: a Prometheus parser, Chromium for the demo
# page test (node and npm too, added below only when missing: NodeSource's
# nodejs conflicts with Debian's npm); curl and a YAML parser for the docs'
# samples (test_docs_samples also uses nginx and systemd-analyze when present);
# valgrind for bench-smoke's instruction counts.
TEST_APT_PACKAGES := python3-prometheus-client chromium mono-mcs mono-runtime groff-base \
                     curl python3-yaml valgrind python3-fastapi uvicorn

.PHONY: all deps test-deps configure build run test bench-smoke probes clean

all: build

deps:
	@missing=$$(for p in $(APT_PACKAGES); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "Installing missing packages:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else \
	    echo "Missing packages. Run as root:"; \
	    echo "  apt-get update && apt-get install -y $$missing"; \
	    exit 1; \
	  fi; \
	fi

configure: deps
	@test -f $(BUILD_DIR)/CMakeCache.txt || cmake -S . -B $(BUILD_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWSRELAY_WERROR=ON

build: configure
	cmake --build $(BUILD_DIR) -j $(JOBS)

run: build
	./$(BUILD_DIR)/wsrelay $(ARGS)

test-deps:
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(APT_PACKAGES) $(TEST_APT_PACKAGES) $$(command -v node >/dev/null && command -v npm >/dev/null || echo nodejs npm)"

test: test-deps build
	cd $(BUILD_DIR) && ctest --output-on-failure -j $(JOBS) --timeout 300

# Instructions per message (heartbeat, fan-out, relay) under callgrind, checked
# against bench/instructions.json (fails at +10%). Also a ctest test, so
# `make test` runs it. Re-record after making a path cheaper:
#   python3 bench/instructions.py --record bench/instructions.json \
#     --wsrelay build/wsrelay --bench build/bench/wsrelay-bench
bench-smoke: build
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(APT_PACKAGES) valgrind"
	cd $(BUILD_DIR) && ctest --output-on-failure -L bench-smoke

# The probes (issue 12): every attack found so far against a live server,
# each followed by a bystander's heartbeat. Also part of `make test`.
probes: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L probes

clean:
	rm -rf $(BUILD_DIR)

# Sanitizers (issue 5, points 12-13). test-asan: the whole suite under
# AddressSanitizer + UndefinedBehaviorSanitizer in $(ASAN_DIR), with the
# compiler's own reports written to files there and any report failing the
# run. fuzz: the libFuzzer targets of fuzz/ (a separate clang build in
# $(FUZZ_DIR)), each run for FUZZ_SECONDS from its seeds in tests/fuzz/.
ASAN_DIR     ?= build-asan
SAN_FLAGS    := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
FUZZ_DIR     ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_APT_PACKAGES := clang libclang-rt-14-dev

.PHONY: test-asan fuzz

test-asan: deps
	@test -f $(ASAN_DIR)/CMakeCache.txt || cmake -S . -B $(ASAN_DIR) -DCMAKE_BUILD_TYPE=Debug -DWSRELAY_WERROR=ON \
	  -DCMAKE_C_FLAGS="$(SAN_FLAGS)" -DCMAKE_CXX_FLAGS="$(SAN_FLAGS)" \
	  -DCMAKE_EXE_LINKER_FLAGS="$(SAN_FLAGS)" -DCMAKE_SHARED_LINKER_FLAGS="$(SAN_FLAGS)"
	cmake --build $(ASAN_DIR) -j $(JOBS)
	ASAN_DIR=$(ASAN_DIR) JOBS=$(JOBS) tests/asan/run

fuzz: deps
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(FUZZ_APT_PACKAGES)"
	FUZZ_DIR=$(FUZZ_DIR) FUZZ_SECONDS=$(FUZZ_SECONDS) JOBS=$(JOBS) fuzz/run

# Benchmarks (issue 6). bench: installs the peers (Debian packages; node's
# `ws` from bench/node/package-lock.json), builds wsrelay and bench/, runs
# every scenario against wsrelay and the peers side by side (server on core 0,
# generator on core 1) and writes docs/benchmarks.md + docs/benchmarks.png.
# About 10 minutes; BENCH_DURATION, BENCH_RUNS, BENCH_SCENARIOS, ... (see
# bench/run_bench.py) change it. Never part of `make test`.
BENCH_BUILD_DIR    ?= build-bench
BENCH_APT_PACKAGES := libwebsockets-test-server nginx-light libnginx-mod-nchan gnuplot-nox python3-fastapi uvicorn

.PHONY: bench
bench: build
	@$(MAKE) --no-print-directory deps APT_PACKAGES="$(BENCH_APT_PACKAGES) $$(command -v node >/dev/null && command -v npm >/dev/null || echo nodejs npm)"
	cmake -S bench -B $(BENCH_BUILD_DIR) -DCMAKE_BUILD_TYPE=Release
	cmake --build $(BENCH_BUILD_DIR) -j $(JOBS)
	cd bench/node && npm ci --no-audit --no-fund --loglevel=error
	BENCH_BUILD=$(abspath $(BENCH_BUILD_DIR)) WSRELAY=$(abspath $(BUILD_DIR))/wsrelay python3 bench/run_bench.py
