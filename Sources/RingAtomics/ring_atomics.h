/* Ordered access to memory shared with a virtio device.
 *
 * The split virtqueue protocol (virtio 1.x, 2.7.13) relies on ordering: the driver fills
 * descriptors and the ring slot *before* it publishes avail->idx, and reads used->ring[]
 * only *after* it has seen used->idx move. Swift has no memory-model primitives that work
 * the same in Embedded and hosted mode, so these tiny C helpers provide them for both the
 * kernel and the host tests (where the "device" is another piece of code or thread).
 */
#ifndef RING_ATOMICS_H
#define RING_ATOMICS_H
#include <stdint.h>

/* Full barrier: orders earlier stores before later loads (virtio_mb). */
static inline void ring_mb(void) { __atomic_thread_fence(__ATOMIC_SEQ_CST); }
/* Store-store barrier before publishing an index (virtio_wmb). */
static inline void ring_wmb(void) { __atomic_thread_fence(__ATOMIC_RELEASE); }
/* Load-load barrier after reading an index (virtio_rmb). */
static inline void ring_rmb(void) { __atomic_thread_fence(__ATOMIC_ACQUIRE); }

static inline uint16_t ring_load16(const void *p) { return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE); }
static inline void ring_store16(void *p, uint16_t v) { __atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE); }
static inline uint32_t ring_load32(const void *p) { return __atomic_load_n((const uint32_t *)p, __ATOMIC_ACQUIRE); }
static inline void ring_store32(void *p, uint32_t v) { __atomic_store_n((uint32_t *)p, v, __ATOMIC_RELEASE); }
static inline uint64_t ring_load64(const void *p) { return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE); }
static inline void ring_store64(void *p, uint64_t v) { __atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE); }

#endif
