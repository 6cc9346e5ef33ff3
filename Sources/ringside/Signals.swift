import Foundation
import Synchronization

/// The last SIGINT/SIGTERM received (0: none). Set from the signal handler, polled by the main loop.
let receivedStopSignal = Atomic<Int32>(0)

/// Catches SIGINT and SIGTERM so the main loop can stop QEMU cleanly, and unblocks them in case the
/// parent (a test runner, say) started us with them blocked.
func installStopSignalHandlers() {
    for sig in [SIGINT, SIGTERM] {
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
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}

/// Writes a line to standard error.
func warn(_ message: String) {
    FileHandle.standardError.write(Data(("ringside: " + message + "\n").utf8))
}
