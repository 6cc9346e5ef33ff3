import Foundation
import XCTest
import Wire
@testable import RingsideKit
// SplitMix64, UDPSocket, freePort, runCommand, ringsideBinary, kernelPathForTests: shared by every
// host test target.
@_exported import RingsideTestSupport

/// MAC and IPv4 addresses as the raw-frame peers (EthernetPeer, RawLink) spell them: the bytes
/// the reference frames (RingsideTestSupport's Frames.swift) take.
typealias MAC = [UInt8]
typealias IPv4Address = [UInt8]

/// The ring format the tests' kernels run on: packed when `$RINGSIDE_PACKED=1` makes QEMU offer it.
var testRingFormat: WireRingFormat { QEMUConfiguration.environmentPacked ? .packed : .split }

/// How many positions `to` is past `from` on a 256-entry network queue of the tests' format
/// (split indices mod 2^16, packed positions with their wrap counters: `wireRingDistance`).
func ringDistance(from: UInt16, to: UInt16, size: UInt16 = 256) -> Int {
    wireRingDistance(from: from, to: to, size: size, format: testRingFormat)
}


/// The QOM path of the virtio device with `-device … id=ID`, asked of QEMU (x-query-virtio): it
/// differs between machines (`/machine/peripheral/ID/virtio-backend` on pc, `/machine/peripheral/ID`
/// on microvm, RINGSIDE_MACHINE=microvm).
func virtioDevicePath(_ qmp: QMPClient, id: String, file: StaticString = #filePath, line: UInt = #line) throws -> String {
    let devices = try virtioDevices(qmp)
    guard let path = virtioDevicePath(id: id, in: devices) else {
        throw RingsideError("QEMU has no virtio device with id=\(id): \(devices)")
    }
    return path
}

/// Skips a test that needs the `pc` machine, saying why, when the tests run on microvm.
func skipOnMicrovm(_ why: String) throws {
    if QEMUConfiguration.environmentMachine == .microvm { throw XCTSkip("on microvm: \(why)") }
}

// MARK: - Scratch files and captures

extension XCTestCase {
    /// A fresh directory for one test's files (PREFIX-pid-random under the temporary directory),
    /// removed when the test ends.
    func scratchDirectory(_ prefix: String) throws -> String {
        let dir = NSTemporaryDirectory() + "\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(atPath: dir) }
        return dir
    }
}

/// Starts `ringside capture ARGS` with its output in `log`, waiting (20 s at most) until it says
/// it is capturing.
func startCapture(_ bin: String, _ args: [String], log: String) throws -> ChildProcess {
    let child = try ChildProcess(argv: [bin, "capture"] + args, outputFile: log)
    let deadline = monotonicSeconds() + 20
    while !readTextFile(log).contains("capturing ") {
        if !child.isRunning || monotonicSeconds() > deadline {
            child.signal(SIGKILL)
            throw RingsideError("capture did not start: \(readTextFile(log))")
        }
        usleep(50_000)
    }
    return child
}

/// What `ringside capture` said of a queue when it stopped: "net0.tx: 12 frames written, 3
/// missed…" → (12, 3).
func captureSummary(_ log: String, _ queue: String) -> (written: Int, missed: Int)? {
    guard let line = log.split(separator: "\n").first(where: { $0.hasPrefix(queue + ": ") }) else { return nil }
    let words = line.split(separator: " ")
    guard words.count > 5, let w = Int(words[1]), let m = Int(words[4]) else { return nil }
    return (w, m)
}

/// Whether `marker` stands anywhere in `frame`.
func contains(_ frame: [UInt8], _ marker: [UInt8]) -> Bool {
    frame.count >= marker.count && (0...(frame.count - marker.count)).contains { Array(frame[$0..<($0 + marker.count)]) == marker }
}

// MARK: - Base class

/// Launches QEMU instances and always stops them in tearDown.
class QEMUTestCase: XCTestCase {
    private(set) var instances: [QEMUInstance] = []

    override func tearDown() {
        for q in instances {
            q.stop(grace: 2)
            if q.process.isRunning {
                XCTFail("QEMU pid \(q.process.pid) still running after stop")
            }
        }
        instances.removeAll()
        super.tearDown()
    }

    /// The kernel path, or XCTFail (never a silent skip) when QEMU or the kernel is missing.
    func requireKernel(file: StaticString = #filePath, line: UInt = #line) -> String? {
        guard findExecutable("qemu-system-x86_64") != nil else {
            XCTFail("qemu-system-x86_64 is not installed (run `make deps`, or apt-get install qemu-system-x86)", file: file, line: line)
            return nil
        }
        let kernel = kernelPathForTests()
        guard FileManager.default.isReadableFile(atPath: kernel) else {
            XCTFail("kernel ELF not found at \(kernel): build it with `make kernel` (or set RINGSIDE_KERNEL)", file: file, line: line)
            return nil
        }
        return kernel
    }

    /// A configuration for the test kernel with fresh forwarded ports.
    func baseConfiguration(kernel: String?) throws -> QEMUConfiguration {
        var c = QEMUConfiguration()
        c.kernel = kernel
        c.accel = .tcg
        c.network = .user(udpPort: try freePort(udp: true), httpPort: try freePort(udp: false))
        return c
    }

    func launch(_ configuration: QEMUConfiguration) throws -> QEMUInstance {
        let q = try QEMUInstance(configuration: configuration)
        instances.append(q)
        return q
    }

    /// Launches and waits for `ringside: ready` on the serial console.
    func launchReady(_ configuration: QEMUConfiguration, timeout: Double = 30) throws -> QEMUInstance {
        let q = try launch(configuration)
        try q.waitForSerial("ringside: ready", timeout: timeout)
        return q
    }
}

/// Echoes `count` datagrams of random sizes through 127.0.0.1:`port`, one outstanding, with
/// retransmission. Returns the number of retransmissions. Fails the test on mismatches.
func runEchoExchange(port: UInt16, count: Int, sizes: ClosedRange<Int>, seed: UInt64,
                     perTryTimeout: Double = 0.5, maxTriesPerDatagram: Int = 10,
                     file: StaticString = #filePath, line: UInt = #line) throws -> Int {
    let sock = try UDPSocket()
    var rng = SplitMix64(seed: seed)
    var retries = 0
    var previous: [[UInt8]] = []
    var stale = 0
    for i in 0..<count {
        let size = Int.random(in: sizes, using: &rng)
        let payload = [UInt8].random(count: size, using: &rng)
        var echoed = false
        tries: for attempt in 0..<maxTriesPerDatagram {
            if attempt > 0 { retries += 1 }
            try sock.send(payload, toPort: port)
            let deadline = monotonicSeconds() + perTryTimeout
            while monotonicSeconds() < deadline {
                guard let reply = sock.receive(timeout: deadline - monotonicSeconds()) else { break }
                if reply == payload { echoed = true; break tries }
                if previous.contains(reply) { stale += 1; continue } // late echo of an earlier retransmission
                XCTFail("datagram \(i) (\(size) bytes): reply of \(reply.count) bytes does not match; sent \(hex(payload)), got \(hex(reply))", file: file, line: line)
                return retries
            }
        }
        if !echoed {
            XCTFail("datagram \(i) (\(size) bytes) never echoed after \(maxTriesPerDatagram) tries", file: file, line: line)
            return retries
        }
        previous.append(payload)
        if previous.count > 8 { previous.removeFirst() }
    }
    return retries
}

/// The frames of a classic pcap file (QEMU's `filter-dump`: 24-byte header, then a 16-byte
/// record header before each frame), read from the format alone.
func pcapFrames(_ file: [UInt8]) -> [[UInt8]] {
    func le32(_ at: Int) -> Int { (0..<4).reduce(0) { $0 | Int(file[at + $1]) << (8 * $1) } }
    var frames: [[UInt8]] = []
    var at = 24
    while at + 16 <= file.count {
        let incl = le32(at + 8)
        guard at + 16 + incl <= file.count else { break }
        frames.append(Array(file[(at + 16)..<(at + 16 + incl)]))
        at += 16 + incl
    }
    return frames
}
