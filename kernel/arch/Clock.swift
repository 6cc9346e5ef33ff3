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
        anchorTSC = bootTSC
        return bootTSC
    }

    /// How long the boot's calibration measures, all windows together (three at least): the
    /// boot waits for it. Short, because `CalibrationRefinement` measures the TSC again over
    /// 250 ms once the kernel serves; the LAPIC rate (QEMU: 62.5 MHz) needs only ~1 %.
    static let calibrationWindowUs: UInt64 = 1_500

    /// Measures the TSC and LAPIC timer rates (arch/Calibration.swift); returns what was
    /// measured. When the TSC rate is to be measured again (`refinement`, its PIT still
    /// counting), `finishRefinement` ends that later.
    static func calibrate() -> Calibration.Result {
        let result = Calibration.measure(windowUs: calibrationWindowUs, leavePITRunning: true)
        tscHz = result.tscHz
        lapicHz = result.lapicHz
        refinement = CalibrationRefinement(after: result)
        if refinement == nil && result.againstPIT { Calibration.quietPIT() }
        return result
    }

    /// The long measurement of the TSC rate under way, if any.
    nonisolated(unsafe) private(set) static var refinement: CalibrationRefinement?

    /// Once the refinement's span has passed (and a clean PIT read was had): the new rate
    /// applies from now on, the PIT is quieted, and the result is returned (once). nil otherwise.
    /// A refinement that cannot succeed ends too (the boot's rate stays, and the log says why),
    /// so the main loop, which does not sleep while one is overdue, never spins on it.
    static func finishRefinement() -> Calibration.Result? {
        guard let outcome = refinement?.finish() else { return nil }
        switch outcome {
        case .notYet:
            return nil
        case .refined(let refined):
            Calibration.quietPIT()
            setTSCRate(refined.tscHz)
            refinement = nil
            return refined
        case .abandoned(let reason):
            Calibration.quietPIT()
            refinement = nil
            log("clock: the TSC was not measured again (\(reason)); the boot estimate stays")
            return nil
        }
    }

    /// The TSC rate from now on is `hz`. Time stays continuous and monotonic: the time now, by
    /// the old rate, becomes the anchor the new rate counts from.
    static func setTSCRate(_ hz: UInt64) {
        let tsc = rdtsc()
        anchorNs = anchorNs &+ nanoseconds(ticks: tsc &- anchorTSC)
        anchorTSC = tsc
        tscHz = hz
    }

    /// `nowNs` is `anchorNs` plus the TSC since `anchorTSC`, at the current rate (boot: 0 and
    /// `bootTSC`; moved by `setTSCRate`).
    nonisolated(unsafe) private static var anchorTSC: UInt64 = 0
    nonisolated(unsafe) private static var anchorNs: UInt64 = 0

    /// TSC cycles spent halted in `idle()` since boot. The rest of the uptime is the kernel's
    /// own work: its share of the virtual CPU (`/metrics`, and per packet in scripts/bench_vs_linux.py).
    nonisolated(unsafe) static var idleTicks: UInt64 = 0

    /// Nanoseconds since boot.
    static var nowNs: UInt64 { anchorNs &+ nanoseconds(ticks: rdtsc() &- anchorTSC) }

    /// Nanoseconds since boot at TSC `tsc` (at the current rate; a stamp taken before
    /// `setTSCRate` moved the anchor is counted from boot).
    static func nanoseconds(sinceBootTSC tsc: UInt64) -> UInt64 {
        tsc >= anchorTSC ? anchorNs &+ nanoseconds(ticks: tsc &- anchorTSC) : nanoseconds(ticks: tsc &- bootTSC)
    }

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

    /// TSC cycles spent polling for work before halting (`MainLoop.pollForWork`): busy time
    /// (not in `idleTicks`), spent only so that work is seen sooner.
    nonisolated(unsafe) static var pollTicks: UInt64 = 0

    /// How long the idle loop polls before halting (`ringside.haltpoll=US` sets the longest
    /// window, 0 turns polling off); its hits and misses are in /metrics.
    nonisolated(unsafe) static var pollWindow = PollWindow()

    /// TSC cycles in `ns` nanoseconds, at the current rate.
    static func ticks(ns: UInt64) -> UInt64 { ns / 1000 &* tscHz / 1_000_000 }

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
