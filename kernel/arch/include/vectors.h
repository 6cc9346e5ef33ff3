/*
 * The interrupt vectors, named once. isr.S, arch.c and the Swift drivers (through module
 * `Arch`) all take them from here. Only #defines: this header is included by assembly too.
 *
 *   0-31     CPU exceptions: fault_handler prints them and halts
 *   32-95    device interrupts: the stub sets bit (vector - IRQ_VECTOR_BASE) in irq_pending
 *   96-254   unexpected: counted in irq_unexpected
 *   255      the local APIC's spurious vector: no EOI
 */
#ifndef RINGSIDE_VECTORS_H
#define RINGSIDE_VECTORS_H

/* The first vector irq_pending tracks, and how many it tracks (one bit each). */
#define IRQ_VECTOR_BASE           32
#define IRQ_PENDING_VECTORS       64

/* The local APIC timer (one-shot: wakes the idle loop at the next deadline). */
#define IRQ_VECTOR_TIMER          32
/* virtio-net (MSI-X): receiveq, transmitq, configuration change (virtio 1.2, 4.1.5.1.2). */
#define IRQ_VECTOR_NET_RX         33
#define IRQ_VECTOR_NET_TX         34
#define IRQ_VECTOR_NET_CONFIG     35
/* virtio-console port 0 (MSI-X): receiveq, transmitq, configuration change. */
#define IRQ_VECTOR_CONSOLE_RX     36
#define IRQ_VECTOR_CONSOLE_TX     37
#define IRQ_VECTOR_CONSOLE_CONFIG 38
/* virtio-mmio (QEMU microvm): one IOAPIC line per device for every reason, told apart by the
 * device's InterruptStatus register (virtio 1.2, 4.2.3.4). */
#define IRQ_VECTOR_NET_LINE       39
#define IRQ_VECTOR_CONSOLE_LINE   40

/* Programmed into the local APIC's spurious-interrupt vector register. */
#define LAPIC_SPURIOUS_VECTOR     0xff

#endif
