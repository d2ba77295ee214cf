# A thin wrapper over CMake and CTest: `make`, `make check`, `make run`,
# `make install`.
#   make check SANITIZE=address,undefined   ASan+UBSan (build-san-cc-address-undefined/)
#   make check SANITIZE=thread CC=clang     TSan (build-san-clang-thread/)
#   make check CC=clang                     another compiler (build-clang/)
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

.PHONY: all deps configure check check-long check-unit run install clean bench

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

# The same suite with the heavy variants on (PETREL_LONG=1: more SIGKILL
# rounds in test_restart.py, with a fixed, printed seed).
check-long: all
	cd $(BUILD) && PETREL_LONG=1 ctest --output-on-failure --no-tests=error \
		-j $(JOBS) --timeout 1800

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

clean:
	rm -rf build build-san-* build-clang
