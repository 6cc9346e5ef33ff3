/*
 * x86_64 machine setup in C: the IDT, the legacy PIC (silenced), the local APIC and its
 * timer, the fault handler, on-demand MMIO mappings, and COM1. (The PVH start info is read in
 * Swift: boot/BootMemory.swift over Sources/PVH.) Compiled with -mgeneral-regs-only: nothing
 * here touches SSE state, so the fault handler can run at any point.
 */
#include "arch.h"
#include "x86.h"

/* ---------------- COM1 ---------------- */

void serial_init(void) {
    outb(COM1 + 1, 0x00);   /* no UART interrupts */
    outb(COM1 + 3, 0x80);   /* DLAB */
    outb(COM1 + 0, 0x01);   /* 115200 baud */
    outb(COM1 + 1, 0x00);
    outb(COM1 + 3, 0x03);   /* 8N1 */
    outb(COM1 + 2, 0xC7);   /* FIFO on, cleared */
    outb(COM1 + 4, 0x03);   /* DTR, RTS */
}

/* With the FIFO on (serial_init), THRE in the line status register means the whole 16-byte
 * transmit FIFO is empty: one status read per 16 bytes, not one per byte. Under TCG each port
 * access is an exit into QEMU's device model (the serial log at boot: ~10 us a byte). */
#define UART_FIFO_BYTES 16
static int fifo_room;

void serial_putc(char c) {
    if (fifo_room == 0) {
        for (int spin = 0; spin < 100000 && !(inb(COM1 + 5) & 0x20); spin++) cpu_pause();
        fifo_room = UART_FIFO_BYTES;
    }
    outb(COM1, (uint8_t)c);
    fifo_room--;
}

void serial_puts(const char *s) { while (*s) serial_putc(*s++); }

static void serial_hex(uint64_t v, int digits) {
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--) serial_putc(hex[(v >> (i * 4)) & 0xf]);
}

/* ---------------- IDT ---------------- */
struct idt_gate {
    uint16_t offset_low;
    uint16_t selector;
    uint8_t ist;
    uint8_t type_attr;
    uint16_t offset_mid;
    uint32_t offset_high;
    uint32_t reserved;
} __attribute__((packed));

static struct idt_gate idt[256] __attribute__((aligned(16)));
extern char isr_stubs[];
#define ISR_STUB_SIZE 32
#define GATE_INTERRUPT 0x8E  /* present, DPL 0, 64-bit interrupt gate (IF cleared on entry) */

void arch_init(void) {
    for (int v = 0; v < 256; v++) {
        uint64_t a = (uint64_t)(uintptr_t)(isr_stubs + v * ISR_STUB_SIZE);
        idt[v].offset_low = (uint16_t)a;
        idt[v].selector = KERNEL_CS;
        idt[v].ist = 0;
        idt[v].type_attr = GATE_INTERRUPT;
        idt[v].offset_mid = (uint16_t)(a >> 16);
        idt[v].offset_high = (uint32_t)(a >> 32);
        idt[v].reserved = 0;
    }
    struct { uint16_t limit; uint64_t base; } __attribute__((packed)) idtr = { sizeof(idt) - 1, (uint64_t)(uintptr_t)idt };
    __asm__ volatile("lidt %0" : : "m"(idtr));

    /* The 8259 PICs: remap to 0x20/0x28 so a stray legacy IRQ can't look like an
     * exception, then mask every line. We take interrupts through the LAPIC (MSI-X). */
    outb(0x20, 0x11); outb(0xA0, 0x11);
    outb(0x21, 0x20); outb(0xA1, 0x28);
    outb(0x21, 0x04); outb(0xA1, 0x02);
    outb(0x21, 0x01); outb(0xA1, 0x01);
    outb(0x21, 0xFF); outb(0xA1, 0xFF);
}

/* ---------------- Faults ---------------- */
struct fault_frame {
    uint64_t r15, r14, r13, r12, r11, r10, r9, r8, rbp, rdi, rsi, rdx, rcx, rbx, rax;
    uint64_t vector, error_code, rip, cs, rflags, rsp, ss;
};

static const char *const exception_names[32] = {
    "divide error", "debug", "NMI", "breakpoint", "overflow", "bound range", "invalid opcode",
    "device not available", "double fault", "coprocessor segment", "invalid TSS",
    "segment not present", "stack fault", "general protection", "page fault", "reserved",
    "x87 FP", "alignment check", "machine check", "SIMD FP", "virtualization", "control protection",
    "reserved", "reserved", "reserved", "reserved", "reserved", "reserved", "hypervisor injection",
    "VMM communication", "security", "reserved",
};

static void reg(const char *name, uint64_t v) {
    serial_puts(name); serial_puts("="); serial_hex(v, 16); serial_puts(" ");
}

__attribute__((noreturn)) void fault_handler(struct fault_frame *f) {
    uint64_t cr2;
    __asm__ volatile("mov %%cr2, %0" : "=r"(cr2));
    serial_puts("\n!!! CPU exception ");
    serial_hex(f->vector, 2);
    serial_puts(" (");
    serial_puts(f->vector < 32 ? exception_names[f->vector] : "?");
    serial_puts(") error=");
    serial_hex(f->error_code, 16);
    serial_puts("\n");
    reg("rip", f->rip); reg("cs", f->cs); reg("rflags", f->rflags); reg("rsp", f->rsp); serial_puts("\n");
    reg("rax", f->rax); reg("rbx", f->rbx); reg("rcx", f->rcx); reg("rdx", f->rdx); serial_puts("\n");
    reg("rsi", f->rsi); reg("rdi", f->rdi); reg("rbp", f->rbp); reg("cr2", cr2); serial_puts("\n");
    reg("r8 ", f->r8); reg("r9 ", f->r9); reg("r10", f->r10); reg("r11", f->r11); serial_puts("\n");
    reg("r12", f->r12); reg("r13", f->r13); reg("r14", f->r14); reg("r15", f->r15); serial_puts("\n");
    serial_puts("kernel halted\n");
    qemu_debug_exit(0x7f); /* under test harnesses: end QEMU with a failure status */
    for (;;) __asm__ volatile("cli; hlt");
}

/* Swift's fatalError/precondition traps land here via the Embedded runtime's ud2 as
 * #UD (vector 6) with the trapping rip, which is what we want: printed, then halt. */

/* ---------------- Local APIC (register offsets in apic.h) ---------------- */

extern volatile uint64_t lapic_eoi_register;
static uint64_t lapic;

uint64_t lapic_base(void) { return lapic; }

uint32_t lapic_init(void) {
    uint64_t base = rdmsr(MSR_APIC_BASE);
    wrmsr(MSR_APIC_BASE, base | (1u << 11)); /* global enable */
    lapic = base & 0xFFFFF000ull;
    arch_map_mmio(lapic, 4096);
    mmio_write32(lapic + LAPIC_SVR, 0x100 | LAPIC_SPURIOUS_VECTOR); /* software enable */
    mmio_write32(lapic + LAPIC_TIMER_DIV, 0x3);              /* divide by 16 */
    mmio_write32(lapic + LAPIC_LVT_TIMER, LAPIC_LVT_MASKED | IRQ_VECTOR_TIMER);
    lapic_eoi_register = lapic + LAPIC_EOI;
    return mmio_read32(lapic + LAPIC_ID) >> 24;
}

void lapic_timer_oneshot(uint32_t ticks) {
    /* The LVT stays as written (one-shot, unmasked) after the timer fires: write it once.
     * Every MMIO write is an exit to QEMU's APIC model, and the idle loop arms the timer often. */
    static int lvt_written;
    if (ticks == 0) {
        mmio_write32(lapic + LAPIC_TIMER_INIT, 0);
        return;
    }
    if (!lvt_written) {
        mmio_write32(lapic + LAPIC_LVT_TIMER, IRQ_VECTOR_TIMER); /* one-shot, unmasked */
        lvt_written = 1;
    }
    mmio_write32(lapic + LAPIC_TIMER_INIT, ticks);
}

/* ---------------- MMIO mappings beyond the boot map ---------------- */
extern uint64_t boot_pml4[512];
/* PTE_* come from x86.h, shared with boot.S. */
#define PTE_ADDR    0x000FFFFFFFFFF000ull

static uint64_t *table_at(uint64_t *parent, unsigned index) {
    if (!(parent[index] & PTE_PRESENT)) {
        uint64_t *t = heap_alloc_pages(1);
        if (!t) return 0;
        parent[index] = (uint64_t)(uintptr_t)t | PTE_PRESENT | PTE_WRITE;
    }
    return (uint64_t *)(uintptr_t)(parent[index] & PTE_ADDR);
}

int arch_map_mmio(uint64_t phys, uint64_t size) {
    const uint64_t huge = PAGE_SIZE_2M;
    if (phys + size <= BOOT_MAP_END) return 0; /* the boot map covers it (uncached from BOOT_UNCACHED_START) */
    for (uint64_t a = phys & ~(huge - 1); a < phys + size; a += huge) {
        uint64_t *pdpt = table_at(boot_pml4, (a >> 39) & 511);
        if (!pdpt) return -1;
        uint64_t *pd = table_at(pdpt, (a >> 30) & 511);
        if (!pd) return -1;
        pd[(a >> 21) & 511] = a | PTE_PRESENT | PTE_WRITE | PTE_HUGE | PTE_PCD | PTE_PWT;
        __asm__ volatile("invlpg (%0)" : : "r"(a) : "memory");
    }
    return 0;
}

/* `ringside.fault=page` on the command line: touch an unmapped address (1 TiB), so tests can
 * check that a fault is reported, not swallowed. */
void arch_selftest_fault(void) {
    volatile uint64_t *nowhere = (volatile uint64_t *)(uintptr_t)0x10000000000ull;
    (void)*nowhere;
}
