// The event log pane, with its filter and scroll position in the title.

import RingsideKit

func drawLog(_ g: inout ScreenGrid, _ state: TUIState, _ r: Rect, expanded: Bool = false) {
    guard r.height >= 1 else { return }
    let filterNote = state.logFilter.isEmpty ? "" : " (filter: \(state.logFilter))"
    let body = Rect(y: r.y + 1, x: r.x, height: r.height - 1, width: r.width)
    let lines = logPaneLines(state, width: r.width, wrapAll: expanded)
    let first = drawPaneLines(&g, lines, top: state.panes.top[.log], in: body)
    var title = "events" + filterNote
    let position = scrollPosition(top: first, rows: body.height, count: lines.count)
    if !position.isEmpty { title += " · " + position + (state.panes.top[.log] == nil ? " (newest)" : "") }
    paneRule(&g, state, .log, r, title: title, expanded: expanded)
}
