/*
 * Port I/O and MMIO: the instructions Swift has no syntax for.
 */
#ifndef RINGSIDE_IO_H
#define RINGSIDE_IO_H
#include <stdint.h>

/* ---- Port I/O ---- */
static inline void outb(uint16_t port, uint8_t v) { __asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outw(uint16_t port, uint16_t v) { __asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port)); }
static inline void outl(uint16_t port, uint32_t v) { __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port)); }
static inline uint8_t inb(uint16_t port) { uint8_t v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint16_t inw(uint16_t port) { uint16_t v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline uint32_t inl(uint16_t port) { uint32_t v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }

/* ---- MMIO: volatile, uncached mapping assumed (see boot.S) ---- */
static inline uint8_t mmio_read8(uint64_t a) { return *(volatile uint8_t *)(uintptr_t)a; }
static inline uint16_t mmio_read16(uint64_t a) { return *(volatile uint16_t *)(uintptr_t)a; }
static inline uint32_t mmio_read32(uint64_t a) { return *(volatile uint32_t *)(uintptr_t)a; }
static inline void mmio_write8(uint64_t a, uint8_t v) { *(volatile uint8_t *)(uintptr_t)a = v; }
static inline void mmio_write16(uint64_t a, uint16_t v) { *(volatile uint16_t *)(uintptr_t)a = v; }
static inline void mmio_write32(uint64_t a, uint32_t v) { *(volatile uint32_t *)(uintptr_t)a = v; }
/* 64-bit registers in virtio common config are written as two 32-bit halves (virtio 1.2, 4.1.3.1). */
static inline void mmio_write64_split(uint64_t a, uint64_t v) { mmio_write32(a, (uint32_t)v); mmio_write32(a + 4, (uint32_t)(v >> 32)); }

/* Map [phys, phys+size) uncached if it lies outside the boot identity map. 0 on success. */
int arch_map_mmio(uint64_t phys, uint64_t size);

/* Writing v here makes QEMU (-device isa-debug-exit,iobase=0xf4) exit with status (v<<1)|1. */
static inline void qemu_debug_exit(uint8_t v) { outl(0xf4, v); }

/* ---- Serial (COM1) from C, used by fault_handler and early boot ---- */
void serial_init(void);
void serial_putc(char c);
void boot_log_write_all(void); /* Swift (arch/Serial.swift): the boot log's lines not yet written */
void serial_puts(const char *s);

#endif
