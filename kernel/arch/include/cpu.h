/*
 * CPU control and interrupts: time stamp counter, MSRs, cli/sti/hlt, and the pending-IRQ
 * word the interrupt stubs (isr.S) set and the main loop takes.
 */
#ifndef RINGSIDE_CPU_H
#define RINGSIDE_CPU_H
#include <stdint.h>
#include "vectors.h"

static inline uint64_t rdtsc(void) { uint32_t lo, hi; __asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)); return ((uint64_t)hi << 32) | lo; }
static inline uint64_t rdmsr(uint32_t msr) { uint32_t lo, hi; __asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr)); return ((uint64_t)hi << 32) | lo; }
static inline void wrmsr(uint32_t msr, uint64_t v) { __asm__ volatile("wrmsr" : : "c"(msr), "a"((uint32_t)v), "d"((uint32_t)(v >> 32))); }
/* CPUID leaf `leaf` (subleaf 0): out[0..3] = eax, ebx, ecx, edx. */
static inline void cpuid(uint32_t leaf, uint32_t out[4]) {
    __asm__ volatile("cpuid" : "=a"(out[0]), "=b"(out[1]), "=c"(out[2]), "=d"(out[3]) : "a"(leaf), "c"(0));
}
static inline void cpu_pause(void) { __asm__ volatile("pause"); }
static inline void irq_enable(void) { __asm__ volatile("sti" ::: "memory"); }
static inline void irq_disable(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void compiler_barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- Interrupts: set by the stubs in isr.S, taken by the main loop ---- */
extern volatile uint64_t irq_pending;     /* bit n: vector IRQ_VECTOR_BASE+n fired */
extern volatile uint64_t irq_unexpected;  /* vectors past the pending word that fired */
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

void arch_init(void);                      /* IDT, legacy PIC remapped and masked */
/* Self-test: take a page fault (see arch.c). */
void arch_selftest_fault(void);

#endif
