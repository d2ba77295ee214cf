# A thin wrapper over CMake and CTest: `make`, `make check`, `make run`,
# `make install`.
#   make check SANITIZE=address,undefined   ASan+UBSan (build-san-cc-address-undefined/)
#   make check SANITIZE=thread CC=clang     TSan (build-san-clang-thread/)
#   make check CC=clang                     another compiler (build-clang/)
#   make fuzz [FUZZ_TIME=60]                libFuzzer targets (build-fuzz/)
#   make fuzz-smoke [FUZZ_RUNS=20000]       each target for a fixed run count
#   make check-long                         heavy variants, then fuzz-smoke
#   make lint                               cppcheck and clang-tidy (build-clang/)
BUILD ?= build
CC ?= cc
SANITIZE ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
PREFIX ?= /usr/local
DESTDIR ?=

comma := ,
ifeq ($(CC),clang)
BUILD := build-clang
endif
ifneq ($(SANITIZE),)
# One build directory per compiler and sanitizer set: their caches differ.
BUILD := build-san-$(notdir $(CC))-$(subst $(comma),-,$(SANITIZE))
CMAKE_FLAGS += -DPETREL_SANITIZE=$(SANITIZE) -DCMAKE_BUILD_TYPE=Debug
endif

.PHONY: all deps configure check check-long check-unit run install clean bench \
	fuzz fuzz-build fuzz-smoke lint

all: configure
	cmake --build $(BUILD) -j $(JOBS)

# Installs what is missing (idempotent; quick when nothing is).
deps:
	@sh scripts/deps.sh

configure: deps
	@if [ ! -f $(BUILD)/CMakeCache.txt ]; then \
		CC=$(CC) cmake -S . -B $(BUILD) $(CMAKE_FLAGS); fi

check: all
	cd $(BUILD) && ctest --output-on-failure --no-tests=error -j $(JOBS) --timeout 900

# The same suite with the heavy variants on (PETREL_LONG=1: 20 SIGKILL
# rounds in test_restart.py, with a fixed, printed seed), then every fuzz
# target for FUZZ_LONG_RUNS inputs with a fixed seed (issue 8).
FUZZ_LONG_RUNS ?= 200000
check-long: all
	cd $(BUILD) && PETREL_LONG=1 ctest --output-on-failure --no-tests=error \
		-j $(JOBS) --timeout 1800
	$(MAKE) fuzz-smoke FUZZ_RUNS=$(FUZZ_LONG_RUNS)

check-unit: all
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) -R '^unit_'

run: all
	./$(BUILD)/petrel serve

# make install [PREFIX=/usr/local] [DESTDIR=/tmp/stage]: what goes where is
# in cmake/PetrelInstall.cmake and README.md ("Installing").
install: all
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

bench: all
	sh bench/compare.sh

# issue 8: cppcheck and clang-tidy (.clang-tidy, .cppcheck-suppressions) on
# src/ and bench/, from the compile commands of build-clang/ (configured if
# missing, nothing built). Fails on any finding; scripts/lint.sh says more.
lint: deps
	@sh scripts/lint.sh

# issue 8: the libFuzzer targets tests/fuzz/fuzz_<name>.c (tests/fuzz/README.md),
# always with clang, in build-fuzz/. The seeds in tests/fuzz/corpus/<name>/ are
# only read: libFuzzer writes what it finds into the first directory it is
# given, build-fuzz/corpus/<name>/ (kept from run to run), and crashes into
# build-fuzz/artifacts/<name>/.
FUZZ_BUILD := build-fuzz
FUZZ_TIME ?= 60
FUZZ_RUNS ?= 20000
FUZZ_SEED ?= 1
FUZZ_NAMES = $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))

fuzz-build: deps
	@if [ ! -f $(FUZZ_BUILD)/CMakeCache.txt ]; then \
		CC=clang cmake -S . -B $(FUZZ_BUILD) -DPETREL_FUZZ=ON \
		    -DCMAKE_BUILD_TYPE=RelWithDebInfo; fi
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz

# Each target for FUZZ_TIME seconds, one after the other.
fuzz: fuzz-build
	@fail=0; for n in $(FUZZ_NAMES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$n $(FUZZ_BUILD)/artifacts/$$n; \
		echo "== fuzz_$$n for $(FUZZ_TIME) s"; \
		./$(FUZZ_BUILD)/fuzz_$$n -max_total_time=$(FUZZ_TIME) \
		    -print_final_stats=1 \
		    -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$n/ \
		    $(FUZZ_BUILD)/corpus/$$n tests/fuzz/corpus/$$n || fail=1; \
	done; exit $$fail

# Quick and repeatable: the committed reproducers of tests/fuzz/regressions/,
# then FUZZ_RUNS inputs with a fixed seed from the seeds alone. Fails if any
# target does.
fuzz-smoke: fuzz-build
	@fail=0; for n in $(FUZZ_NAMES); do \
		scratch=$$(mktemp -d); mkdir $$scratch/corpus; \
		echo "== fuzz_$$n: -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED)"; \
		if [ -d tests/fuzz/regressions/$$n ]; then \
			./$(FUZZ_BUILD)/fuzz_$$n -artifact_prefix=$$scratch/ \
			    tests/fuzz/regressions/$$n/* >$$scratch/log 2>&1 || \
			    { cat $$scratch/log; fail=1; }; \
		fi; \
		./$(FUZZ_BUILD)/fuzz_$$n -runs=$(FUZZ_RUNS) -seed=$(FUZZ_SEED) \
		    -artifact_prefix=$$scratch/ \
		    $$scratch/corpus tests/fuzz/corpus/$$n >$$scratch/log 2>&1 || \
		    { cat $$scratch/log; fail=1; }; \
		grep -E 'DONE|^Done' $$scratch/log; \
		for f in $$scratch/crash-* $$scratch/leak-* $$scratch/oom-* \
		    $$scratch/timeout-*; do \
			[ -f "$$f" ] || continue; \
			mkdir -p $(FUZZ_BUILD)/artifacts/$$n; \
			cp "$$f" $(FUZZ_BUILD)/artifacts/$$n/; \
			echo "== $$n: $$(basename $$f), kept in" \
			    "$(FUZZ_BUILD)/artifacts/$$n/, base64:"; \
			head -c 65536 "$$f" | base64; \
		done; rm -rf $$scratch; \
	done; exit $$fail

clean:
	rm -rf build build-san-* build-clang build-fuzz
