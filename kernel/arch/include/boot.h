/*
 * What the loader handed over: the PVH start info (command line, memory map) and the
 * kernel image's extent.
 */
#ifndef RINGSIDE_BOOT_H
#define RINGSIDE_BOOT_H
#include <stdint.h>
#include <stddef.h>

extern uint64_t pvh_start_info;            /* physical address of struct hvm_start_info */
/* Copies the kernel command line into buf (NUL-terminated); returns its length. */
size_t boot_cmdline(char *buf, size_t cap);
/* Finds usable RAM from the PVH memory map and starts the heap after the kernel image. */
int boot_memory_init(void);
uint64_t boot_ram_bytes(void);             /* total usable RAM in the PVH map */
uint64_t kernel_image_bytes(void);

#endif
