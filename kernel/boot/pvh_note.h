/*
 * The ELF note that makes QEMU's -kernel boot an ELF through PVH: Xen's
 * XEN_ELFNOTE_PHYS32_ENTRY (xen/include/public/elfnote.h), whose descriptor is the 32-bit
 * physical entry point. QEMU's ELF loader finds it in a PT_NOTE segment (boot/linker.ld).
 * Assembly only: boot.S (the kernel) and empty-pvh.S (the bench's empty kernel).
 */
#ifndef RINGSIDE_PVH_NOTE_H
#define RINGSIDE_PVH_NOTE_H

#define XEN_ELFNOTE_PHYS32_ENTRY 18

.macro PVH_NOTE entry
    .pushsection .note.Xen, "a", @note
    .balign 4
    .long 4                         /* namesz: "Xen\0" */
    .long 4                         /* descsz */
    .long XEN_ELFNOTE_PHYS32_ENTRY  /* type */
    .asciz "Xen"
    .long \entry                    /* desc: 32-bit physical entry point */
    .popsection
.endm

#endif
