import Foundation
import Synchronization

/// The last SIGINT/SIGTERM/SIGHUP received (0: none). Set from the signal handler, polled by the
/// main loops of `ringside run` and the TUI.
public let receivedStopSignal = Atomic<Int32>(0)

/// Catches SIGINT, SIGTERM and SIGHUP so a main loop can end cleanly (stop QEMU, restore the
/// terminal), unblocks them and `alsoUnblock` (the TUI adds SIGWINCH) in case the parent (a test
/// runner, say) started us with them blocked, and ignores SIGPIPE (a closed stdout or socket
/// must not kill us and leave QEMU running).
public func installStopSignalHandlers(alsoUnblock: [Int32] = []) {
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
    for sig in [SIGINT, SIGTERM, SIGHUP] + alsoUnblock { sigaddset(&set, sig) }
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
}
