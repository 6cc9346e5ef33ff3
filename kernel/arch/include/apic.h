/*
 * The local APIC: interrupt delivery, EOI, the one-shot timer.
 */
#ifndef RINGSIDE_APIC_H
#define RINGSIDE_APIC_H
#include <stdint.h>

/* Register offsets from the local APIC's base (Intel SDM vol. 3, table 11-1). */
#define LAPIC_ID         0x020
#define LAPIC_EOI        0x0B0
#define LAPIC_SVR        0x0F0
#define LAPIC_LVT_TIMER  0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_CUR  0x390
#define LAPIC_TIMER_DIV  0x3E0
#define LAPIC_LVT_MASKED (1u << 16)

uint32_t lapic_init(void);                 /* enable the local APIC; returns its id */
uint64_t lapic_base(void);
/* The rates of the TSC and of this timer are measured in Swift (arch/Calibration.swift). */
/* One-shot LAPIC timer: fire IRQ_VECTOR_TIMER after `ticks` LAPIC timer ticks (0 stops it). */
void lapic_timer_oneshot(uint32_t ticks);

#endif
