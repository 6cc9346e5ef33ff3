import ArgumentParser
import Foundation
import RingsideKit

// Options more than one subcommand takes, declared once (each an @OptionGroup in its commands).

/// How QEMU boots our kernel: `run` and `qemu-args`.
struct KernelQEMUOptions: ParsableArguments {
    @Option(help: "Kernel ELF (default: kernel/build/ringside.elf in the current directory or a parent, or above the ringside executable).")
    var kernel: String?

    @Option(help: "Machine: pc (PCI, MSI-X; the default) or microvm (virtio-mmio, IOAPIC; no PCI, its own firmware). $RINGSIDE_MACHINE=microvm does the same.")
    var machine: Machine = .pc

    @Option(help: "Accelerator: tcg (software, the default), kvm (-accel kvm -cpu kvm64), or auto (kvm when /dev/kvm is usable).")
    var accel: Accelerator = .tcg

    @Option(help: "Host UDP port (on 127.0.0.1) forwarded to the guest's UDP echo service, port 7.")
    var udpPort: Int = 5555

    @Option(help: "Host TCP port (on 127.0.0.1) forwarded to the guest's HTTP service, port 80.")
    var httpPort: Int = 8080

    @Option(help: "Guest RAM in MiB.")
    var memory: Int = 32

    @Option(name: .customLong("qemu"), help: "The QEMU binary.")
    var qemuBinary: String = "qemu-system-x86_64"

    func validate() throws {
        guard (1...65535).contains(udpPort) else { throw ValidationError("--udp-port must be between 1 and 65535, not \(udpPort)") }
        guard (1...65535).contains(httpPort) else { throw ValidationError("--http-port must be between 1 and 65535, not \(httpPort)") }
        guard (2...65536).contains(memory) else { throw ValidationError("--memory must be between 2 and 65536 MiB, not \(memory)") }
    }

    /// --kernel, else the kernel `KernelLocator` finds; says where it looked and exits 2 when there is none.
    func kernelPath() throws -> String {
        guard let path = kernel ?? KernelLocator.find() else {
            warn("no kernel found; looked for \(KernelLocator.relativePath) here, in parent directories and above the ringside executable. Build it with `make kernel` or pass --kernel PATH.")
            throw ExitCode(2)
        }
        return path
    }

    /// Sets the QEMU binary, the machine, the kernel, the accelerator, the guest RAM and the user-mode network.
    func configure(_ config: inout QEMUConfiguration, kernelPath: String) {
        config.qemuBinary = qemuBinary
        config.machine = machine
        config.kernel = kernelPath
        config.accel = accel
        config.memoryMiB = memory
        config.network = .user(udpPort: UInt16(udpPort), httpPort: UInt16(httpPort))
    }
}

/// Where the TUI's `w` key writes pcap files: `run` and `attach`.
struct PcapDirectoryOption: ParsableArguments {
    @Option(help: ArgumentHelp("Directory the TUI's w key writes pcap files to, created when needed (default: $RINGSIDE_PCAP_DIR, else $XDG_DATA_HOME/ringside/pcap, else ~/.local/share/ringside/pcap).", valueName: "DIR"))
    var pcapDir: String?
}

/// The TUI's redraw limit: `attach` and `replay`.
struct FrameRateOption: ParsableArguments {
    @Option(help: "Redraw at most this many times per second.")
    var fps: Double = 30

    func validate() throws {
        if !(fps >= 1 && fps <= 240) { throw ValidationError("--fps must be between 1 and 240") }
    }
}

/// How long a telemetry reader waits for a silent kernel: `watch` and `record`.
struct TelemetryTimeoutOption: ParsableArguments {
    @Option(help: "Give up after this many seconds without telemetry (default: wait forever).")
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout > 0) { throw ValidationError("--timeout must be a positive number of seconds") }
    }
}
