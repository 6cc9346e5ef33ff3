import ArgumentParser
import RingsideKit

struct QemuArgs: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "qemu-args",
        abstract: "Print the QEMU arguments that wire a guest for ringside (console channel + QMP).",
        discussion: """
        Add these to your own QEMU command line, then point ringside at the sockets \
        (`ringside attach`, coming with the TUI). The guest needs a virtio-console driver on port 0 of \
        the virtio-serial device; QEMU is the server of both sockets and starts without waiting for them.
        """
    )

    @Option(help: "Unix socket for the virtio-console telemetry channel.")
    var consoleSocket: String = "/tmp/ringside-console.sock"

    @Option(help: "Unix socket for QMP.")
    var qmpSocket: String = "/tmp/ringside-qmp.sock"

    @Flag(help: "Let the virtio-serial controller be transitional (omit disable-legacy=on).")
    var legacy = false

    @Flag(help: "Print one argument per line instead of a single shell line.")
    var lines = false

    func validate() throws {
        for path in [consoleSocket, qmpSocket] where path.utf8.count > 107 {
            throw ValidationError("socket path too long for a unix socket (max 107 bytes): \(path)")
        }
        if consoleSocket == qmpSocket { throw ValidationError("the console and QMP sockets must differ") }
    }

    func run() {
        let args = QEMUConfiguration.consoleArguments(socket: consoleSocket, controllerOptions: legacy ? "" : ",disable-legacy=on")
            + QEMUConfiguration.qmpArguments(socket: qmpSocket)
        if lines {
            for a in args { writeLine(a) }
        } else {
            writeLine(shellQuoted(args))
        }
    }
}
