# kiln: top-level entry points. Meson + Ninja do the building; this file only sequences.
#   make            build kiln and the test guests (build/kiln, build/guests/*.elf)
#   make run        install what is missing, build, boot the default VM (Debian's kernel + busybox)
#   make test       install what is missing, build, run unit + integration tests
#   make linux-guest  Debian's kernel, the test kernel and the busybox initramfs in build/linux/
#   make fuzz       every libFuzzer target, FUZZ_SECONDS (30) each, one at a time (tests/fuzz/README.md)
#   make bench      kiln against QEMU on the same guests (bench/README.md); BENCH_ARGS="--with-debian ..."
BUILD ?= build
# Debian's interpreter: pytest comes from the python3-pytest package, not pip.
PYTHON ?= /usr/bin/python3
SHELL := /bin/bash


.PHONY: all build setup run test unit integration compat-fixture linux-guest linux-test-kernel debian-kernel initramfs fuzz clean bench

all: build

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

setup:
	scripts/setup

initramfs:
	guests/linux/build-initramfs

debian-kernel:
	guests/linux/fetch-debian-kernel

linux-test-kernel:
	guests/linux/build-kernel

linux-guest: debian-kernel linux-test-kernel initramfs

# The snapshot kiln 8d1a722 wrote, made by building that kiln from history (cached; tests/integration/test_snapshot_compat.py).
compat-fixture:
	scripts/make-compat-fixture

run: setup build debian-kernel initramfs
	$(BUILD)/kiln run vm.json

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build compat-fixture
	$(PYTHON) -m pytest -v tests/integration

test: setup build linux-guest compat-fixture
	meson test -C $(BUILD) --suite unit --print-errorlogs
	$(PYTHON) -m pytest -v -rs tests/integration

FUZZ_CC ?= clang
# A separate build directory: the fuzz targets need clang, the rest of kiln builds with gcc.
FUZZ_BUILD ?= $(BUILD)-fuzz
FUZZ_SECONDS ?= 30
FUZZ_TARGETS ?=

fuzz:
	scripts/setup --fuzz
	test -f $(FUZZ_BUILD)/build.ninja || CC=$(FUZZ_CC) meson setup $(FUZZ_BUILD)
	ninja -C $(FUZZ_BUILD) fuzz
	FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run $(FUZZ_TARGETS)

# Installs QEMU too. The benchmarks report figures; they never fail on one.
bench:
	scripts/setup --bench
	$(MAKE) build
	$(PYTHON) bench/run $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
