import ArgumentParser
import Foundation
import RingsideKit
import RingsideTUI

struct Attach: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open the live TUI on a QEMU someone else started.",
        discussion: """
        SOCKET is the unix socket of the guest's virtio-console telemetry channel. Start QEMU with the \
        arguments `ringside qemu-args` prints (they make QEMU the socket's server), then attach. The view \
        shows "disconnected" while the guest is away and reconnects when it is back. Quitting (q) leaves \
        QEMU running. Press ? in the TUI for the keys.

        Any QEMU guest (no telemetry, no cooperation from the guest): `ringside attach --qmp QMP \
        --memory FILE`, with QEMU started with the arguments `ringside qemu-args --guest` prints. The \
        rings are read from guest memory at 60 Hz (--rate), the device's indices from QMP at 2 Hz; \
        without --memory, QMP alone at 2 Hz (the header says so).
        """
    )

    @Argument(help: "The guest's virtio-console socket (console.sock of a ringside run directory); omit it with --qmp to watch any guest.")
    var socket: String?

    @Option(help: "With --qmp and no SOCKET: the guest RAM file (memory-backend-file mem-path, share=on).")
    var memory: String?

    @Option(help: "Ask the kernel for this many snapshots per second once connected (1-1000).")
    var rate: UInt16?

    @Option(help: "Accelerator to show in the header (informational: attach does not start QEMU).")
    var accel: String = ""

    @Option(name: .customLong("qmp"), help: ArgumentHelp("QEMU's QMP socket: show the device's own view of the net queues beside the driver's (polled at 4 Hz) and run :hmp commands. QEMU serves one QMP client at a time.", valueName: "SOCKET"))
    var qmp: String?

    @OptionGroup var pcapDirectory: PcapDirectoryOption

    @OptionGroup var frameRate: FrameRateOption

    func validate() throws {
        if socket == nil && qmp == nil { throw ValidationError("give SOCKET, or --qmp QMP [--memory FILE] for any guest") }
        if socket != nil && memory != nil { throw ValidationError("--memory is for any guest: give --qmp and no SOCKET") }
        if let socket, socket.utf8.count > 107 { throw ValidationError("socket path too long for a unix socket (max 107 bytes): \(socket)") }
        if let qmp, qmp.utf8.count > 107 { throw ValidationError("--qmp path too long for a unix socket (max 107 bytes): \(qmp)") }
        if let rate, rate == 0 || rate > 1000 { throw ValidationError("--rate must be between 1 and 1000") }
        if let memory, !FileManager.default.isReadableFile(atPath: memory) { throw ValidationError("cannot read --memory \(memory)") }
    }

    func run() throws {
        guard let socket else {
            var options = TUIOptions(title: "Ringside: any guest", accel: accel)
            options.maxFramesPerSecond = frameRate.fps
            var info = RunInfo(telemetrySocket: "", telemetryIsHub: false)
            info.qmpSocket = qmp
            info.guestMemory = memory
            options.runInfo = info
            let link = GuestPoller(qmpPath: qmp!, memoryPath: memory, rate: Double(rate ?? 60))
            let status = runTUI(link: link, options: options)
            link.close()
            if status != 0 { throw ExitCode(status) }
            return
        }
        var options = TUIOptions(title: "Ringside", accel: accel, snapshotRate: rate)
        options.maxFramesPerSecond = frameRate.fps
        options.qmpSocketPath = qmp
        if let pcapDir = pcapDirectory.pcapDir { options.pcapDirectory = pcapDir }
        let status = runTUI(socketPath: socket, options: options)
        if status != 0 { throw ExitCode(status) }
    }
}
