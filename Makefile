# Thin front end over CMake + Ninja. Run as root on Debian 12.
BUILD_DIR ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS ?= $(shell nproc)
METRICS_PORT ?= 8081
COLLECT_INTERVAL ?= 5s

.PHONY: all deps build run test test-unit test-bpf test-e2e bench bench-benign install clean

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

# Installs dependencies, builds, and runs every test tier (unit, bpf, e2e).
test: deps build
	cd $(BUILD_DIR) && ctest --output-on-failure --timeout 900

test-unit: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L unit
test-bpf: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L bpf
test-e2e: build
	cd $(BUILD_DIR) && ctest --output-on-failure -L e2e

# Runs the benchmarks, prints a table and writes docs/benchmarks.md.
bench: deps build
	bash bench/run.sh $(BUILD_DIR)

# Five minutes of benign traffic (iperf3, HTTP, Prometheus scraping) against the
# security detectors; prints the events raised (target: none). Not part of `make bench`.
bench-benign: deps build
	/usr/bin/python3 bench/security_bench.py --benign-seconds=$${NP_BENIGN_SECONDS:-300}

install: build
	cmake --install $(BUILD_DIR)

clean:
	rm -rf $(BUILD_DIR) bin
