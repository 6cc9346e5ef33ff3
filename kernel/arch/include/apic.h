/*
 * The local APIC (interrupt delivery, EOI, the one-shot timer) and the PIT-based
 * calibration of the TSC and that timer.
 */
#ifndef RINGSIDE_APIC_H
#define RINGSIDE_APIC_H
#include <stdint.h>

uint32_t lapic_init(void);                 /* enable the local APIC; returns its id */
uint64_t lapic_base(void);
/* Calibrate TSC and LAPIC timer against PIT channel 2 over `ms` milliseconds. */
void timer_calibrate(uint32_t ms, uint64_t *tsc_hz, uint64_t *lapic_hz);
/* One-shot LAPIC timer: fire IRQ_VECTOR_TIMER after `ticks` LAPIC timer ticks (0 stops it). */
void lapic_timer_oneshot(uint32_t ticks);

#endif
