import Foundation
import XCTest
@testable import RingsideKit

/// Minimal firmware (qboot, shipped with QEMU) boots PVH kernels in a few milliseconds but
/// leaves PCI BARs unassigned: the kernel sizes and places them itself, and works the same.
final class FirmwareTests: QEMUTestCase {
    func testKernelAssignsBARsUnderQbootAndEchoes() throws {
        guard let kernel = requireKernel() else { return }
        let qboot = "/usr/share/qemu/qboot.rom"
        guard FileManager.default.isReadableFile(atPath: qboot) else {
            return XCTFail("\(qboot) is missing (Debian package qemu-system-data, a dependency of qemu-system-x86)")
        }
        var c = try baseConfiguration(kernel: kernel)
        c.extraArguments = ["-bios", qboot]
        let q = try launchReady(c)
        let log = q.serialOutput
        XCTAssertTrue(log.contains("unassigned by firmware, placed at"), "the kernel assigned no BAR:\n\(log)")
        XCTAssertTrue(log.contains("net0: virtio-net at"), log)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let retries = try runEchoExchange(port: udpPort, count: 50, sizes: 1...1472, seed: 0x9B00)
        XCTAssertLessThanOrEqual(retries, 5)
    }
}
