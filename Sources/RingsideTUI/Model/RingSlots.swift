// Where each slot of a split virtqueue's rings stands, from the three free-running 16-bit
// indices alone (virtio 1.x §2.7.6, §2.7.8). Indices wrap at 2^16, not at the queue size, so
// every distance is taken with wrapping subtraction first and reduced modulo the size after.

import Wire

/// A ring slot's state, named after the descriptor state it holds.
public enum RingSlotState: UInt8, Equatable, Sendable {
    /// Nothing outstanding: the driver may fill it.
    case free
    /// In the available ring, between used.idx and avail.idx: the device owns the buffer.
    case avail
    /// In the used ring, between the driver's last-seen index and used.idx: returned by the
    /// device, not yet consumed by the driver (piles up while a queue is paused).
    case used

    /// Draw priority when several slots share one cell (a small terminal, a big ring).
    var priority: Int {
        switch self {
        case .free: return 0
        case .avail: return 1
        case .used: return 2
        }
    }
}

/// The ring positions of one queue, as the telemetry reports them.
public struct RingIndices: Equatable, Sendable {
    public var size: UInt16
    public var availIdx: UInt16
    public var usedIdx: UInt16
    public var lastUsedIdx: UInt16

    public init(size: UInt16, availIdx: UInt16, usedIdx: UInt16, lastUsedIdx: UInt16) {
        self.size = size
        self.availIdx = availIdx
        self.usedIdx = usedIdx
        self.lastUsedIdx = lastUsedIdx
    }

    public init(size: UInt16, status: WireQueueStatus) {
        self.init(size: size, availIdx: status.availIdx, usedIdx: status.usedIdx, lastUsedIdx: status.lastUsedIdx)
    }

    /// The indices of a queue in `format`: a split queue's as sent; a packed queue's
    /// positions (offset | wrap counter << 15, docs/protocol.md §4 "Packed queues") turned into
    /// the same three: slots from the driver's used position to the device's hold used
    /// descriptors, from there to the driver's available position available ones (2.8.1).
    public init(size: UInt16, status: WireQueueStatus, format: WireRingFormat) {
        guard format == .packed, size > 0 else {
            self.init(size: size, status: status)
            return
        }
        func distance(_ from: UInt16, _ to: UInt16) -> UInt16 {
            UInt16(min(wireRingDistance(from: from, to: to, size: size, format: .packed), Int(size)))
        }
        let lastUsed = UInt16(Int(status.lastUsedIdx & 0x7FFF) % Int(size))
        let used = lastUsed &+ distance(status.lastUsedIdx, status.usedIdx)
        self.init(size: size, availIdx: used &+ distance(status.usedIdx, status.availIdx), usedIdx: used,
                  lastUsedIdx: lastUsed)
    }

    /// Buffers the device owns: avail.idx − used.idx (mod 2^16), capped at the size.
    public var outstanding: Int { min(Int(availIdx &- usedIdx), Int(size)) }
    /// Used elements the driver has not consumed: used.idx − last-seen (mod 2^16), capped.
    public var pending: Int { min(Int(usedIdx &- lastUsedIdx), Int(size)) }

    /// The ring slot an index points at.
    public func slot(_ index: UInt16) -> Int { size == 0 ? 0 : Int(index) % Int(size) }

    /// The state of every slot, 0 ..< size. Used entries are [last-seen, used.idx); available
    /// ones [used.idx, avail.idx); the rest free. If the indices claim more than the ring
    /// holds (a driver bug), the used window wins and the avail window is cut to what is left.
    public func slotStates() -> [RingSlotState] {
        let n = Int(size)
        guard n > 0 else { return [] }
        var states = [RingSlotState](repeating: .free, count: n)
        let used = pending
        let avail = min(outstanding, n - used)
        var s = slot(lastUsedIdx)
        for _ in 0..<used {
            states[s] = .used
            s = s + 1 == n ? 0 : s + 1
        }
        s = slot(usedIdx)
        for _ in 0..<avail {
            states[s] = .avail
            s = s + 1 == n ? 0 : s + 1
        }
        return states
    }
}

/// One cell of a drawn ring: the most important state among the slots it covers, and the
/// pointers that fall in it.
public struct RingCell: Equatable, Sendable {
    public var state: RingSlotState
    public var availMark = false
    public var usedMark = false
    public var lastSeenMark = false

    public init(state: RingSlotState) { self.state = state }

    /// The letter drawn for the pointers in this cell; the driver's last-seen position wins,
    /// then used.idx, then avail.idx (the numbers beside the ring tell them apart).
    public var markLetter: Unicode.Scalar? {
        if lastSeenMark { return "L" }
        if usedMark { return "U" }
        if availMark { return "A" }
        return nil
    }
}

extension RingIndices {
    /// The ring drawn in `cells` cells: ⌈size / cells⌉ slots per cell.
    public func cells(count cells: Int) -> [RingCell] {
        let n = Int(size)
        guard n > 0, cells > 0 else { return [] }
        let perCell = (n + cells - 1) / cells
        let drawn = (n + perCell - 1) / perCell
        let states = slotStates()
        var out: [RingCell] = []
        out.reserveCapacity(drawn)
        for c in 0..<drawn {
            var best = RingSlotState.free
            for s in (c * perCell)..<min(n, (c + 1) * perCell) where states[s].priority > best.priority {
                best = states[s]
            }
            out.append(RingCell(state: best))
        }
        out[slot(availIdx) / perCell].availMark = true
        out[slot(usedIdx) / perCell].usedMark = true
        out[slot(lastUsedIdx) / perCell].lastSeenMark = true
        return out
    }
}

// MARK: - Pointers drawn as columns of their own

/// One pointer into a ring: its letter and its free-running index.
public struct RingPointer: Equatable, Sendable {
    public var letter: Unicode.Scalar
    public var index: UInt16
    public init(_ letter: Unicode.Scalar, _ index: UInt16) {
        self.letter = letter
        self.index = index
    }
}

/// One column of a drawn ring: a cell of slots, or a pointer standing just before the cell that
/// holds the slot it points at.
public enum RingStripColumn: Equatable, Sendable {
    case cell(RingSlotState)
    case pointer(Unicode.Scalar)
}

extension RingIndices {
    /// The driver's pointers: L (last-seen used index), U (used.idx), A (avail.idx), in the order
    /// they are drawn when they point at the same slot.
    public var driverPointers: [RingPointer] {
        [RingPointer("L", lastUsedIdx), RingPointer("U", usedIdx), RingPointer("A", availIdx)]
    }

    /// The ring in at most `columns` columns, every pointer visible: each pointer takes a column
    /// of its own, just before the cell that holds its slot; the slots share the other columns
    /// (⌈size / cells⌉ per cell, each cell showing its most important state). Pointers that fall
    /// in one cell stand side by side, in slot order (ties: the order given). A pointer never
    /// hides a cell's state, and no pointer hides another. Empty when `columns` cannot hold the
    /// pointers and one cell.
    public func strip(columns: Int, pointers: [RingPointer]) -> [RingStripColumn] {
        let n = Int(size)
        let cellColumns = columns - pointers.count
        guard n > 0, cellColumns > 0 else { return [] }
        let perCell = (n + cellColumns - 1) / cellColumns
        let drawn = (n + perCell - 1) / perCell
        let states = slotStates()
        // Pointers by the cell they fall in, in slot order.
        let placed = pointers.enumerated().map { (order: $0.offset, slot: slot($0.element.index), letter: $0.element.letter) }
            .sorted { ($0.slot, $0.order) < ($1.slot, $1.order) }
        var out: [RingStripColumn] = []
        out.reserveCapacity(drawn + pointers.count)
        var next = 0
        for c in 0..<drawn {
            while next < placed.count, placed[next].slot / perCell == c {
                out.append(.pointer(placed[next].letter))
                next += 1
            }
            var best = RingSlotState.free
            for s in (c * perCell)..<min(n, (c + 1) * perCell) where states[s].priority > best.priority {
                best = states[s]
            }
            out.append(.cell(best))
        }
        return out
    }
}
