/*
 * Allocation that can fail, for code shared by the kernel and the host (NetStack).
 *
 * Swift's own allocations trap when the allocator says no; the network stack's large
 * buffers (TCP rings, HTTP inboxes) come from here instead, so an allocation failure is a
 * nil the stack counts and survives. In the kernel posix_memalign/free are the kernel
 * heap's (kernel/support/heap.c); on the host they are libc's.
 */
#ifndef RINGSIDE_HEAP_TRY_H
#define RINGSIDE_HEAP_TRY_H
#include <stddef.h>

int posix_memalign(void **memptr, size_t alignment, size_t size);
void free(void *ptr);

/* `size` bytes aligned to 16, or NULL when the heap cannot give them. */
static inline void *heap_try_alloc(size_t size) {
    void *p = (void *)0;
    if (size == 0 || posix_memalign(&p, 16, size) != 0) return (void *)0;
    return p;
}

static inline void heap_release(void *p) { free(p); }
#endif
