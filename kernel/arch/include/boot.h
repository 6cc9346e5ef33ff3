/*
 * What the loader handed over: the address of the PVH start info (read in Swift,
 * boot/BootMemory.swift over Sources/PVH) and the kernel image's extent.
 */
#ifndef RINGSIDE_BOOT_H
#define RINGSIDE_BOOT_H
#include <stdint.h>
#include "x86.h"                           /* BOOT_UNCACHED_START: where the heap must end */

extern uint64_t pvh_start_info;            /* physical address of struct hvm_start_info (boot.S) */

/* The image's first byte and the page-aligned end after its .bss (linker.ld). */
static inline uint64_t kernel_image_start(void) { extern char __kernel_start[]; return (uint64_t)(uintptr_t)__kernel_start; }
static inline uint64_t kernel_image_end(void) { extern char __kernel_end[]; return (uint64_t)(uintptr_t)__kernel_end; }

#endif
