# The two commands of the README: `make run` and `make test`.
# Everything else here is a convenience around CMake.
BUILD      ?= build
ASAN_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc)

.PHONY: all deps deps-test build run test test-fast test-asan test-tsan fuzz install bench bench-tlsgate soak clean

PREFIX ?= /usr/local

all: build

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh --test

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTG_WERROR=ON >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

run: build
	./$(BUILD)/tlsgate serve

# Every test: the normal build, then the whole suite again under ASan+UBSan
# (the 1 GiB transfers are labelled "big" and run in the normal build only).
test: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j 2
	$(MAKE) test-asan
	$(MAKE) test-tsan
	$(MAKE) fuzz FUZZ_SECONDS=$${FUZZ_SECONDS:-5}

test-fast: deps-test build
	cd $(BUILD) && ctest --output-on-failure -j 2 -LE big

test-asan: deps-test
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTG_WERROR=ON -DTG_SANITIZE=ON >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)
	cd $(ASAN_BUILD) && ctest --output-on-failure -j 2 -LE 'big|scale|slow'

# ThreadSanitizer over the tests whose work crosses threads: uploads and
# pin recording on libuv's thread pool, the ACME thread, reloads, workers.
TSAN_TESTS = unit/|33-files|50-mutual|55-trust|57-store|58-cluster|65-acme|68-engine|69-workers|79-revocation|81-acme-ca|90-signals|91-soak
test-tsan: deps-test
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTG_WERROR=ON -DTG_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS)
	cd $(TSAN_BUILD) && ctest --output-on-failure -j 2 -LE 'big|scale' -R '$(TSAN_TESTS)'

fuzz: deps-test
	@cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DTG_FUZZ=ON >/dev/null
	@cmake --build build-fuzz -j $(JOBS)
	scripts/fuzz.sh build-fuzz $${FUZZ_SECONDS:-30}

# Benchmarks are not tests: they report figures (docs/performance.md).
# bench: tlsgate and the peers (nginx, haproxy, hitch, stunnel) in one run,
# one results file per run, then the table (bench/compare.py);
# bench-tlsgate: tlsgate alone, against the peers' figures in bench/results.
bench: build
	sudo=""; [ "$$(id -u)" = 0 ] || sudo=sudo; DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq \
		nginx-light haproxy hitch stunnel4 wrk bc python3 >/dev/null
	out=$(CURDIR)/bench/results/same-run-$$(date +%Y%m%d-%H%M).tsv; \
	bench/crypto-floor.sh 2 >/dev/null && \
	RESULTS=$$out bench/run-all.sh $${RUNS:-3} $${DUR:-10} && \
	RESULTS=$$out TG_BIN=$(CURDIR)/$(BUILD)/tlsgate bench/tlsgate.sh $${RUNS:-3} $${DUR:-10} && \
	bench/summarize.py $$out && echo && bench/compare.py $$out

# soak: mixed load with reloads every 5 s and certificate swaps every 20 s
# (SECONDS=600 by default); a 2-minute variant runs in make test (91-soak)
soak: build
	TG_BIN=$(CURDIR)/$(BUILD)/tlsgate bench/soak.sh $${SECONDS_SOAK:-600}

bench-tlsgate: build
	TG_BIN=$(CURDIR)/$(BUILD)/tlsgate bench/tlsgate.sh $${RUNS:-3} $${DUR:-10}

# binary, libtlsgate + header + pkg-config file, man pages, systemd unit;
# DESTDIR=/tmp/stage make install stages instead
install: build
	cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	cmake --build $(BUILD) -j $(JOBS)
	cmake --install $(BUILD)
	@# a new shared library in PREFIX/lib: the dynamic linker's cache learns it (not when staging)
	@if [ -z "$(DESTDIR)" ] && [ "$$(id -u)" = 0 ] && command -v ldconfig >/dev/null; then ldconfig; fi

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(TSAN_BUILD) build-fuzz
