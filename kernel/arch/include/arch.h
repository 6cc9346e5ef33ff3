/*
 * The thin hardware layer Swift calls into, imported as module `Arch`. Swift has no inline
 * assembly, so every instruction the kernel needs lives in these headers as a static
 * inline function; each header holds one concern.
 */
#ifndef RINGSIDE_ARCH_H
#define RINGSIDE_ARCH_H
#include "vectors.h"   /* interrupt vectors, named once */
#include "io.h"        /* port I/O, MMIO, COM1, QEMU's debug exit */
#include "cpu.h"       /* TSC, MSRs, cli/sti/hlt, the pending-IRQ word */
#include "apic.h"      /* local APIC, its timer, PIT calibration */
#include "boot.h"      /* PVH start info, memory map, image size */
#include "heap.h"      /* the heap and the libc subset */
#endif
