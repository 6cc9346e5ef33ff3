/*
 * The smallest PVH kernel: its first instruction writes one byte ('!') to COM1, then it halts.
 * `make bench` (scripts/bench.sh, scripts/qemu_floor.py) boots it on the bench's own QEMU
 * lines to measure QEMU's start alone, from the process's start to the guest's first
 * instruction: the floor under any kernel's QEMU start -> first echo on that machine.
 */
#include "x86.h"
#include "pvh_note.h"

    PVH_NOTE pvh_start32

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    mov $COM1, %dx
    mov $'!', %al
    out %al, %dx
1:  cli
    hlt
    jmp 1b
