import Arch

/// Where the boot's time goes: the TSC at each stage of `kmain`, converted to milliseconds only
/// once the clock is calibrated (a stamp is one `rdtsc`: nothing is written while booting), and
/// logged as one line after `ringside: ready`. Time 0 is the virtual CPU's reset (the TSC starts
/// at 0 there under QEMU), so the first stage is what QEMU's firmware and loader took.
enum BootTimeline {
    static let capacity = 16
    nonisolated(unsafe) private static var names: (StaticString, StaticString, StaticString, StaticString,
                                                    StaticString, StaticString, StaticString, StaticString,
                                                    StaticString, StaticString, StaticString, StaticString,
                                                    StaticString, StaticString, StaticString, StaticString)
        = ("", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "")
    nonisolated(unsafe) private static var stamps: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64,
                                                    UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64, UInt64)
        = (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    nonisolated(unsafe) private(set) static var count = 0

    /// The stage `name` ended now. Needs no heap (fixed storage): usable before memory is set up.
    static func mark(_ name: StaticString) { mark(name, tsc: rdtsc()) }

    static func mark(_ name: StaticString, tsc: UInt64) {
        guard count < capacity else { return }
        withUnsafeMutableBytes(of: &names) { $0.bindMemory(to: StaticString.self)[count] = name }
        withUnsafeMutableBytes(of: &stamps) { $0.bindMemory(to: UInt64.self)[count] = tsc }
        count += 1
    }

    /// Stage `i`: its name and the TSC when it ended.
    static func stage(_ i: Int) -> (name: StaticString, tsc: UInt64) {
        let name = withUnsafeBytes(of: &names) { $0.bindMemory(to: StaticString.self)[i] }
        let tsc = withUnsafeBytes(of: &stamps) { $0.bindMemory(to: UInt64.self)[i] }
        return (name, tsc)
    }

    /// `boot: firmware+loader 2.1 ms, serial+idt 0.1 ms, …, total 12.3 ms (from vCPU reset)`.
    static var summary: String {
        var text = "boot:"
        var previous: UInt64 = 0
        for i in 0..<count {
            let (name, tsc) = stage(i)
            text += (i == 0 ? " " : ", ") + "\(name) " + milliseconds(tsc &- previous)
            previous = tsc
        }
        return text + "; total " + milliseconds(previous) + " ms from vCPU reset"
    }

    /// `first frames: 11 taken at 43.20 ms from vCPU reset (20.01 ms after ready), replies sent
    /// by 45.50 ms`: how long the first frames waited after ready (on QEMU's user networking,
    /// for it to learn our MAC), and what answering them first cost (TCG translating the
    /// receive path on its first use).
    static func firstFrames(_ count: Int, takenTSC: UInt64, repliesSentTSC: UInt64) -> String {
        let ready = self.count > 0 ? stage(self.count - 1).tsc : 0
        return "first frames: \(count) taken at " + milliseconds(takenTSC) + " ms from vCPU reset ("
            + milliseconds(takenTSC &- ready) + " ms after ready), replies sent by " + milliseconds(repliesSentTSC) + " ms"
    }

    /// `ticks` of the TSC as milliseconds with two decimals.
    static func milliseconds(_ ticks: UInt64) -> String {
        let hundredths = Clock.nanoseconds(ticks: ticks) / 10_000
        let fraction = hundredths % 100
        return "\(hundredths / 100)." + (fraction < 10 ? "0" : "") + "\(fraction)"
    }
}
