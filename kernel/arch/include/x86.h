/*
 * x86_64 architectural constants shared by boot.S (which builds the boot page tables and
 * GDT) and arch.c (which maps MMIO later and fills the IDT). Only #defines without C
 * suffixes: this header is included by assembly too. Intel SDM vol. 3 numbering.
 */
#ifndef RINGSIDE_X86_H
#define RINGSIDE_X86_H

/* Page-table entry bits (SDM 4.5). */
#define PTE_PRESENT     0x001
#define PTE_WRITE       0x002
#define PTE_PWT         0x008   /* write-through */
#define PTE_PCD         0x010   /* cache disable: MMIO */
#define PTE_HUGE        0x080   /* 2 MiB page in a page directory */
#define PAGE_SIZE_2M    0x200000

/* The boot identity map (boot.S), 2 MiB pages: [0, BOOT_MAP_END), uncached from
 * BOOT_UNCACHED_START (PCI BARs, IOAPIC, LAPIC). arch.c maps MMIO beyond it on demand;
 * boot/BootMemory.swift keeps the heap below the uncached part. */
#define BOOT_MAP_END         0x100000000   /* 4 GiB */
#define BOOT_UNCACHED_START  0xC0000000    /* 3 GiB */

/* The boot GDT (boot.S): its selectors. */
#define KERNEL_CS       0x08    /* 64-bit code, ring 0 */
#define KERNEL_DS       0x10    /* data, ring 0 */

/* Control registers (SDM 2.5). */
#define CR0_PE          0x00000001
#define CR0_MP          0x00000002
#define CR0_EM          0x00000004
#define CR0_PG          0x80000000
#define CR4_PAE         0x00000020
#define CR4_OSFXSR      0x00000200
#define CR4_OSXMMEXCPT  0x00000400

/* Model-specific registers. */
#define MSR_APIC_BASE   0x1B
#define MSR_EFER        0xC0000080
#define EFER_LME        0x00000100

/* The PC's first serial port (I/O base): the boot log. */
#define COM1            0x3f8

#endif
