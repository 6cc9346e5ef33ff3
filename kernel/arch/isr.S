/*
 * Interrupt entry stubs: 256 of them, 32 bytes apart, so arch.c can fill the IDT by
 * arithmetic. Each pushes a dummy error code where the CPU pushes none, then its vector.
 *
 * Exceptions (0-31) save every general register and call fault_handler(), which prints
 * them and halts: a fault is never silent.
 * Device interrupts (IRQ_VECTOR_BASE and the IRQ_PENDING_VECTORS after it, vectors.h) never
 * run Swift (Swift code uses SSE registers we would have to save): the stub sets bit
 * (vector - IRQ_VECTOR_BASE) in irq_pending, signals EOI to the local APIC and returns. The
 * main loop takes the bits and does the work.
 */
#include "vectors.h"

    .text
    .balign 32
    .global isr_stubs
isr_stubs:
    .set vec, 0
    .rept 256
    .balign 32
    .if (vec == 8) || (vec == 10) || (vec == 11) || (vec == 12) || (vec == 13) || (vec == 14) || (vec == 17) || (vec == 21) || (vec == 29) || (vec == 30)
    .else
    pushq $0
    .endif
    pushq $vec
    .if vec < 32                    /* the CPU's exceptions */
    jmp exception_common
    .else
    jmp irq_common
    .endif
    .set vec, vec + 1
    .endr

exception_common:
    push %rax
    push %rbx
    push %rcx
    push %rdx
    push %rsi
    push %rdi
    push %rbp
    push %r8
    push %r9
    push %r10
    push %r11
    push %r12
    push %r13
    push %r14
    push %r15
    mov %rsp, %rdi
    and $~15, %rsp
    call fault_handler
5:  cli
    hlt
    jmp 5b

irq_common:
    push %rax
    push %rcx
    mov 16(%rsp), %rcx              /* vector */
    cmp $LAPIC_SPURIOUS_VECTOR, %rcx
    je 2f                           /* spurious: no EOI */
    sub $IRQ_VECTOR_BASE, %rcx
    cmp $IRQ_PENDING_VECTORS, %rcx
    jae 1f
    lock btsq %rcx, irq_pending(%rip)
    jmp 3f
1:  lock incq irq_unexpected(%rip)
3:  mov lapic_eoi_register(%rip), %rax
    test %rax, %rax
    jz 2f
    movl $0, (%rax)
2:  pop %rcx
    pop %rax
    add $16, %rsp                   /* vector and error code */
    iretq

    .data
    .balign 8
    .global irq_pending, irq_unexpected, lapic_eoi_register
irq_pending:        .quad 0
irq_unexpected:     .quad 0
lapic_eoi_register: .quad 0
