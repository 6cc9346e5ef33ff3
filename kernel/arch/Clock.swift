import Arch

/// Monotonic time from the TSC, calibrated at boot (arch/Calibration.swift); and the LAPIC timer,
/// calibrated at the same time, used in one-shot mode to wake the idle loop at the next
/// deadline (tickless: an idle guest takes no timer interrupts it doesn't need).
enum Clock {
    nonisolated(unsafe) static var tscHz: UInt64 = 1_000_000_000
    nonisolated(unsafe) static var lapicHz: UInt64 = 0
    nonisolated(unsafe) static var bootTSC: UInt64 = 0

    /// Starts the clock: time 0 is the kernel's entry. Returns the TSC then (cycles since
    /// the virtual CPU's reset, i.e. what firmware and the loader took).
    static func markBoot() -> UInt64 {
        bootTSC = rdtsc()
        return bootTSC
    }

    /// How long calibration measures: its error falls as the window grows, and the boot waits for it.
    static let calibrationWindowUs: UInt64 = 6_000

    /// Measures the TSC and LAPIC timer rates (arch/Calibration.swift); returns what was measured.
    @discardableResult
    static func calibrate() -> Calibration.Result {
        let result = Calibration.measure(windowUs: calibrationWindowUs)
        tscHz = result.tscHz
        lapicHz = result.lapicHz
        return result
    }

    /// TSC cycles spent halted in `idle()` since boot. The rest of the uptime is the kernel's
    /// own work: its share of the virtual CPU (`/metrics`, and per packet in scripts/bench_vs_linux.py).
    nonisolated(unsafe) static var idleTicks: UInt64 = 0

    /// Nanoseconds since boot.
    static var nowNs: UInt64 { nanoseconds(ticks: rdtsc() &- bootTSC) }

    /// Nanoseconds halted since boot.
    static var idleNs: UInt64 { nanoseconds(ticks: idleTicks) }

    static func nanoseconds(ticks: UInt64) -> UInt64 {
        // split to avoid overflow: seconds part and remainder part
        let seconds = ticks / tscHz
        let rest = ticks % tscHz
        return seconds &* 1_000_000_000 &+ rest &* 1_000_000_000 / tscHz
    }

    /// Halts until the next interrupt, counting the time halted.
    static func idle() {
        let start = rdtsc()
        cpu_idle()
        idleTicks &+= rdtsc() &- start
    }

    static var nowMs: UInt64 { nowNs / 1_000_000 }

    /// When the armed one-shot fires, as the TSC reckons it (ns since boot); 0 when none is armed.
    /// Cleared when the timer's interrupt arrives (`timerFired`): the LAPIC timer and the TSC
    /// are calibrated separately, so the TSC's idea of the firing time is never trusted to say
    /// that it has fired.
    nonisolated(unsafe) static var armedDueNs: UInt64 = 0

    /// The timer's interrupt arrived: nothing is armed any more.
    static func timerFired() { armedDueNs = 0 }

    /// Makes sure the LAPIC timer fires within `ns` nanoseconds (capped to what the 32-bit
    /// counter holds). A one-shot already armed to fire no later than that is left alone: the
    /// early wake-up costs one pass of the loop, while re-arming before every `hlt` costs an
    /// emulated MMIO write per sleep — one per packet under load.
    static func wake(afterNs ns: UInt64) {
        guard lapicHz > 0 else { return }
        let now = nowNs
        if armedDueNs != 0 && armedDueNs <= now &+ ns { return }
        var ticks = ns / 1000 &* lapicHz / 1_000_000
        if ticks == 0 { ticks = 1 }
        if ticks > 0xFFFF_FFFF { ticks = 0xFFFF_FFFF }
        lapic_timer_oneshot(UInt32(ticks))
        armedDueNs = now &+ ticks &* 1_000_000 / lapicHz &* 1000
    }
}
