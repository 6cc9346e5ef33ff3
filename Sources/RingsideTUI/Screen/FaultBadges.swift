// Injected faults (`:inject`) on a queue's title line, and the notification and injection
// counters on its stats line.

import Wire

/// One badge per active fault: `INJ drop 2`, `INJ corrupt 1`, `NOKICK 3`, `STARVING`, `NOIRQ`.
func faultBadges(_ f: WireQueueFaults) -> [String] {
    var badges: [String] = []
    if f.drop > 0 { badges.append("INJ drop \(f.drop)") }
    if f.corrupt > 0 { badges.append("INJ corrupt \(f.corrupt)") }
    if f.nokick > 0 { badges.append("NOKICK \(f.nokick)") }
    if f.starving { badges.append("STARVING") }
    if f.noirq { badges.append("NOIRQ") }
    return badges
}

/// Stats-line segments after `irq`: suppressed kicks and interrupts always (`ksup`, `isup`), the
/// injection counters once non-zero (`injdrop`, `injcorr`, `withheld`, `irqign`).
func injectionSegments(_ c: WireQueueCounters, _ count: (UInt64) -> String) -> [(String, String)] {
    var list: [(String, String)] = [("ksup ", count(c.kicksSuppressed)), ("isup ", count(c.interruptsSuppressed))]
    if c.injectedDrops > 0 { list.append(("injdrop ", count(c.injectedDrops))) }
    if c.injectedCorruptions > 0 { list.append(("injcorr ", count(c.injectedCorruptions))) }
    if c.kicksWithheld > 0 { list.append(("withheld ", count(c.kicksWithheld))) }
    if c.interruptsIgnored > 0 { list.append(("irqign ", count(c.interruptsIgnored))) }
    return list
}
