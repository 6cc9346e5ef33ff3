import Foundation

/// Writes a line to standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data(("ringside: " + message + "\n").utf8))
}

/// Writes all of `bytes` to standard output; false when stdout is gone (EPIPE and the like).
func writeStandardOutput(_ bytes: [UInt8]) -> Bool {
    var done = 0
    while done < bytes.count {
        let n = bytes[done...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if n < 0 {
            if errno == EINTR || errno == EAGAIN { continue }
            return false
        }
        done += n
    }
    return true
}
