# Thin wrapper over CMake. The two commands a new user needs:
#   make run    install, build, start moat in development mode on 127.0.0.1
#   make test   install, build with ASan+UBSan, run unit, e2e and fuzz-replay tests
# Others: make build (release build), make image (the default workspace
# image, built only when its recipe changed), make bench, make fuzz, make clean.

SHELL := /bin/bash
JOBS ?= $(shell nproc)
CC ?= cc
RELEASE_DIR := build/release
SAN_DIR := build/asan
FUZZ_DIR := build/fuzz
FUZZ_SECONDS ?= 60
PYTEST := /usr/bin/python3 -m pytest

.PHONY: all setup build build-asan build-fuzz image run test unit e2e fuzz-replay fuzz bench clean

all: build

setup:
	@scripts/setup

$(RELEASE_DIR)/Makefile: CMakeLists.txt
	cmake -S . -B $(RELEASE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMOAT_TESTS=OFF

build: setup $(RELEASE_DIR)/Makefile
	cmake --build $(RELEASE_DIR) -j $(JOBS)

build-asan: setup
	cmake -S . -B $(SAN_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMOAT_SANITIZE=ON >/dev/null
	cmake --build $(SAN_DIR) -j $(JOBS)

build-fuzz: setup
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_C_COMPILER=clang -DCMAKE_BUILD_TYPE=Debug -DMOAT_FUZZ=ON -DMOAT_TESTS=OFF >/dev/null
	cmake --build $(FUZZ_DIR) -j $(JOBS)

# localhost/moat/base:latest from images/base (cached by recipe hash).
image: setup
	@scripts/image >/dev/null

run: build
	@scripts/dev-run $(RELEASE_DIR)

# One pass on the sanitizer build: unit tests, saved fuzz inputs, end-to-end.
test: build-asan
	@scripts/test $(SAN_DIR)

fuzz: build-fuzz
	@scripts/fuzz $(FUZZ_DIR) $(FUZZ_SECONDS)

bench: build
	@for b in bench/*.sh; do echo "== $$b"; bash $$b $(RELEASE_DIR) || exit 1; done

clean:
	rm -rf build
