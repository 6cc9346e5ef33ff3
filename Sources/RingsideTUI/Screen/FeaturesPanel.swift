// The features panel (key `F`): per device, its status byte decoded and every feature bit the
// device offered or the driver accepted, by spec name (Sources/Virtio/VirtioFeatureNames.swift,
// the table `watch --json` uses too). The offered and accepted sets come from the hello; the
// status byte from the latest snapshot (it can change: NEEDS_RESET), else the hello's.

import RingsideKit
import Virtio
import Wire

/// Columns per panel column: the longest spec name (VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) and its mark.
let featurePanelColumnWidth = 36

/// `items` joined by `separator` into lines of at most `width` columns.
func wrapJoined(_ items: [String], separator: String, width: Int) -> [String] {
    var lines: [String] = []
    var current = ""
    for item in items {
        let candidate = current.isEmpty ? item : current + separator + item
        if candidate.columns > width && !current.isEmpty {
            lines.append(current + separator)
            current = item
        } else {
            current = candidate
        }
    }
    if !current.isEmpty { lines.append(current) }
    return lines
}

/// A line of the panel: text and style.
struct PanelLine: Equatable {
    var text: String
    var style: CellStyle
}

/// "virtio-net", "virtio-console", "device type N".
func virtioDeviceTypeName(_ type: UInt16) -> String {
    switch type {
    case VIRTIO_ID_NET: return "virtio-net"
    case VIRTIO_ID_BLOCK: return "virtio-blk"
    case VIRTIO_ID_CONSOLE: return "virtio-console"
    case VIRTIO_ID_RNG: return "virtio-rng"
    default: return "device type \(type)"
    }
}

/// The panel's blocks of lines, one per device, for `view` (nil hello: nothing known yet).
func featurePanelBlocks(_ view: LiveView, stale: Bool) -> [[PanelLine]] {
    guard let hello = view.model.hello else {
        return [[PanelLine(text: "no hello from the kernel yet: features unknown", style: CellStyle(.warning))]]
    }
    var blocks: [[PanelLine]] = []
    for (i, d) in hello.devices.enumerated() {
        var lines: [PanelLine] = []
        let fromSnapshot = i < view.model.deviceStatus.count
        let status = fromSnapshot ? view.model.deviceStatus[i] : d.status
        let names = virtioStatusNames(status)
        let bad = status & (VIRTIO_CONFIG_S_DEVICE_NEEDS_RESET | VIRTIO_CONFIG_S_FAILED) != 0
        lines.append(PanelLine(text: "\(d.name) (\(virtioDeviceTypeName(d.deviceType)))", style: CellStyle(.title, bold: true)))
        let statusStyle = bad || stale ? CellStyle(.alarm, bold: true) : CellStyle.plain
        lines.append(PanelLine(text: "status 0x" + hexDigits(UInt64(status), width: 2) + (names.isEmpty ? " (reset)" : "")
                                   + (stale ? " STALE" : (fromSnapshot ? "" : " (at hello)")), style: statusStyle))
        for chunk in wrapJoined(names, separator: "|", width: featurePanelColumnWidth - 4) {
            lines.append(PanelLine(text: "  " + chunk, style: statusStyle))
        }
        lines.append(PanelLine(text: "offered  0x" + hexDigits(d.offeredFeatures, width: 16), style: CellStyle(.dim)))
        lines.append(PanelLine(text: "accepted 0x" + hexDigits(d.features, width: 16), style: CellStyle(.dim)))
        for bit in 0..<64 {
            let mask = UInt64(1) << UInt64(bit)
            let offered = d.offeredFeatures & mask != 0, accepted = d.features & mask != 0
            guard offered || accepted else { continue }
            let name = virtioFeatureName(bit: bit, deviceType: d.deviceType).map { $0.description } ?? "bit \(bit)"
            let mark = offered && accepted ? "+" : (offered ? "o" : "!")
            let style = offered && accepted ? CellStyle(.good) : (offered ? CellStyle(.dim) : CellStyle(.alarm, bold: true))
            lines.append(PanelLine(text: mark + " " + name, style: style))
        }
        blocks.append(lines)
    }
    return blocks
}

/// Places blocks in columns of `rows` lines: a block that does not fit what is left of a
/// column but fits a fresh one starts the next column. Returns (column, row, line) triples.
func placeBlocks(_ blocks: [[PanelLine]], rows: Int) -> [(column: Int, row: Int, line: PanelLine)] {
    var placed: [(column: Int, row: Int, line: PanelLine)] = []
    var column = 0, row = 0
    for (b, block) in blocks.enumerated() {
        if b > 0 && row > 0 {
            if row + 1 + block.count > rows && block.count <= rows { column += 1; row = 0 } else { row += 1 }
        }
        for line in block {
            if row >= rows { column += 1; row = 0 }
            placed.append((column, row, line))
            row += 1
        }
    }
    return placed
}

func drawFeaturesPanel(_ g: inout ScreenGrid, _ state: TUIState, size: ScreenSize) {
    let blocks = featurePanelBlocks(state.view, stale: snapshotIsStale(state))
    let width = size.width - 4
    let height = size.height - 2
    let x0 = 2, y0 = 1
    let box = CellStyle(.overlay)
    drawBox(&g, y: y0, x: x0, height: height, width: width, title: "Features and device status", footer: "any key closes")
    g.text(" + accepted · o offered only · ! accepted, not offered ", y: y0 + height - 1, x: x0 + 1, style: box,
           maxX: x0 + width - 19)
    // Column by column: as many as the width takes (each as wide as the longest line).
    let rows = height - 2
    let columnWidth = min(width - 4, featurePanelColumnWidth)
    let columns = max(1, (width - 2) / columnWidth)
    let placed = placeBlocks(blocks, rows: rows)
    for p in placed where p.column < columns {
        let x = x0 + 2 + p.column * columnWidth
        g.text(p.line.text, y: y0 + 1 + p.row, x: x, style: p.line.style, maxX: min(x0 + width - 1, x + columnWidth - 1))
    }
    let hidden = placed.filter { $0.column >= columns }.count
    if hidden > 0 {
        g.text(" \(hidden) more lines: enlarge the terminal (or watch --json) ", y: y0, x: x0 + 30,
               style: CellStyle(.warning, bold: true), maxX: x0 + width - 1)
    }
}
