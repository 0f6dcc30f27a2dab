# kiln: top-level entry points. Meson + Ninja do the building; this file only sequences.
#   make            build kiln and the test guests (build/kiln, build/guests/*.elf)
#   make run        install what is missing, build, boot the default VM (Debian's kernel + busybox)
#   make test       install what is missing, build, run unit + integration tests
#   make linux-guest  Debian's kernel, the test kernel and the busybox initramfs in build/linux/
#   make fuzz       60 s libFuzzer run of the virtqueue walker (clang, libclang-rt-14-dev)
#   make bench      kiln against QEMU on the same guests (bench/README.md); BENCH_ARGS="--with-debian ..."
BUILD ?= build
# Debian's interpreter: pytest comes from the python3-pytest package, not pip.
PYTHON ?= /usr/bin/python3
SHELL := /bin/bash

.PHONY: all build setup run test unit integration linux-guest linux-test-kernel debian-kernel initramfs fuzz clean bench

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

run: setup build debian-kernel initramfs
	$(BUILD)/kiln run vm.json

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	$(PYTHON) -m pytest -v tests/integration

test: setup build linux-guest
	meson test -C $(BUILD) --suite unit --print-errorlogs
	$(PYTHON) -m pytest -v -rs tests/integration

FUZZ_CC ?= clang

fuzz:
	scripts/setup --fuzz
	mkdir -p $(BUILD)/fuzz/corpus-virtqueue
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -D_GNU_SOURCE -Isrc \
		-o $(BUILD)/fuzz/fuzz_virtqueue tests/fuzz/fuzz_virtqueue.c src/devices/virtio/virtqueue.c src/vmm/memory.c
	$(BUILD)/fuzz/fuzz_virtqueue -max_total_time=60 -max_len=20000 -timeout=10 $(BUILD)/fuzz/corpus-virtqueue

# Installs QEMU too. The benchmarks report figures; they never fail on one.
bench:
	scripts/setup --bench
	$(MAKE) build
	$(PYTHON) bench/run $(BENCH_ARGS)

clean:
	rm -rf $(BUILD)
