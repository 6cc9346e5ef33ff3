# Ringside top-level build.
#   make run    boot the kernel in QEMU (headless for now)
#   make test   the whole test suite: host unit tests + the real kernel in real QEMU
#   make bench  start-to-first-echo, echo round trips, telemetry cost (off vs 10 Hz vs 60 Hz), decoder MB/s
SWIFT      ?= swift
SWIFTFLAGS ?=
RINGSIDE   := .build/debug/ringside

.PHONY: all deps kernel build run test bench clean

all: kernel build

deps:
	scripts/ensure-deps.sh

kernel:
	$(MAKE) -C kernel

build:
	$(SWIFT) build $(SWIFTFLAGS)

# For now `run` streams the serial console (--headless); the TUI will replace it once it is built.
run: deps kernel build
	$(RINGSIDE) run --headless $(RUNFLAGS)

# The whole suite (swift test fails, and so make fails, when any test fails).
test: deps kernel
	$(SWIFT) test $(SWIFTFLAGS)

bench: deps kernel
	scripts/bench.sh

clean:
	-$(MAKE) -C kernel clean
	rm -rf .build
