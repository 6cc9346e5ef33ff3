/*
 * The thin hardware layer Swift calls into: port and MMIO access, CPU control,
 * interrupts, the local APIC timer and the heap. Swift has no inline assembly, so every
 * instruction the kernel needs lives here as a static inline function.
 */
#ifndef RINGSIDE_ARCH_H
#define RINGSIDE_ARCH_H
#include <stdint.h>
#include <stddef.h>

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

/* ---- CPU ---- */
static inline uint64_t rdtsc(void) { uint32_t lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((uint64_t)hi << 32) | lo; }
static inline uint64_t rdmsr(uint32_t msr) { uint32_t lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((uint64_t)hi << 32) | lo; }
static inline void wrmsr(uint32_t msr, uint64_t v) { __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))); }
static inline void cpu_pause(void) { __asm__ volatile("pause"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- Interrupts: set by the stubs in isr.S, taken by the main loop ---- */
extern volatile uint64_t irq_pending;     /* bit n: vector 32+n fired */
extern volatile uint64_t irq_unexpected;  /* vectors >= 96 that fired */
static inline uint64_t irq_take_pending(void) { return __atomic_exchange_n(&irq_pending, 0, __ATOMIC_SEQ_CST); }

/* Sleep until an interrupt, unless one is already pending. `sti; hlt` is atomic (the
 * interrupt shadow of sti covers hlt), so a wakeup arriving after the check is not lost. */
static inline void cpu_idle(void) {
    __asm__ volatile("cli" ::: "memory");
    if (__atomic_load_n(&irq_pending, __ATOMIC_SEQ_CST) == 0)
        __asm__ volatile("sti; hlt" ::: "memory");
    else
        __asm__ volatile("sti" ::: "memory");
}

#define IRQ_VECTOR_BASE   32
#define IRQ_VECTOR_TIMER  32

void arch_init(void);                      /* IDT, legacy PIC remapped and masked */
uint32_t lapic_init(void);                 /* enable the local APIC; returns its id */
uint64_t lapic_base(void);
/* Calibrate TSC and LAPIC timer against PIT channel 2 over `ms` milliseconds. */
void timer_calibrate(uint32_t ms, uint64_t *tsc_hz, uint64_t *lapic_hz);
/* One-shot LAPIC timer: fire IRQ_VECTOR_TIMER after `ticks` LAPIC timer ticks (0 stops it). */
void lapic_timer_oneshot(uint32_t ticks);

/* Map [phys, phys+size) uncached if it lies outside the boot identity map. 0 on success. */
int arch_map_mmio(uint64_t phys, uint64_t size);
/* Self-test: take a page fault (see arch.c). */
void arch_selftest_fault(void);

/* Writing v here makes QEMU (-device isa-debug-exit,iobase=0xf4) exit with status (v<<1)|1. */
static inline void qemu_debug_exit(uint8_t v) { outl(0xf4, v); }

/* ---- Boot information and memory ---- */
extern uint64_t pvh_start_info;            /* physical address of struct hvm_start_info */
/* Copies the kernel command line into buf (NUL-terminated); returns its length. */
size_t boot_cmdline(char *buf, size_t cap);
/* Finds usable RAM from the PVH memory map and starts the heap after the kernel image. */
int boot_memory_init(void);
uint64_t boot_ram_bytes(void);             /* total usable RAM in the PVH map */
uint64_t kernel_image_bytes(void);

/* ---- Heap (heap.c) ---- */
void heap_init(uintptr_t start, uintptr_t end);
void *heap_alloc_pages(size_t pages);      /* zeroed, page aligned, for DMA rings and buffers */
uint64_t heap_bytes_total(void);
uint64_t heap_bytes_used(void);           /* blocks and runs handed out */
uint64_t heap_bytes_free(void);           /* pages not handed out (slabs count as used) */
uint64_t heap_largest_free_bytes(void);   /* the largest run one allocation can get now */
void *malloc(size_t size);
void *calloc(size_t n, size_t size);
void free(void *p);
int posix_memalign(void **out, size_t align, size_t size);

/* ---- Minimal string functions (libc.c) ---- */
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- Serial (COM1) from C, used by fault_handler and early boot ---- */
void serial_init(void);
void serial_putc(char c);
void serial_puts(const char *s);

#endif
