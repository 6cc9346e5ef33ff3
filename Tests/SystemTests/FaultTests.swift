import Foundation
import XCTest
@testable import RingsideKit

/// A CPU exception in the kernel is never silent: it is printed on the serial console with
/// its vector, name, error code, CR2 and registers, and the kernel halts (ending QEMU with
/// isa-debug-exit status 0x7f under test).
final class FaultTests: QEMUTestCase {
    func testPageFaultIsReportedWithRegistersAndEndsTheRun() throws {
        guard let kernel = requireKernel() else { return }
        var c = try baseConfiguration(kernel: kernel)
        c.append = "ringside.fault=page"
        let q = try launch(c)
        let log = try q.waitForSerial("kernel halted", timeout: 30)
        XCTAssertTrue(log.contains("CPU exception 0e (page fault)"), "fault report missing:\n\(log)")
        XCTAssertTrue(log.contains("cr2=0000010000000000"), "faulting address missing:\n\(log)")
        for register in ["rip=", "rsp=", "rax=", "r15="] {
            XCTAssertTrue(log.contains(register), "\(register) missing from the report")
        }
        XCTAssertFalse(log.contains("ringside: ready"), "the kernel went on after the fault")
        guard let status = q.process.wait(timeout: 10) else { return XCTFail("QEMU still running after the fault") }
        XCTAssertEqual(q.outcome(of: status), .guestExit(code: 0x7f))
    }
}
