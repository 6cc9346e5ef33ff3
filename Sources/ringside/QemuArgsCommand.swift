import ArgumentParser
import Foundation
import RingsideKit

struct QemuArgs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-args",
        abstract: "Print a QEMU command line that boots the Ringside kernel wired for ringside.",
        discussion: """
        The line is complete and runnable: the kernel, virtio-net with id=net0 (user-mode networking, \
        host UDP <udp-port> to the guest's echo service on port 7, host TCP <http-port> to its HTTP \
        service on port 80), the guest's serial console on standard output, the virtio-console \
        telemetry channel on --console-socket and QMP on --qmp-socket. QEMU is the server of both \
        sockets and starts without waiting for them. Then, in another terminal: \
        `ringside attach <console-socket> --qmp <qmp-socket>`.

        With --guest: the arguments that let ringside watch any guest (guest RAM in a shared file, \
        --memory-size MiB at --memory-path, and QMP), to add to your own line; then \
        `ringside attach --qmp <qmp-socket> --memory <memory-path>` (see docs/any-guest.md).

        With --only-channels just the console channel and QMP arguments are printed, to add to a QEMU \
        line of your own; its virtio-net device must then carry id=net0 for the device view (QMP \
        path /machine/peripheral/net0/virtio-backend), and the guest needs a virtio-console driver on \
        port 0 of the virtio-serial device.
        """
    )

    @OptionGroup var boot: KernelQEMUOptions

    @Option(help: "Unix socket for the virtio-console telemetry channel.")
    var consoleSocket: String = "/tmp/ringside-console.sock"

    @Option(help: "Unix socket for QMP.")
    var qmpSocket: String = "/tmp/ringside-qmp.sock"

    @Flag(help: "Print only the console channel and QMP arguments, to add to your own QEMU line.")
    var onlyChannels = false

    @Flag(help: "With --only-channels: let the virtio-serial controller be transitional (omit disable-legacy=on).")
    var legacy = false

    @Flag(help: "Any guest: print the memory backend (guest RAM in a shared file) and QMP arguments instead.")
    var guest = false

    @Option(help: "With --guest: the guest RAM file (on a tmpfs).")
    var memoryPath: String = "/dev/shm/ringside-guest.ram"

    @Option(help: "With --guest: guest RAM in MiB; must equal your -m.")
    var memorySize: Int = 128

    @Flag(help: "Print one argument per line instead of a single shell line.")
    var lines = false

    func validate() throws {
        for path in [consoleSocket, qmpSocket] where path.utf8.count > 107 {
            throw ValidationError("socket path too long for a unix socket (max 107 bytes): \(path)")
        }
        if memorySize < 1 { throw ValidationError("--memory-size must be at least 1 MiB") }
        if consoleSocket == qmpSocket { throw ValidationError("the console and QMP sockets must differ") }
        if legacy && !onlyChannels { throw ValidationError("--legacy applies to --only-channels") }
    }

    func run() throws {
        if guest {
            let args = QEMUGuestArguments.memory(path: memoryPath, sizeMiB: memorySize) + QEMUConfiguration.qmpArguments(socket: qmpSocket)
            if lines { for a in args { writeLine(a) } } else { writeLine(shellQuoted(args)) }
            warn("add to a QEMU line with -m \(memorySize) (merge memory-backend= into an existing -machine), then: ringside attach --qmp \(qmpSocket) --memory \(memoryPath)")
            return
        }
        let args: [String]
        if onlyChannels {
            args = QEMUConfiguration.consoleArguments(socket: consoleSocket, controller: legacy ? "virtio-serial-pci,id=vser" : Machine.pc.serialController)
                + QEMUConfiguration.qmpArguments(socket: qmpSocket)
        } else {
            var kernelPath = try boot.kernelPath()
            if !kernelPath.hasPrefix("/") { kernelPath = FileManager.default.currentDirectoryPath + "/" + kernelPath }
            var config = QEMUConfiguration()
            boot.configure(&config, kernelPath: kernelPath)
            config.serialToStdio = true
            args = [boot.qemuBinary] + config.arguments(serialLog: "", consoleSocket: consoleSocket, qmpSocket: qmpSocket)
        }
        if lines {
            for a in args { writeLine(a) }
        } else {
            writeLine(shellQuoted(args))
        }
    }
}
