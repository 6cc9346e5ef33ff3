/*
 * The kernel heap (heap.c) on the host: compiled with its allocator entry points renamed
 * (kheap_*), run over a region of host memory, checked against a shadow of what it handed
 * out. `make -C kernel check` builds and runs it; `make test` calls that.
 *
 * What it asserts: blocks never overlap and keep their contents; every block of size S
 * (small classes) is S-aligned; freeing everything returns heap_bytes_used() to 0 and
 * heap_bytes_free() to the whole heap, with the largest free run as large as the region
 * allows (buddies merged, slabs returned); a request the heap cannot serve returns NULL
 * (ENOMEM), never a block it does not have; exact page runs (3 pages cost 3 pages).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

void heap_init(uintptr_t start, uintptr_t end);
uint64_t heap_bytes_total(void);
uint64_t heap_bytes_used(void);
uint64_t heap_bytes_free(void);
uint64_t heap_largest_free_bytes(void);
void *kheap_malloc(size_t size);
void kheap_free(void *p);
int kheap_posix_memalign(void **out, size_t align, size_t size);
void *heap_alloc_pages(size_t pages);

void serial_puts(const char *s) { fprintf(stderr, "%s", s); }

static int failures;
#define CHECK(cond, ...) do { if (!(cond)) { failures++; fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__); \
    fprintf(stderr, __VA_ARGS__); fprintf(stderr, "\n"); } } while (0)

struct block { uint8_t *p; size_t size; uint8_t tag; };

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_random(void) { /* SplitMix64 */
    uint64_t z = (rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static size_t random_size(void) {
    switch (next_random() % 4) {
    case 0: return 1 + next_random() % 64;
    case 1: return 1 + next_random() % 2048;
    case 2: return 2049 + next_random() % (20 * 1024);
    default: return 4096 * (1 + next_random() % 40) + (next_random() % 2 ? 32 : 0);
    }
}

int main(void) {
    const size_t region = 16u << 20;
    uint8_t *mem = mmap(0, region + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) { perror("mmap"); return 2; }
    /* An unaligned start and a size that is not a power of two, as the kernel's region is. */
    uintptr_t start = (uintptr_t)mem + 100, end = (uintptr_t)mem + region - 3 * 4096;
    heap_init(start, end);
    const uint64_t total = heap_bytes_total();
    CHECK(heap_bytes_used() == 0, "fresh heap uses %llu", (unsigned long long)heap_bytes_used());
    CHECK(heap_bytes_free() == total, "fresh heap: free %llu of %llu", (unsigned long long)heap_bytes_free(), (unsigned long long)total);
    const uint64_t largest_fresh = heap_largest_free_bytes();

    /* Exact runs: three pages cost three pages. */
    void *three = kheap_malloc(3 * 4096);
    CHECK(three && heap_bytes_used() == 3 * 4096, "3-page run uses %llu", (unsigned long long)heap_bytes_used());
    CHECK(heap_bytes_free() == total - 3 * 4096, "3-page run leaves %llu free", (unsigned long long)heap_bytes_free());
    kheap_free(three);
    CHECK(heap_bytes_free() == total && heap_largest_free_bytes() == largest_fresh, "3-page run not merged back");

    enum { N = 4000 };
    static struct block live[N];
    int count = 0;
    for (int round = 0; round < 200000; round++) {
        int do_alloc = count == 0 || (count < N && next_random() % 100 < 55);
        if (do_alloc) {
            size_t size = random_size();
            void *p = 0;
            int rc = kheap_posix_memalign(&p, 16, size);
            if (rc != 0) { CHECK(rc == 12 && p == 0, "failed allocation: rc %d", rc); continue; }
            uint8_t *b = p;
            CHECK((uintptr_t)b >= start && (uintptr_t)b + size <= end, "block outside the region");
            if (size <= 2048) {
                size_t cls = 16; while (cls < size) cls <<= 1;
                CHECK(((uintptr_t)b & (cls - 1)) == 0, "small block of %zu not %zu-aligned", size, cls);
            } else {
                CHECK(((uintptr_t)b & 4095) == 0, "run not page aligned");
            }
            uint8_t tag = (uint8_t)next_random();
            memset(b, tag, size);
            live[count++] = (struct block){ b, size, tag };
        } else {
            int i = (int)(next_random() % (uint64_t)count);
            struct block v = live[i];
            for (size_t k = 0; k < v.size; k += 61) {
                if (v.p[k] != v.tag) { CHECK(0, "block %p (%zu bytes) overwritten at %zu", (void *)v.p, v.size, k); break; }
            }
            if (v.p[v.size - 1] != v.tag) CHECK(0, "block end overwritten");
            kheap_free(v.p);
            live[i] = live[--count];
        }
    }
    /* Exhaustion: keep taking 64 KiB until the heap says no; it must say ENOMEM, not lie. */
    int exhausted = 0;
    for (int i = 0; i < 10000 && count < N; i++) {
        void *p = 0;
        int rc = kheap_posix_memalign(&p, 16, 64 * 1024);
        if (rc != 0) { CHECK(rc == 12, "exhaustion rc %d", rc); exhausted = 1; break; }
        memset(p, 0xA5, 64 * 1024);
        live[count++] = (struct block){ p, 64 * 1024, 0xA5 };
    }
    CHECK(exhausted, "the heap never ran out");
    while (count > 0) {
        struct block v = live[--count];
        CHECK(v.p[0] == v.tag && v.p[v.size - 1] == v.tag, "block overwritten before final free");
        kheap_free(v.p);
    }
    CHECK(heap_bytes_used() == 0, "after freeing everything %llu bytes still used", (unsigned long long)heap_bytes_used());
    CHECK(heap_bytes_free() == total, "after freeing everything %llu of %llu free", (unsigned long long)heap_bytes_free(), (unsigned long long)total);
    CHECK(heap_largest_free_bytes() == largest_fresh, "fragmented: largest free run %llu, was %llu",
          (unsigned long long)heap_largest_free_bytes(), (unsigned long long)largest_fresh);

    /* A freed run can be had again whole: 4 MiB after the churn above. */
    void *big = heap_alloc_pages(1024);
    CHECK(big != 0, "4 MiB run not available after churn");
    kheap_free(big);
    if (failures) { fprintf(stderr, "heap_test: %d failures\n", failures); return 1; }
    printf("heap_test: ok (heap %llu KiB, largest run %llu KiB)\n", (unsigned long long)total / 1024,
           (unsigned long long)largest_fresh / 1024);
    return 0;
}
