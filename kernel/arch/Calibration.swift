import Arch

/// Measures the rates of the TSC and of the local APIC timer once at boot, against a reference
/// whose rate is known, and says how good the answer is.
///
/// References, best first:
/// 1. CPUID leaf 0x15 (TSC / core crystal ratio and the crystal's frequency, Intel SDM vol. 3
///    §18.7.3): exact, no waiting — when the CPU model reports it (QEMU's default models do not).
/// 2. The 8254 PIT, channel 0, read back with latch commands (ports 0x40/0x43) over a few short
///    windows, their median taken. Channel 0 needs no gate: channel 2, gated through port 0x61, does, and microvm has
///    no port 0x61 (QEMU's pcspk is not there) — there the old gated loop ended at once and read
///    a 4 MHz TSC. Each counter read is bracketed by two TSC reads; the error stated is half of
///    both brackets plus one PIT tick, over the window.
/// 3. Nothing usable (no PIT on the machine, or a rate out of any sane range): a 1 GHz guess,
///    logged as such, so timestamps are known to be unreliable rather than silently wrong.
///
/// The LAPIC timer counts down across the same window (QEMU runs it at 1 GHz / the divide
/// configuration: 62.5 MHz with lapic_init's divide-by-16).
enum Calibration {
    struct Result {
        var tscHz: UInt64
        var lapicHz: UInt64
        /// What the rates were measured against, for the boot log.
        var source: StaticString
        /// The time measured over, microseconds, all windows together (0 for CPUID).
        var windowUs: UInt64
        /// How many windows were measured (their median is the answer).
        var windows: Int = 1
        /// The relative error bound of `tscHz`, parts per million (0: exact by definition).
        var errorPPM: UInt64
        /// Measured against the PIT (what `CalibrationRefinement` can refine).
        var againstPIT = false
    }

    static let pitHz: UInt64 = 1_193_182
    static let pitSource: StaticString = "PIT channel 0"
    /// PIT ports (8254): channel 0 data and the mode/command register.
    static let pitChannel0: UInt16 = 0x40
    static let pitCommand: UInt16 = 0x43
    /// Channel 0, low then high byte, mode 2 (rate generator), binary; reload 0 means 65536.
    static let pitChannel0RateGenerator: UInt8 = 0x34
    /// Channel 0, low then high byte, mode 0 (one interrupt at terminal count, then silent).
    static let pitChannel0OneShot: UInt8 = 0x30
    /// Latch channel 0's count for a consistent two-byte read.
    static let pitLatchChannel0: UInt8 = 0x00

    static let plausibleTSCHz: ClosedRange<UInt64> = 50_000_000...20_000_000_000
    static let plausibleLAPICHz: ClosedRange<UInt64> = 1_000_000...10_000_000_000

    /// `leavePITRunning`: a PIT result leaves channel 0 counting (rate generator) for
    /// `Refinement`, which must then end with `quietPIT`.
    static func measure(windowUs: UInt64, leavePITRunning: Bool = false) -> Result {
        if let fromCPUID = cpuidTSCHz() {
            return Result(tscHz: fromCPUID, lapicHz: lapicHzAgainstTSC(tscHz: fromCPUID, windowUs: windowUs),
                          source: "CPUID 0x15", windowUs: windowUs, errorPPM: 0)
        }
        if let fromPIT = againstPIT(windowUs: windowUs) {
            if !leavePITRunning { quietPIT() }
            return fromPIT
        }
        quietPIT()
        return Result(tscHz: 1_000_000_000, lapicHz: 62_500_000, source: "nothing (no PIT, no CPUID 0x15): guessed",
                      windowUs: 0, errorPPM: 1_000_000)
    }

    /// TSC Hz from CPUID 0x15 when it reports both the ratio and the crystal's frequency.
    private static func cpuidTSCHz() -> UInt64? {
        var regs: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        let maxLeaf = withUnsafeMutableBytes(of: &regs) { raw -> UInt32 in
            let words = raw.bindMemory(to: UInt32.self)
            cpuid(0, words.baseAddress)
            return words[0]
        }
        guard maxLeaf >= 0x15 else { return nil }
        let (denominator, numerator, crystalHz) = withUnsafeMutableBytes(of: &regs) { raw -> (UInt32, UInt32, UInt32) in
            let words = raw.bindMemory(to: UInt32.self)
            cpuid(0x15, words.baseAddress)
            return (words[0], words[1], words[2])
        }
        guard denominator != 0, numerator != 0, crystalHz != 0 else { return nil }
        let hz = UInt64(crystalHz) &* UInt64(numerator) / UInt64(denominator)
        return plausibleTSCHz.contains(hz) ? hz : nil
    }

    /// The LAPIC timer's rate over `windowUs` of a TSC whose rate is known.
    private static func lapicHzAgainstTSC(tscHz: UInt64, windowUs: UInt64) -> UInt64 {
        let base = lapic_base()
        let cycles = tscHz / 1_000_000 &* windowUs
        mmio_write32(base + UInt64(LAPIC_TIMER_INIT), 0xFFFF_FFFF)
        let start = rdtsc()
        while rdtsc() &- start < cycles { cpu_pause() }
        let left = mmio_read32(base + UInt64(LAPIC_TIMER_CUR))
        mmio_write32(base + UInt64(LAPIC_TIMER_INIT), 0)
        return UInt64(0xFFFF_FFFF &- left) &* 1_000_000 / max(1, windowUs)
    }

    /// One latched read of channel 0's count, with the TSC just before and just after.
    static func readPIT() -> (count: UInt16, before: UInt64, after: UInt64) {
        let before = rdtsc()
        outb(pitCommand, pitLatchChannel0)
        let low = UInt16(inb(pitChannel0))
        let high = UInt16(inb(pitChannel0))
        let after = rdtsc()
        return (high << 8 | low, before, after)
    }

    /// One measurement over `targetTicks` PIT ticks: the TSC and LAPIC rates and the bracket error.
    private struct Window {
        var tscHz: UInt64
        var lapicHz: UInt64
        var errorPPM: UInt64
        var elapsedTicks: UInt64
    }

    private static func pitWindow(targetTicks: UInt64) -> Window? {
        let base = lapic_base()
        // Wait for the count to move, so a missing PIT (reads stuck at one value) is noticed
        // within ~2^27 cycles instead of spinning for ever.
        let first = readPIT()
        var start = readPIT()
        while start.count == first.count {
            if start.after &- first.before > 1 << 27 { return nil }
            start = readPIT()
        }
        mmio_write32(base + UInt64(LAPIC_TIMER_INIT), 0xFFFF_FFFF)
        var end = readPIT()
        var elapsed = UInt64(start.count &- end.count)   // counts down, wraps at 2^16
        while elapsed < targetTicks {
            if end.after &- start.before > 1 << 33 { return nil } // stuck: not a PIT
            end = readPIT()
            elapsed = UInt64(start.count &- end.count)
        }
        let lapicLeft = mmio_read32(base + UInt64(LAPIC_TIMER_CUR))
        mmio_write32(base + UInt64(LAPIC_TIMER_INIT), 0)
        // Each count was sampled somewhere inside its bracket: take the middles.
        let startMid = start.before &+ (start.after &- start.before) / 2
        let endMid = end.before &+ (end.after &- end.before) / 2
        let cycles = endMid &- startMid
        let tscHz = cycles &* pitHz / elapsed
        let lapicHz = UInt64(0xFFFF_FFFF &- lapicLeft) &* pitHz / elapsed
        guard plausibleTSCHz.contains(tscHz), plausibleLAPICHz.contains(lapicHz) else { return nil }
        // Half of each bracket, plus one PIT tick of quantisation, over the window.
        let slackCycles = (start.after &- start.before) / 2 &+ (end.after &- end.before) / 2 &+ tscHz / pitHz
        return Window(tscHz: tscHz, lapicHz: lapicHz, errorPPM: slackCycles &* 1_000_000 / max(1, cycles), elapsedTicks: elapsed)
    }

    /// Leaves channel 0 quiet: one terminal count far away, then nothing.
    static func quietPIT() {
        outb(pitCommand, pitChannel0OneShot)
        outb(pitChannel0, 0xFF)
        outb(pitChannel0, 0xFF)
    }

    /// Windows measured at least, and at most when they disagree.
    static let fewestWindows = 3
    static let mostWindows = 7
    /// Windows that agree this closely (ppm of the median) end the measurement early: a few
    /// PIT ticks over the short boot windows (`Clock.calibrationWindowUs`), whose TSC answer
    /// `Refinement` replaces anyway.
    static let agreementPPM: UInt64 = 5_000

    /// How far apart the three values around the median are (ppm of the median), in `sorted`
    /// ascending: outliers beyond them neither end the measurement nor widen its error.
    private static func centralSpreadPPM(_ sorted: [UInt64]) -> UInt64 {
        let mid = sorted.count / 2
        let low = sorted[max(0, mid - 1)], high = sorted[min(sorted.count - 1, mid + 1)]
        return (high &- low) &* 1_000_000 / max(1, sorted[mid])
    }

    /// Inserts `value` into ascending `sorted`.
    private static func insert(_ value: UInt64, into sorted: inout [UInt64]) {
        var i = sorted.count
        sorted.append(value)
        while i > 0 && sorted[i - 1] > value { sorted.swapAt(i - 1, i); i -= 1 }
    }

    /// The median of several short windows: a window in which the host took the virtual CPU away
    /// (or moved it to a CPU whose TSC does not agree) reads a wrong rate, and one such window among
    /// three must not decide the clock. The error stated is the larger of the median bracket
    /// error and half the spread of the three TSC rates around the median.
    private static func againstPIT(windowUs: UInt64) -> Result? {
        let perWindowUs = windowUs / UInt64(fewestWindows)
        let targetTicks = max(64, pitHz &* perWindowUs / 1_000_000)
        guard targetTicks < 60_000 else { return nil } // one pass of the 16-bit counter
        outb(pitCommand, pitChannel0RateGenerator)
        outb(pitChannel0, 0)
        outb(pitChannel0, 0)
        // The two rates are medians of their own: a window can be wrong for one and right for
        // the other (the host took the vCPU away between the PIT read and the LAPIC read).
        var tscRates: [UInt64] = [], lapicRates: [UInt64] = [], errors: [UInt64] = []
        tscRates.reserveCapacity(mostWindows); lapicRates.reserveCapacity(mostWindows); errors.reserveCapacity(mostWindows)
        var total: UInt64 = 0
        while tscRates.count < mostWindows {
            guard let w = pitWindow(targetTicks: targetTicks) else { return nil }
            insert(w.tscHz, into: &tscRates)
            insert(w.lapicHz, into: &lapicRates)
            insert(w.errorPPM, into: &errors)
            total &+= w.elapsedTicks
            if tscRates.count >= fewestWindows && centralSpreadPPM(tscRates) <= agreementPPM
                && centralSpreadPPM(lapicRates) <= agreementPPM { break }
        }
        let mid = tscRates.count / 2
        return Result(tscHz: tscRates[mid], lapicHz: lapicRates[mid], source: pitSource,
                      windowUs: total &* 1_000_000 / pitHz, windows: tscRates.count,
                      errorPPM: max(errors[mid], centralSpreadPPM(tscRates) / 2), againstPIT: true)
    }
}

/// The TSC rate again, over a long span that costs the boot nothing: a PIT sample when the
/// kernel is ready, another one `spanNs` later taken by the main loop between packets. The PIT
/// keeps counting in between (channel 0, rate generator, 16 bits: it wraps every 54.9 ms), so the
/// ticks elapsed are the wrapped difference plus the whole laps the boot's short-window rate
/// says passed — a lap is 65536 ticks, and that rate is off by far less than half of one over
/// the span (`usable` checks). The error stated is the two read brackets plus one tick over
/// the span: ~10 ppm over 250 ms where the boot's windows gave ~0.1–0.5 %.
struct CalibrationRefinement {
    let coarse: Calibration.Result
    let start: (count: UInt16, before: UInt64, after: UInt64)
    /// When to finish, as the TSC counts.
    let dueTSC: UInt64
    /// When to stop retrying a read whose bracket is too wide, and keep the boot's rate.
    let giveUpTSC: UInt64
    static let spanNs: UInt64 = 250_000_000
    /// A read bracket wider than this (the host took the vCPU away mid-read) is taken again
    /// on a later pass rather than widening the error — for at most `retryNs` past the span.
    static let widestBracketNs: UInt64 = 20_000
    static let retryNs: UInt64 = 100_000_000

    /// What `finish()` found.
    enum Outcome {
        /// The span has not passed, or the last read's bracket was too wide: try again later.
        case notYet
        case refined(Calibration.Result)
        /// No usable measurement (no clean read before `giveUpTSC`, or a rate the span cannot
        /// support): keep the boot's rate, and stop trying — the main loop must not spin on it.
        case abandoned(reason: StaticString)
    }

    /// nil when the boot's rate did not come from the PIT (CPUID is exact; no PIT, nothing
    /// to refine against) or is too rough to count laps with.
    init?(after coarse: Calibration.Result) {
        guard coarse.againstPIT, coarse.errorPPM < 20_000 else { return nil }
        self.coarse = coarse
        start = Calibration.readPIT()
        dueTSC = start.after &+ coarse.tscHz / 1_000 &* (Self.spanNs / 1_000_000)
        giveUpTSC = dueTSC &+ coarse.tscHz / 1_000 &* (Self.retryNs / 1_000_000)
    }

    /// The refined result once the span has passed and a clean read was had.
    func finish() -> Outcome {
        guard rdtsc() >= dueTSC else { return .notYet }
        let end = Calibration.readPIT()
        let bracketLimit = coarse.tscHz / 1_000_000 &* (Self.widestBracketNs / 1000)
        guard start.after &- start.before <= bracketLimit else { return .abandoned(reason: "the first PIT read was interrupted") }
        guard end.after &- end.before <= bracketLimit else {
            return end.after >= giveUpTSC ? .abandoned(reason: "no clean PIT read within 100 ms of the span's end") : .notYet
        }
        let startMid = start.before &+ (start.after &- start.before) / 2
        let endMid = end.before &+ (end.after &- end.before) / 2
        let cycles = endMid &- startMid
        // Ticks the boot's rate expects, then the lap count that best matches the wrapped difference.
        let expected = cycles &* 1_000 / max(1, coarse.tscHz / 1_000) &* Calibration.pitHz / 1_000_000
        let wrapped = UInt64(start.count &- end.count)
        let laps = (expected &+ 32_768 &- min(expected &+ 32_768, wrapped)) / 65_536
        let ticks = laps &* 65_536 &+ wrapped
        guard ticks > 0 else { return .abandoned(reason: "no PIT ticks counted over the span") }
        let tscHz = cycles &* Calibration.pitHz / ticks
        guard Calibration.plausibleTSCHz.contains(tscHz) else { return .abandoned(reason: "the rate measured is implausible") }
        let slack = (start.after &- start.before) / 2 &+ (end.after &- end.before) / 2 &+ tscHz / Calibration.pitHz
        return .refined(Calibration.Result(tscHz: tscHz, lapicHz: coarse.lapicHz, source: Calibration.pitSource,
                                           windowUs: ticks &* 1_000_000 / Calibration.pitHz, windows: 1,
                                           errorPPM: slack &* 1_000_000 / max(1, cycles), againstPIT: true))
    }
}
