/*
 * PVH entry: QEMU's -kernel loads this ELF and, finding the Xen PVH note, jumps to
 * pvh_start32 in 32-bit protected mode with paging off and %ebx pointing at
 * struct hvm_start_info. We save that address in pvh_start_info (boot/BootMemory.swift
 * reads it), build identity page tables, enter long mode and call kmain() in Swift.
 *
 * Memory map of the first 4 GiB (identity, 2 MiB pages):
 *   0 .. 3 GiB        write-back       RAM (only what the PVH memory map says is usable is used)
 *   3 GiB .. 4 GiB    uncached (PCD|PWT) PCI MMIO BARs, IOAPIC, LAPIC live here
 * MMIO above 4 GiB is mapped on demand by arch_map_mmio().
 */

#include "x86.h"              /* PTE_*, CR0_*, CR4_*, MSR_EFER, KERNEL_CS/DS: shared with arch.c */
#include "pvh_note.h"

    PVH_NOTE pvh_start32

    .section .text.boot, "ax"
    .code32
    .global pvh_start32
pvh_start32:
    cli
    cld
    mov %ebx, %esi                  /* hvm_start_info: keep it while we zero .bss */

    mov $__bss_start, %edi
    mov $__bss_end, %ecx
    sub %edi, %ecx
    xor %eax, %eax
    rep stosb
    mov %esi, pvh_start_info

    /* PML4[0] -> PDPT; PDPT[0..3] -> four page directories (BOOT_MAP_END) of 2 MiB pages. */
    mov $boot_pdpt, %eax
    or $(PTE_PRESENT | PTE_WRITE), %eax
    mov %eax, boot_pml4

    mov $boot_pd, %eax
    or $(PTE_PRESENT | PTE_WRITE), %eax
    xor %ecx, %ecx
1:  mov %eax, boot_pdpt(,%ecx,8)
    add $4096, %eax
    inc %ecx
    cmp $(BOOT_MAP_END >> 30), %ecx  /* one page directory per GiB */
    jne 1b

    xor %ecx, %ecx                  /* ecx = 2 MiB page number */
2:  mov %ecx, %eax
    shl $21, %eax
    or $(PTE_PRESENT | PTE_WRITE | PTE_HUGE), %eax
    cmp $(BOOT_UNCACHED_START >> 21), %ecx  /* pages from there up hold MMIO: uncached */
    jb 3f
    or $(PTE_PCD | PTE_PWT), %eax
3:  mov %eax, boot_pd(,%ecx,8)
    mov %ecx, %edx
    shr $11, %edx                   /* bits 32+ of the physical address (always 0 here) */
    mov %edx, boot_pd+4(,%ecx,8)
    inc %ecx
    cmp $(BOOT_MAP_END >> 21), %ecx
    jne 2b

    mov $boot_pml4, %eax
    mov %eax, %cr3
    mov %cr4, %eax
    or $(CR4_PAE | CR4_OSFXSR | CR4_OSXMMEXCPT), %eax
    mov %eax, %cr4
    mov $MSR_EFER, %ecx
    rdmsr
    or $EFER_LME, %eax
    wrmsr
    mov %cr0, %eax
    and $~CR0_EM, %eax
    or $(CR0_PG | CR0_PE | CR0_MP), %eax
    mov %eax, %cr0

    lgdt boot_gdt_ptr
    ljmp $KERNEL_CS, $long_mode_entry

    .code64
long_mode_entry:
    mov $KERNEL_DS, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    xor %ax, %ax
    mov %ax, %fs
    mov %ax, %gs
    lea boot_stack_top(%rip), %rsp
    xor %ebp, %ebp
    call kmain
4:  cli
    hlt
    jmp 4b

    .section .rodata
    .balign 16
boot_gdt:
    .quad 0                         /* null */
    .quad 0x00AF9A000000FFFF        /* KERNEL_CS: 64-bit code, ring 0 */
    .quad 0x00CF92000000FFFF        /* KERNEL_DS: data, ring 0 */
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .long boot_gdt

    .section .data
    .balign 8
    .global pvh_start_info
pvh_start_info:
    .quad 0

    .section .bss.pagetables, "aw", @nobits
    .balign 4096
    .global boot_pml4
boot_pml4:  .skip 4096
boot_pdpt:  .skip 4096
boot_pd:    .skip 4096 * (BOOT_MAP_END >> 30)
    .balign 16
boot_stack: .skip 65536
    .global boot_stack_top
boot_stack_top:
