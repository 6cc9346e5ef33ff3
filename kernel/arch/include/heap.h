/*
 * The kernel heap (support/heap.c) and the few libc functions the Embedded Swift runtime
 * links against (support/libc.c).
 */
#ifndef RINGSIDE_HEAP_H
#define RINGSIDE_HEAP_H
#include <stdint.h>
#include <stddef.h>

void heap_init(uintptr_t start, uintptr_t end);
void *heap_alloc_pages(size_t pages);      /* zeroed, page aligned, for DMA rings */
/* Page aligned, holding whatever was there before: for memory whose every byte is written
 * before it is read (BufferPool's buffers, see there). */
void *heap_alloc_pages_uncleared(size_t pages);
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

#endif
