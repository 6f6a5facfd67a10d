# Thin front end over CMake + Ninja. Run as root on Debian 12.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
METRICS_PORT ?= 8081
COLLECT_INTERVAL ?= 5s

.PHONY: all deps build run test test-unit test-bpf test-e2e test-sanitize build-sanitize fuzz bench bench-benign soak install clean

all: build

deps:
	bash scripts/setup-deps.sh

$(BUILD_DIR)/build.ninja:
	cmake -S . -B $(BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE)

build: $(BUILD_DIR)/build.ninja
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Installs dependencies, builds, and starts the agent on the host's up,
# non-loopback interfaces (restrict with NETWORK_INTERFACE=veth0,...).
run: deps build
	./bin/netprobe-agent --metrics-port=$(METRICS_PORT) --collect-interval=$(COLLECT_INTERVAL)

# Installs dependencies, builds, and runs every test tier (unit, bpf, e2e, deploy,
# package), then the sanitizer tier (test-sanitize).
test: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900
	$(MAKE) --no-print-directory test-sanitize

# ASan + UBSan build (clang) of the library, the unit, k8s and BPF tests and the
# libFuzzer harnesses; runs them, each harness for NETPROBE_FUZZ_RUNS inputs from its
# seed corpus. Its agent stays in $(SAN_BUILD_DIR)/bin (bin/ keeps the release build).
SAN_BUILD_DIR ?= build-sanitize
SAN_CC ?= clang-19
SAN_CXX ?= clang++-19
build-sanitize:
	CC=$(SAN_CC) CXX=$(SAN_CXX) cmake -S . -B $(SAN_BUILD_DIR) -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DNETPROBE_BUILD_BENCH=OFF -DNETPROBE_SANITIZE=ON -DNETPROBE_FUZZ=ON
	cmake --build $(SAN_BUILD_DIR) -j $(JOBS)
test-sanitize: deps build-sanitize
	cd $(SAN_BUILD_DIR) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  ctest --output-on-failure --timeout 900 -L 'unit|k8s|bpf|fuzz'

# Runs every fuzzer for FUZZ_SECONDS (default 60) each, growing its corpus in
# $(SAN_BUILD_DIR)/tests/fuzz/corpus; crashes are written next to it (fuzz_NAME-crash-*).
FUZZ_SECONDS ?= 60
fuzz: deps build-sanitize
	bash tests/fuzz/run.sh $(SAN_BUILD_DIR) $(FUZZ_SECONDS)

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit
test-bpf: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L bpf
test-e2e: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e

# Runs the benchmarks, prints a table and writes docs/benchmarks.md.
bench: deps build
	bash bench/run.sh $(BUILD_DIR)

# One hour (SOAK_SECONDS) of mixed traffic, flow churn, scrapes and API calls against
# the agent in its default configuration; writes docs/soak.md (copied into
# docs/benchmarks.md by make bench). Not part of make test or make bench.
SOAK_SECONDS ?= 3600
soak: deps build
	export NETPROBE_STATE_DIR=$$(mktemp -d /tmp/npb-state.XXXXXX); trap 'rm -rf "$$NETPROBE_STATE_DIR"' EXIT; \
	/usr/bin/python3 bench/soak.py --seconds=$(SOAK_SECONDS) --warmup=$$(( $(SOAK_SECONDS) / 6 ))

# Five minutes of benign traffic (iperf3, HTTP, Prometheus scraping) against the
# security detectors; prints the events raised (target: none). Not part of `make bench`.
bench-benign: deps build
	export NETPROBE_STATE_DIR=$$(mktemp -d /tmp/npb-state.XXXXXX); trap 'rm -rf "$$NETPROBE_STATE_DIR"' EXIT; \
	/usr/bin/python3 bench/security_bench.py --benign-seconds=$${NP_BENIGN_SECONDS:-300}

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) bin
