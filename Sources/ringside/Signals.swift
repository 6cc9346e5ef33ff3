import Foundation
import Synchronization

/// The last SIGINT/SIGTERM received (0: none). Set from the signal handler, polled by the main loop.
let receivedStopSignal = Atomic<Int32>(0)

/// Catches SIGINT, SIGTERM and SIGHUP so the main loop can stop QEMU cleanly, unblocks them in case
/// the parent (a test runner, say) started us with them blocked, and ignores SIGPIPE (a closed stdout
/// must not kill us and leave QEMU running).
func installStopSignalHandlers() {
    signal(SIGPIPE, SIG_IGN)
    for sig in [SIGINT, SIGTERM, SIGHUP] {
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { sig in receivedStopSignal.store(sig, ordering: .relaxed) }
        sigemptyset(&action.sa_mask)
        action.sa_flags = 0
        sigaction(sig, &action, nil)
    }
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    sigaddset(&set, SIGTERM)
    sigaddset(&set, SIGHUP)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}

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
