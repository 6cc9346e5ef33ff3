import Foundation

/// How QEMU executes guest code.
public enum Accelerator: String, CaseIterable, Sendable {
    /// Software emulation. The default: it is the fast, dependable choice on nested hosts.
    case tcg
    /// Hardware virtualisation through /dev/kvm (with `-cpu kvm64`; `-cpu host` aborts on nested hosts).
    case kvm
    /// KVM when /dev/kvm can be opened read-write, otherwise TCG.
    case auto

    /// The accelerator actually used: `.auto` resolves to `.kvm` or `.tcg`.
    public func resolved(kvmDevice: String = "/dev/kvm") -> Accelerator {
        guard self == .auto else { return self }
        return Accelerator.kvmUsable(device: kvmDevice) ? .kvm : .tcg
    }

    /// True when the KVM device exists and this process can open it read-write.
    public static func kvmUsable(device: String = "/dev/kvm") -> Bool {
        let fd = open(device, O_RDWR | O_CLOEXEC)
        if fd < 0 { return false }
        close(fd)
        return true
    }

    /// The QEMU arguments selecting this accelerator (after resolving `.auto`).
    public func qemuArguments(kvmDevice: String = "/dev/kvm") -> [String] {
        switch resolved(kvmDevice: kvmDevice) {
        case .kvm: return ["-accel", "kvm", "-cpu", "kvm64"]
        default: return ["-accel", "tcg"]
        }
    }
}

/// The network back end behind the guest's virtio-net device (always `id=n0`).
public enum NetworkBackend: Equatable, Sendable {
    /// QEMU user-mode networking, host UDP `udpPort` → guest port 7 (echo), host TCP `httpPort` → guest port 80.
    case user(udpPort: UInt16, httpPort: UInt16)
    /// Ethernet frames carried one per UDP datagram between `localPort` (QEMU's) and `peerPort` (the peer's).
    case socketUDP(peerPort: UInt16, localPort: UInt16)
    /// A tap device that already exists (`script=no,downscript=no`).
    case tap(ifname: String)
    /// Any other `-netdev` value; it must contain `id=n0`.
    case custom(String)

    public var netdevArgument: String {
        switch self {
        case let .user(udp, http):
            return "user,id=n0,hostfwd=udp:127.0.0.1:\(udp)-:7,hostfwd=tcp:127.0.0.1:\(http)-:80"
        case let .socketUDP(peer, local):
            return "socket,id=n0,udp=127.0.0.1:\(peer),localaddr=127.0.0.1:\(local)"
        case let .tap(ifname):
            return "tap,id=n0,ifname=\(ifname),script=no,downscript=no"
        case let .custom(value):
            return value
        }
    }
}

/// Limits QEMU 7.2 puts on virtio-net queue sizes.
public enum QueueSizeLimits {
    public static let minimum = 256
    public static let maximum = 1024
    /// QEMU clamps `tx_queue_size` to this unless the netdev is vhost-user or vhost-vdpa
    /// (checked on QEMU 7.2 with `-netdev user`: tx_queue_size=1024 gives a 256-entry TX queue).
    public static let txMaximumWithoutVhostUser = 256

    /// nil when `size` is acceptable to QEMU, otherwise the reason it is not.
    public static func problem(with size: Int, name: String) -> String? {
        if size < minimum || size > maximum || size & (size - 1) != 0 {
            return "\(name) must be a power of two between \(minimum) and \(maximum) (QEMU's limits), not \(size)"
        }
        return nil
    }
}

/// Firmware choices for `ringside run --firmware`.
public enum Firmware {
    /// QEMU's minimal firmware (Debian's qemu-system-data): it hands over to a PVH kernel in
    /// about 10 ms where SeaBIOS takes 60-140 ms, but assigns no PCI BARs (the kernel does).
    public static let qbootPath = "/usr/share/qemu/qboot.rom"

    /// `qboot` (the default, when installed), `seabios` (QEMU's own default), or a path.
    /// Returns the `-bios` argument, nil for SeaBIOS, or a message for an unusable choice.
    public static func resolve(_ choice: String, fileExists: (String) -> Bool) -> Result<String?, RingsideError> {
        switch choice {
        case "seabios": return .success(nil)
        case "qboot":
            return fileExists(qbootPath) ? .success(qbootPath)
                : .failure(RingsideError("\(qbootPath) is missing (Debian package qemu-system-data); use --firmware seabios"))
        default:
            return fileExists(choice) ? .success(choice) : .failure(RingsideError("firmware image \(choice) not found"))
        }
    }
}

/// The QEMU machine the kernel boots on.
public enum Machine: String, CaseIterable, Sendable {
    /// The default: a PCI bus, virtio-net-pci and virtio-serial-pci with MSI-X (virtio 1.2, 4.1).
    case pc
    /// QEMU's microvm: no PCI, no firmware tables; virtio-net-device and virtio-serial-device on the
    /// virtio-mmio transport (4.2), interrupts through the IOAPIC. `acpi=off` makes QEMU describe the
    /// devices on the kernel command line (`virtio_mmio.device=`) rather than in a DSDT, and
    /// `virtio-mmio.force-legacy=off` makes them modern (Version 2): the kernel drives only that.
    /// `pic=off,rtc=off`: the kernel uses neither the 8259s nor the CMOS clock, and without them
    /// QEMU starts the guest ~3 ms sooner (docs/architecture.md, "Boot time"); the PIT stays on:
    /// the kernel calibrates its clock against it.
    case microvm

    /// `-machine` without the memory backend.
    var machineArgument: String {
        switch self {
        case .pc: return "pc"
        case .microvm: return "microvm,x-option-roms=off,acpi=off,pic=off,rtc=off"
        }
    }

    /// What every line on this machine needs besides `-machine`.
    var globalArguments: [String] {
        switch self {
        case .pc: return []
        case .microvm: return ["-global", "virtio-mmio.force-legacy=off"]
        }
    }

    /// The virtio-net device (always `netdev=n0,id=net0`, modern only).
    public var netDevice: String {
        switch self {
        case .pc: return "virtio-net-pci,netdev=n0,id=net0,disable-legacy=on"
        case .microvm: return "virtio-net-device,netdev=n0,id=net0"
        }
    }

    /// The virtio-serial controller the virtconsole sits on (always `id=vser`, modern only).
    public var serialController: String {
        switch self {
        case .pc: return "virtio-serial-pci,id=vser,disable-legacy=on"
        case .microvm: return "virtio-serial-device,id=vser"
        }
    }

    /// Whether `-bios` applies: microvm brings its own minimal firmware (qboot-based
    /// bios-microvm.bin), so `--firmware` is for `pc` only.
    public var takesFirmware: Bool { self == .pc }
}

/// Everything needed to build one QEMU command line.
public struct QEMUConfiguration: Sendable {
    public var qemuBinary: String = "qemu-system-x86_64"
    /// The machine (`ringside run --machine`); `$RINGSIDE_MACHINE` overrides `pc` (`effectiveMachine`).
    public var machine: Machine = .pc
    /// The kernel ELF (`-kernel`); nil starts QEMU without a kernel (useful only with `-S` in tests).
    public var kernel: String?
    /// The kernel command line (`-append`); omitted when empty.
    public var append: String = ""
    public var memoryMiB: Int = 32
    /// A firmware image for `-bios`; nil keeps QEMU's default (SeaBIOS).
    public var firmware: String?
    public var accel: Accelerator = .tcg
    public var network: NetworkBackend = .user(udpPort: 5555, httpPort: 8080)
    public var rxQueueSize: Int?
    public var txQueueSize: Int?
    /// Offer packed virtqueues (virtio 1.2, 2.8): `packed=on` on the virtio-net and virtio-serial
    /// devices (`ringside run --packed`). Also on when `$RINGSIDE_PACKED` is 1 (`usesPackedRings`).
    public var packedRings = false
    /// Writes every frame crossing the netdev to this pcap file (`-object filter-dump`).
    public var pcapFile: String?
    /// Attach the virtio-serial controller + virtconsole (the telemetry channel).
    public var console: Bool = true
    /// Add `-device isa-debug-exit,iobase=0xf4,iosize=0x04` so the guest can end QEMU with a status.
    public var debugExit: Bool = true
    /// Give QEMU a second QMP socket (`qmp-user.sock` in the run directory) for the user:
    /// QEMU serves one client per QMP socket, and ringside holds the first.
    public var userQMP: Bool = false
    /// Guest RAM as a shared file the host can map read-only (`-object memory-backend-file,
    /// share=on` + `-machine memory-backend=`): the memory view beside telemetry and QMP. With it,
    /// QEMU gets one more QMP socket (the run directory's qmp-memory.sock) for that view.
    public var sharedMemoryPath: String?
    /// Raw arguments appended at the end of the line.
    public var extraArguments: [String] = []
    /// The guest's serial console on QEMU's standard output (`-serial stdio`) instead of the
    /// run directory's serial.log: for command lines people run by hand.
    public var serialToStdio = false
    /// Words put before the QEMU binary, e.g. `["ip", "netns", "exec", "ns0"]`.
    /// The launcher's wrapper must exec QEMU in the same process (as `ip netns exec` does).
    public var wrapper: [String] = []

    public init() {}

    /// `$RINGSIDE_KERNEL_APPEND`: words added to the kernel command line of every QEMU that
    /// Ringside starts with our kernel. `make test` runs the integration tests a second time
    /// with `virtio.event_idx=off`, so both notification modes are exercised.
    public static var environmentAppend: String {
        ProcessInfo.processInfo.environment["RINGSIDE_KERNEL_APPEND"] ?? ""
    }

    /// `$RINGSIDE_PACKED=1`: every QEMU that Ringside starts offers packed virtqueues, so the
    /// integration tests run on packed rings (as `$RINGSIDE_KERNEL_APPEND` runs them without
    /// event idx).
    public static var environmentPacked: Bool {
        ProcessInfo.processInfo.environment["RINGSIDE_PACKED"] == "1"
    }

    /// `$RINGSIDE_MACHINE=microvm`: every QEMU that Ringside starts with the default machine boots
    /// microvm instead, so the integration tests run on virtio-mmio (`make test-microvm`).
    public static var environmentMachine: Machine? {
        ProcessInfo.processInfo.environment["RINGSIDE_MACHINE"].flatMap { Machine(rawValue: $0) }
    }

    /// The machine QEMU gets: `machine`, or `$RINGSIDE_MACHINE` when `machine` is the default.
    public var effectiveMachine: Machine { machine == .pc ? QEMUConfiguration.environmentMachine ?? .pc : machine }

    /// Whether the devices offer packed virtqueues: `packedRings` or `$RINGSIDE_PACKED=1`.
    public var usesPackedRings: Bool { packedRings || QEMUConfiguration.environmentPacked }

    /// The device option offering packed virtqueues (VIRTIO_F_RING_PACKED), or "".
    var packedOption: String { usesPackedRings ? ",packed=on" : "" }

    /// The QEMU argument list (without the binary itself) for a run directory.
    public func arguments(in run: RunDirectory) -> [String] {
        arguments(serialLog: run.serialLog, consoleSocket: run.consoleSocket, qmpSocket: run.qmpSocket,
                  userQMPSocket: userQMP ? run.userQMPSocket : nil,
                  memoryQMPSocket: sharedMemoryPath == nil ? nil : run.memoryQMPSocket)
    }

    public func arguments(serialLog: String, consoleSocket: String, qmpSocket: String, userQMPSocket: String? = nil,
                          memoryQMPSocket: String? = nil) -> [String] {
        let machine = effectiveMachine
        var a: [String] = ["-machine", machine.machineArgument + (sharedMemoryPath == nil ? "" : ",memory-backend=ringside-ram"),
                           "-m", String(memoryMiB), "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot"]
        a += machine.globalArguments
        if let sharedMemoryPath {
            a += ["-object", "memory-backend-file,id=ringside-ram,size=\(memoryMiB)M,mem-path=\(sharedMemoryPath),share=on"]
        }
        a += accel.qemuArguments()
        if let firmware, machine.takesFirmware { a += ["-bios", firmware] }
        if let kernel {
            a += ["-kernel", kernel]
            let words = [append, QEMUConfiguration.environmentAppend].filter { !$0.isEmpty }.joined(separator: " ")
            if !words.isEmpty { a += ["-append", words] }
        }
        if serialToStdio {
            a += ["-serial", "stdio"]
        } else {
            a += ["-chardev", "file,id=ser0,path=\(serialLog)", "-serial", "chardev:ser0"]
        }
        a += ["-netdev", network.netdevArgument]
        var net = machine.netDevice + packedOption
        if let rxQueueSize { net += ",rx_queue_size=\(rxQueueSize)" }
        if let txQueueSize { net += ",tx_queue_size=\(txQueueSize)" }
        a += ["-device", net]
        if let pcapFile {
            a += ["-object", "filter-dump,id=f0,netdev=n0,file=\(pcapFile)"]
        }
        if console {
            a += QEMUConfiguration.consoleArguments(socket: consoleSocket, controller: machine.serialController + packedOption)
        }
        a += QEMUConfiguration.qmpArguments(socket: qmpSocket)
        if let userQMPSocket { a += QEMUConfiguration.qmpArguments(socket: userQMPSocket) }
        if let memoryQMPSocket { a += QEMUConfiguration.qmpArguments(socket: memoryQMPSocket) }
        if debugExit { a += ["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04"] }
        a += extraArguments
        return a
    }

    /// The complete argv: wrapper, binary, arguments.
    public func commandLine(in run: RunDirectory) -> [String] {
        wrapper + [qemuBinary] + arguments(in: run)
    }

    /// The virtio-console channel: a virtio-serial controller, a unix socket chardev (QEMU is the
    /// server, it does not wait for a client) and a virtconsole port on it.
    public static func consoleArguments(socket: String, controller: String = Machine.pc.serialController) -> [String] {
        [
            "-device", controller,
            "-chardev", "socket,id=con0c,path=\(socket),server=on,wait=off",
            "-device", "virtconsole,chardev=con0c,id=con0",
        ]
    }

    public static func qmpArguments(socket: String) -> [String] {
        ["-qmp", "unix:\(socket),server=on,wait=off"]
    }

    /// Problems QEMU would reject (or silently change), as messages; empty when fine.
    public func validationProblems() -> [String] {
        var problems: [String] = []
        if memoryMiB < 2 || memoryMiB > 65536 { problems.append("memory must be between 2 and 65536 MiB, not \(memoryMiB)") }
        if let rxQueueSize, let p = QueueSizeLimits.problem(with: rxQueueSize, name: "rx queue size") { problems.append(p) }
        if let txQueueSize, let p = QueueSizeLimits.problem(with: txQueueSize, name: "tx queue size") { problems.append(p) }
        if case let .user(udp, http) = network {
            if udp == 0 { problems.append("the UDP port must be between 1 and 65535") }
            if http == 0 { problems.append("the HTTP port must be between 1 and 65535") }
            if udp != 0 && udp == http {
                // Different protocols, so this is legal; nothing to report.
            }
        }
        return problems
    }
}

/// Quotes an argv for a POSIX shell (for printing command lines people can paste).
public func shellQuoted(_ argv: [String]) -> String {
    argv.map { word -> String in
        let safe = word.allSatisfy { c in
            c.isLetter || c.isNumber || "-_./:=,@%+".contains(c)
        }
        if safe && !word.isEmpty { return word }
        return "'" + word.replacingOccurrences(of: "'", with: "'\\''") + "'"
    }.joined(separator: " ")
}
