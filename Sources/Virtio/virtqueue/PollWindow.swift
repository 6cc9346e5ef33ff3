// How long a driver with nothing to do polls a used ring before it halts and waits for the
// device's interrupt: an adaptive window, after the policy of Linux's guest haltpoll governor
// (drivers/cpuidle/governors/haltpoll.c: grow when polling longer would have caught the wakeup,
// shrink when the sleep was long). Written for the kernel's main loop; pure logic, tested on
// the host.
//
// Why poll at all: under QEMU a halted vCPU is woken by the device's interrupt through the
// host (a thread wakeup, then the interrupt taken under QEMU's global lock, then an EOI that
// exits to QEMU again). A vCPU that polls the used ring with the ring's interrupts off sees the
// device's store to used.idx directly. That shortens every round trip while traffic is dense,
// at the price of the vCPU spinning for at most `windowNs` per idle gap; when traffic stops the
// window shrinks to zero and the CPU halts at once, as without polling.

/// The adaptive poll window. `windowNs` starts at 0 (no polling): the first wakeup by work
/// that came within `maxNs` of halting opens it to `growStartNs`; each further one doubles it,
/// up to `maxNs`. A sleep longer than `maxNs` halves it (below `growStartNs` it closes).
public struct PollWindow: Equatable {
    /// The longest window by default. Linux's guest_halt_poll_ns is 200 µs, for KVM, where a
    /// halted vCPU wakes within tens of µs. Under TCG a frame that wakes a halted vCPU comes
    /// 200–250 µs after the last one for an echo with one outstanding (the host's path through
    /// QEMU's main loop and lock), so a 200 µs window could never learn that polling catches
    /// the next frame (which it then does ~100 µs after the last): 500 µs.
    public static let defaultMaxNs: UInt64 = 500_000
    /// Linux's guest_halt_poll_grow_start: 50 µs.
    public static let growStartNs: UInt64 = 50_000

    /// The longest poll; 0 turns polling off.
    public let maxNs: UInt64
    /// How long the next idle gap is polled before halting.
    public private(set) var windowNs: UInt64 = 0
    /// Idle gaps that polling ended with work found, and ones it did not (the CPU halted after).
    public private(set) var hits: UInt64 = 0
    public private(set) var misses: UInt64 = 0

    public init(maxNs: UInt64 = PollWindow.defaultMaxNs) {
        self.maxNs = maxNs
    }

    /// The poll found work: the window was long enough, keep it.
    public mutating func hit() { hits &+= 1 }

    /// The poll ran out (or there was none) and the CPU halted; `idleNs` is the whole gap,
    /// poll and halt. `byWork`: what woke it was the work the poll looks for (the ring's
    /// used-buffer interrupt), not a deadline the driver set itself or another device — a
    /// timer or a console completion soon after halting says nothing about how soon the next
    /// used buffer comes. A gap longer than `maxNs` no window could have caught: shrink.
    public mutating func halted(idleNs: UInt64, byWork: Bool) {
        if windowNs > 0 { misses &+= 1 }
        guard maxNs > 0 else { return }
        if idleNs > maxNs {
            windowNs /= 2
            if windowNs < Self.growStartNs { windowNs = 0 }
        } else if byWork {
            windowNs = min(maxNs, windowNs == 0 ? min(Self.growStartNs, maxNs) : windowNs &* 2)
        }
    }
}
