import ArgumentParser
import RingsideKit

@main
struct Ringside: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ringside",
        abstract: "Watch virtio rings move: boot the Ringside unikernel in QEMU and monitor its virtqueues.",
        discussion: """
        `ringside run` boots the kernel under QEMU with virtio-net (user-mode networking, host ports \
        forwarded to the guest's UDP echo and HTTP services), a virtio-console telemetry channel and a \
        QMP socket. `ringside qemu-args` prints the arguments that wire the same channels into a QEMU \
        you start yourself. `ringside record` (or `run --record`) saves the telemetry stream to a file \
        that `ringside replay` plays back in the TUI or as `watch --json` lines.
        """,
        subcommands: [Run.self, Attach.self, Watch.self, Ctl.self, Capture.self, Record.self, Replay.self, QemuArgs.self, Wrap.self]
    )
}
