import Foundation
import RingsideKit

// Every line the CLI prints goes through `warn`, `writeLine` or `writeText`, which escape terminal
// controls (guest strings, QEMU's messages): the user's terminal only ever sees text.
// `writeStandardOutput` is for bytes the user asked for as such (`ctl dump --raw`).

/// Writes a line to standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data(("ringside: " + message.escapingTerminalControls(keepingLines: true) + "\n").utf8))
}

/// Writes text to stdout unbuffered (scripts pipe us into jq). False when stdout is gone.
func writeText(_ s: String) -> Bool {
    writeStandardOutput(Array(s.escapingTerminalControls(keepingLines: true).utf8))
}

/// Writes one line to stdout (see `writeText`).
@discardableResult
func writeLine(_ s: String) -> Bool {
    writeText(s + "\n")
}

/// Writes all of `bytes` to standard output; false when stdout is gone (EPIPE and the like).
func writeStandardOutput(_ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n < 0 {
            let e = Errno.current
            if e == .interrupted || e == .resourceTemporarilyUnavailable { continue }
            return false
        }
        done += n
    }
    return true
}
