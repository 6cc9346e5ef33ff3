/*
 * The kernel heap. Two layers, no headers in front of blocks (so alignment is free):
 *
 *  - pages: the heap is an array of 4 KiB pages; a run of 2^order pages is handed out
 *    from per-order free lists, carving new runs from the top ("brk") when a list is empty.
 *  - small blocks: sizes up to 2 KiB round up to a power of two (16 .. 2048). Each class
 *    owns whole pages, split into blocks of that size, so a block of size S is S-aligned.
 *
 * page_info[] remembers, per page, which class or run order it belongs to, so free()
 * needs no size. Swift's Embedded runtime allocates through posix_memalign/free.
 */
#include "arch.h"

#define PAGE_SIZE 4096u
#define SMALL_CLASSES 8          /* 16 << k for k = 0..7: 16 .. 2048 bytes */
#define MAX_ORDER 12             /* runs up to 16 MiB */
#define INFO_FREE 0x00
#define INFO_SMALL 0x40          /* | class */
#define INFO_RUN 0x80            /* | order, on the first page of a run */
#define INFO_RUN_TAIL 0xC0       /* the other pages of a run */

struct free_node { struct free_node *next; };

static uintptr_t heap_base, heap_end, heap_brk;
static uint8_t *page_info;
static size_t page_count;
static struct free_node *small_free[SMALL_CLASSES];
static struct free_node *run_free[MAX_ORDER + 1];
static uint64_t bytes_used;

void heap_init(uintptr_t start, uintptr_t end) {
    start = (start + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
    end &= ~(uintptr_t)(PAGE_SIZE - 1);
    /* the page_info table sits at the start of the region */
    size_t pages = (end - start) / PAGE_SIZE;
    size_t info_pages = (pages + PAGE_SIZE - 1) / PAGE_SIZE;
    page_info = (uint8_t *)start;
    memset(page_info, 0, info_pages * PAGE_SIZE);
    heap_base = start + info_pages * PAGE_SIZE;
    heap_end = end;
    heap_brk = heap_base;
    page_count = (heap_end - heap_base) / PAGE_SIZE;
}

uint64_t heap_bytes_total(void) { return heap_end - heap_base; }
uint64_t heap_bytes_used(void) { return bytes_used; }

static size_t page_index(uintptr_t p) { return (p - heap_base) / PAGE_SIZE; }

static void *run_alloc(unsigned order) {
    if (order > MAX_ORDER) return 0;
    void *p;
    if (run_free[order]) {
        struct free_node *n = run_free[order];
        run_free[order] = n->next;
        p = n;
    } else {
        size_t bytes = (size_t)PAGE_SIZE << order;
        if (heap_end - heap_brk < bytes) return 0;
        p = (void *)heap_brk;
        heap_brk += bytes;
    }
    size_t first = page_index((uintptr_t)p);
    page_info[first] = INFO_RUN | order;
    for (size_t i = 1; i < ((size_t)1 << order); i++) page_info[first + i] = INFO_RUN_TAIL;
    bytes_used += (uint64_t)PAGE_SIZE << order;
    return p;
}

static unsigned order_for(size_t bytes) {
    unsigned order = 0;
    while (((size_t)PAGE_SIZE << order) < bytes) order++;
    return order;
}

static unsigned class_for(size_t bytes) {
    unsigned k = 0;
    while ((16u << k) < bytes) k++;
    return k;
}

static void *small_alloc(unsigned k) {
    if (!small_free[k]) {
        uint8_t *page = run_alloc(0);
        if (!page) return 0;
        bytes_used -= PAGE_SIZE;       /* counted per block below */
        page_info[page_index((uintptr_t)page)] = INFO_SMALL | k;
        size_t size = 16u << k;
        for (size_t off = PAGE_SIZE; off >= size; off -= size) {
            struct free_node *n = (struct free_node *)(page + off - size);
            n->next = small_free[k];
            small_free[k] = n;
        }
    }
    struct free_node *n = small_free[k];
    small_free[k] = n->next;
    bytes_used += 16u << k;
    return n;
}

void *malloc(size_t size) {
    if (size == 0) size = 1;
    if (size <= (16u << (SMALL_CLASSES - 1))) return small_alloc(class_for(size));
    return run_alloc(order_for(size));
}

void *calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) return 0;
    void *p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *heap_alloc_pages(size_t pages) {
    void *p = run_alloc(order_for(pages * PAGE_SIZE));
    if (p) memset(p, 0, pages * PAGE_SIZE);
    return p;
}

int posix_memalign(void **out, size_t align, size_t size) {
    if (align > PAGE_SIZE || (align & (align - 1))) return 22; /* EINVAL */
    if (size < align) size = align;  /* blocks of size S are S-aligned */
    void *p = malloc(size);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *p) {
    if (!p) return;
    uintptr_t a = (uintptr_t)p;
    if (a < heap_base || a >= heap_brk) {
        serial_puts("heap: free of a pointer outside the heap\n");
        return;
    }
    uint8_t info = page_info[page_index(a)];
    if ((info & 0xC0) == INFO_SMALL) {
        unsigned k = info & 0x3F;
        struct free_node *n = p;
        n->next = small_free[k];
        small_free[k] = n;
        bytes_used -= 16u << k;
    } else if ((info & 0xC0) == INFO_RUN && (a & (PAGE_SIZE - 1)) == 0) {
        unsigned order = info & 0x3F;
        size_t first = page_index(a);
        for (size_t i = 0; i < ((size_t)1 << order); i++) page_info[first + i] = INFO_FREE;
        struct free_node *n = p;
        n->next = run_free[order];
        run_free[order] = n;
        bytes_used -= (uint64_t)PAGE_SIZE << order;
    } else {
        serial_puts("heap: free of a pointer that was not allocated\n");
    }
}
