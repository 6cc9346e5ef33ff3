/* The few C library functions the Embedded Swift runtime and the compiler expect. */
#include "arch.h"

/* Eight bytes a step, then the tail: under TCG each iteration of a `rep` string instruction
 * is emulated on its own, so `rep stosq` clears a 1 MiB pool in an eighth of the steps
 * `rep stosb` takes. */
void *memset(void *d, int c, size_t n) {
    void *r = d;
    size_t words = n / 8, tail = n % 8;
    uint64_t pattern = (uint8_t)c * 0x0101010101010101ull;
    __asm__ volatile("rep stosq" : "+D"(d), "+c"(words) : "a"(pattern) : "memory");
    __asm__ volatile("rep stosb" : "+D"(d), "+c"(tail) : "a"(c) : "memory");
    return r;
}

void *memcpy(void *d, const void *s, size_t n) {
    void *r = d;
    size_t words = n / 8, tail = n % 8;
    __asm__ volatile("rep movsq" : "+D"(d), "+S"(s), "+c"(words) : : "memory");
    __asm__ volatile("rep movsb" : "+D"(d), "+S"(s), "+c"(tail) : : "memory");
    return r;
}

void *memmove(void *d, const void *s, size_t n) {
    unsigned char *dp = d;
    const unsigned char *sp = s;
    if (dp == sp || n == 0) return d;
    if (dp < sp || dp >= sp + n) return memcpy(d, s, n);
    /* overlapping, destination above source: copy backwards */
    dp += n - 1;
    sp += n - 1;
    __asm__ volatile("std; rep movsb; cld" : "+D"(dp), "+S"(sp), "+c"(n) : : "memory");
    return d;
}

int memcmp(const void *a, const void *b, size_t n) {
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i]) return x[i] < y[i] ? -1 : 1;
    return 0;
}

size_t strlen(const char *s) { size_t n = 0; while (s[n]) n++; return n; }

/* Hash seeding for Dictionary/Set: the TSC is unpredictable enough for a kernel
 * whose hash tables hold its own data, not an adversary's keys. */
void arc4random_buf(void *buf, size_t n) {
    uint64_t x = rdtsc() | 1;
    unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        p[i] = (unsigned char)x;
    }
}

double ceil(double x) {
    long long i = (long long)x;
    double d = (double)i;
    return (d < x) ? d + 1.0 : d;
}

/* Embedded Swift reports a fatal error through putchar before trapping. */
int putchar(int c) { boot_log_write_all(); serial_putc((char)c); return c; }
