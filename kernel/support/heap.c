/*
 * The kernel heap. Two layers, no headers in front of blocks (so alignment is free):
 *
 *  - pages: a binary buddy allocator over the heap's 4 KiB pages. A request for n pages
 *    takes the smallest free block of 2^k >= n pages, splits it down, and gives the unused
 *    tail back at once, so a run costs exactly n pages (a Swift array of 8 KiB + its 32-byte
 *    header takes 3 pages, not 4). Freeing merges a block with its buddy whenever the buddy
 *    is free, so memory that comes back is whole again: a burst of small and large
 *    allocations does not leave the heap fragmented into pieces nobody can use.
 *  - small blocks: sizes up to 2 KiB round up to a power of two (16 .. 2048). Each class
 *    owns whole pages (slabs), split into blocks of that size, so a block of size S is
 *    S-aligned. A slab keeps its own free list and a count of blocks in use, and goes back
 *    to the page allocator when its last block is freed.
 *
 * A table of `struct page`, one per page at the start of the region, says what each page
 * is, so free() needs no size. Swift's Embedded runtime allocates through
 * posix_memalign/free; a failed allocation returns ENOMEM (the runtime traps on it, which
 * is why the network stack sizes its own use from heap_bytes_free() and keeps a reserve).
 */
#include "arch.h"

#define PAGE_SIZE 4096u
#define SMALL_CLASSES 8          /* 16 << k for k = 0..7: 16 .. 2048 bytes */
#define MAX_ORDER 12             /* buddy blocks up to 16 MiB */
#define NONE 0xFFFFFFFFu
#define NO_BLOCK 0xFFFFu

enum page_kind {
    PAGE_FREE_TAIL = 0,  /* inside a free block, not its first page */
    PAGE_FREE_HEAD,      /* first page of a free buddy block of `order` */
    PAGE_RUN_HEAD,       /* first page of an allocated run of `count` pages */
    PAGE_RUN_TAIL,       /* the other pages of a run */
    PAGE_SMALL,          /* a slab of class `order` */
};

struct page {
    uint8_t kind;
    uint8_t order;       /* free block: buddy order; slab: size class */
    uint16_t in_use;     /* slab: blocks handed out */
    uint16_t free_block; /* slab: index of its first free block, NO_BLOCK when full */
    uint16_t reserved;
    uint32_t next, prev; /* free block: its order's list; slab: its class's partial list; run head: `next` = count */
};

static uintptr_t heap_base, heap_end;
static struct page *pages;
static uint32_t page_count;
static uint32_t free_lists[MAX_ORDER + 1];
static uint32_t partial_slabs[SMALL_CLASSES];
static uint64_t bytes_used;
static uint64_t pages_free;

/* ---- doubly linked lists of page indices ---- */

static void list_push(uint32_t *head, uint32_t i) {
    pages[i].prev = NONE;
    pages[i].next = *head;
    if (*head != NONE) pages[*head].prev = i;
    *head = i;
}

static void list_remove(uint32_t *head, uint32_t i) {
    if (pages[i].prev != NONE) pages[pages[i].prev].next = pages[i].next;
    else *head = pages[i].next;
    if (pages[i].next != NONE) pages[pages[i].next].prev = pages[i].prev;
    pages[i].next = pages[i].prev = NONE;
}

/* ---- buddy blocks ---- */

/* Gives the block of 2^order pages at index i back, merging with free buddies. */
static void block_free(uint32_t i, unsigned order) {
    pages_free += (uint64_t)1 << order;
    while (order < MAX_ORDER) {
        uint32_t buddy = i ^ ((uint32_t)1 << order);
        if (buddy + ((uint32_t)1 << order) > page_count) break;
        if (pages[buddy].kind != PAGE_FREE_HEAD || pages[buddy].order != order) break;
        list_remove(&free_lists[order], buddy);
        pages[buddy].kind = PAGE_FREE_TAIL;
        if (buddy < i) i = buddy;
        order++;
    }
    for (uint32_t p = i + 1; p < i + ((uint32_t)1 << order); p++) pages[p].kind = PAGE_FREE_TAIL;
    pages[i].kind = PAGE_FREE_HEAD;
    pages[i].order = (uint8_t)order;
    list_push(&free_lists[order], i);
}

/* The largest order a block starting at page i may have inside [i, end). */
static unsigned aligned_order(uint32_t i, uint32_t end) {
    unsigned order = 0;
    while (order < MAX_ORDER && (i & ((uint32_t)1 << order)) == 0 && i + ((uint32_t)2 << order) <= end) order++;
    return order;
}

/* Frees the pages [i, end) as the largest aligned blocks that tile them. */
static void range_free(uint32_t i, uint32_t end) {
    while (i < end) {
        unsigned order = aligned_order(i, end);
        block_free(i, order);
        i += (uint32_t)1 << order;
    }
}

/* A run of exactly n pages, or NONE. */
static uint32_t pages_alloc(uint32_t n) {
    unsigned want = 0;
    while (((uint32_t)1 << want) < n) want++;
    if (want > MAX_ORDER) return NONE;
    unsigned order = want;
    while (order <= MAX_ORDER && free_lists[order] == NONE) order++;
    if (order > MAX_ORDER) return NONE;
    uint32_t i = free_lists[order];
    list_remove(&free_lists[order], i);
    pages_free -= (uint64_t)1 << order;
    pages[i].kind = PAGE_RUN_HEAD;
    pages[i].next = n;
    pages[i].prev = NONE;
    for (uint32_t p = i + 1; p < i + n; p++) pages[p].kind = PAGE_RUN_TAIL;
    /* The tail beyond n pages goes straight back (as aligned blocks, largest first). */
    range_free(i + n, i + ((uint32_t)1 << order));
    return i;
}

static void *page_address(uint32_t i) { return (void *)(heap_base + (uintptr_t)i * PAGE_SIZE); }
static uint32_t page_index(uintptr_t a) { return (uint32_t)((a - heap_base) / PAGE_SIZE); }

void heap_init(uintptr_t start, uintptr_t end) {
    start = (start + PAGE_SIZE - 1) & ~(uintptr_t)(PAGE_SIZE - 1);
    end &= ~(uintptr_t)(PAGE_SIZE - 1);
    /* The page table sits at the start of the region and describes the pages after it. */
    size_t total = (end - start) / PAGE_SIZE;
    size_t table_pages = (total * sizeof(struct page) + PAGE_SIZE - 1) / PAGE_SIZE;
    if (table_pages >= total) table_pages = total;
    pages = (struct page *)start;
    heap_base = start + table_pages * PAGE_SIZE;
    heap_end = end;
    page_count = (uint32_t)(total - table_pages);
    memset(pages, 0, page_count * sizeof(struct page));
    for (unsigned k = 0; k <= MAX_ORDER; k++) free_lists[k] = NONE;
    for (unsigned k = 0; k < SMALL_CLASSES; k++) partial_slabs[k] = NONE;
    bytes_used = 0;
    pages_free = 0;
    range_free(0, page_count);
}

uint64_t heap_bytes_total(void) { return (uint64_t)page_count * PAGE_SIZE; }
uint64_t heap_bytes_used(void) { return bytes_used; }
uint64_t heap_bytes_free(void) { return pages_free * PAGE_SIZE; }

uint64_t heap_largest_free_bytes(void) {
    for (int k = MAX_ORDER; k >= 0; k--)
        if (free_lists[k] != NONE) return (uint64_t)PAGE_SIZE << k;
    return 0;
}

/* ---- small blocks ---- */

static unsigned class_for(size_t bytes) {
    unsigned k = 0;
    while ((16u << k) < bytes) k++;
    return k;
}

static void *small_alloc(unsigned k) {
    size_t size = 16u << k;
    if (partial_slabs[k] == NONE) {
        uint32_t i = pages_alloc(1);
        if (i == NONE) return 0;
        struct page *p = &pages[i];
        p->kind = PAGE_SMALL;
        p->order = (uint8_t)k;
        p->in_use = 0;
        /* Thread the free list through the blocks: block b holds the index of the next. */
        uint16_t blocks = (uint16_t)(PAGE_SIZE / size);
        uint8_t *base = page_address(i);
        for (uint16_t b = 0; b < blocks; b++)
            *(uint16_t *)(base + b * size) = (uint16_t)(b + 1 < blocks ? (unsigned)b + 1 : NO_BLOCK);
        p->free_block = 0;
        list_push(&partial_slabs[k], i);
    }
    uint32_t i = partial_slabs[k];
    struct page *p = &pages[i];
    uint8_t *block = (uint8_t *)page_address(i) + (size_t)p->free_block * size;
    p->free_block = *(uint16_t *)block;
    p->in_use++;
    if (p->free_block == NO_BLOCK) list_remove(&partial_slabs[k], i);
    bytes_used += size;
    return block;
}

static void small_free(uint32_t i, uintptr_t a) {
    struct page *p = &pages[i];
    unsigned k = p->order;
    size_t size = 16u << k;
    uintptr_t offset = a - (uintptr_t)page_address(i);
    if (offset % size != 0 || p->in_use == 0) {
        serial_puts("heap: free of a pointer that was not allocated\n");
        return;
    }
    int was_full = p->free_block == NO_BLOCK;
    *(uint16_t *)a = p->free_block;
    p->free_block = (uint16_t)(offset / size);
    p->in_use--;
    bytes_used -= size;
    if (was_full) list_push(&partial_slabs[k], i);
    if (p->in_use == 0) {
        list_remove(&partial_slabs[k], i);
        block_free(i, 0);
    }
}

/* ---- the C interface ---- */

void *malloc(size_t size) {
    if (size == 0) size = 1;
    if (size <= (16u << (SMALL_CLASSES - 1))) return small_alloc(class_for(size));
    if (size > heap_bytes_total()) return 0;
    uint32_t n = (uint32_t)((size + PAGE_SIZE - 1) / PAGE_SIZE);
    uint32_t i = pages_alloc(n);
    if (i == NONE) return 0;
    bytes_used += (uint64_t)n * PAGE_SIZE;
    return page_address(i);
}

void *calloc(size_t n, size_t size) {
    if (size && n > (size_t)-1 / size) return 0;
    void *p = malloc(n * size);
    if (p) memset(p, 0, n * size);
    return p;
}

void *heap_alloc_pages(size_t count) {
    void *p = heap_alloc_pages_uncleared(count);
    if (p) memset(p, 0, (count ? count : 1) * PAGE_SIZE);
    return p;
}

void *heap_alloc_pages_uncleared(size_t count) {
    if (count == 0) count = 1;
    return malloc(count * PAGE_SIZE);
}

int posix_memalign(void **out, size_t align, size_t size) {
    if (align > PAGE_SIZE || (align & (align - 1))) return 22; /* EINVAL */
    if (size < align) size = align;  /* blocks of size S are S-aligned */
    void *p = malloc(size);
    if (!p) return 12; /* ENOMEM */
    *out = p;
    return 0;
}

void free(void *ptr) {
    if (!ptr) return;
    uintptr_t a = (uintptr_t)ptr;
    if (a < heap_base || a >= heap_end) {
        serial_puts("heap: free of a pointer outside the heap\n");
        return;
    }
    uint32_t i = page_index(a);
    struct page *p = &pages[i];
    if (p->kind == PAGE_SMALL) {
        small_free(i, a);
    } else if (p->kind == PAGE_RUN_HEAD && (a & (PAGE_SIZE - 1)) == 0) {
        uint32_t n = p->next;
        bytes_used -= (uint64_t)n * PAGE_SIZE;
        range_free(i, i + n);
    } else {
        serial_puts("heap: free of a pointer that was not allocated\n");
    }
}
