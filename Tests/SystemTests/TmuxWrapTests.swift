import Foundation
import RingsideKit
import XCTest

/// `ringside wrap -- <the Linux reference guest's own QEMU line>` in tmux: the TUI shows every
/// queue of a guest Ringside did not build, read from its memory; `q` stops QEMU.
final class TmuxWrapTests: XCTestCase {
    static var linuxPeerScript: String {
        ProcessInfo.processInfo.environment["RINGSIDE_LINUX_PEER"] ?? (repositoryRoot + "/../shared/bench/linux-peer.sh")
    }
    static var linuxPeerDirectory: String { ProcessInfo.processInfo.environment["LINUX_PEER_DIR"] ?? "/tmp/linux-peer" }

    /// Builds the Linux guest once if it is missing.
    func linuxGuestFiles() throws -> (kernel: String, initrd: String) {
        let dir = Self.linuxPeerDirectory
        let files = (dir + "/vmlinuz", dir + "/initrd.img")
        let fm = FileManager.default
        if !(fm.fileExists(atPath: files.0) && fm.fileExists(atPath: files.1)) {
            let out = NSTemporaryDirectory() + "linux-peer-build-\(getpid()).log"
            defer { unlink(out) }
            let child = try ChildProcess(argv: [Self.linuxPeerScript, "build"], outputFile: out)
            guard child.wait(timeout: 1800) == .exited(0) else { throw RingsideError("linux-peer.sh build failed: \(readTextFile(out).suffix(2000))") }
        }
        return files
    }

    /// The QEMU process with `text` on its command line, if any.
    func qemuProcess(withArgument text: String) -> pid_t? {
        let procs = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        for p in procs where p.allSatisfy(\.isNumber) {
            guard let d = FileManager.default.contents(atPath: "/proc/\(p)/cmdline") else { continue }
            let argv = d.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
            if argv.first?.hasSuffix("qemu-system-x86_64") == true, argv.contains(where: { $0.contains(text) }) { return pid_t(p) }
        }
        return nil
    }

    func processRunning(withArgument text: String) -> Bool { qemuProcess(withArgument: text) != nil }

    /// A guest RAM file name of its own for one test (`prefix`, the pid and a random number).
    func guestMemoryPath(_ prefix: String) -> String {
        "/dev/shm/\(prefix)-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).ram"
    }

    /// Kills the QEMU that has `memory` as its RAM file, if one is left, and removes the file:
    /// whatever happened, no QEMU of ours outlives the test.
    func killWrappedGuest(memory: String) {
        if let pid = qemuProcess(withArgument: "mem-path=\(memory)") { kill(pid, SIGKILL) }
        unlink(memory)
    }

    /// `ringside wrap --memory-path MEMORY -- <the Linux guest's own QEMU line>` in tmux, the
    /// guest's UDP echo (port 7) forwarded from host port `udp`.
    func wrapLinuxGuest(memory: String, udp: UInt16, width: Int, height: Int) throws -> TmuxSession {
        let (kernel, initrd) = try linuxGuestFiles()
        let line = "qemu-system-x86_64 -nodefaults -display none -m 128 -accel tcg -serial null "
            + "-netdev user,id=n0,ipv6=off,hostfwd=udp:127.0.0.1:\(udp)-:7 -device virtio-net-pci,netdev=n0,id=net0,disable-legacy=on "
            + "-kernel \(kernel) -initrd \(initrd) -append 'console=ttyS0 quiet'"
        return try TmuxSession(ringside: "wrap --memory-path \(memory) -- \(line)", width: width, height: height)
    }

    func testWrapShowsTheLinuxGuestsQueuesAndQStopsQEMU() throws {
        let memory = guestMemoryPath("rs-wrap")
        defer { killWrappedGuest(memory: memory) }
        let tmux = try wrapLinuxGuest(memory: memory, udp: try freePort(udp: true), width: 120, height: 40)
        let screen = tmux.waitFor("the guest's queues, read from its memory", timeout: 90) { s in
            s.contains("net0.rx") && s.contains("net0.tx") && s.contains("net0.ctrl") && s.contains("rings from guest memory")
                && s.contains(" avail 0x")   // RX buffers Linux posted, in the descriptor table
        }
        XCTAssertTrue(screen.contains("Ringside wrap"), screen)
        XCTAssertTrue(processRunning(withArgument: "mem-path=\(memory)"), "QEMU runs with the memory backend")
        try tmux.send("q")
        XCTAssertEqual(tmux.exitStatus(timeout: 15), 0)
        XCTAssertFalse(processRunning(withArgument: "mem-path=\(memory)"), "q stopped QEMU")
        XCTAssertFalse(FileManager.default.fileExists(atPath: memory), "the memory file is removed")
    }
}
