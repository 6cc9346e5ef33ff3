import XCTest
import Foundation
@testable import Virtio

/// The device runs on its own thread against the same memory, as a real device would: this
/// exercises the barriers in publish() / usedIdx rather than a lock-step simulation.
final class ConcurrentDeviceTests: XCTestCase {
    func testEchoAgainstADeviceThread() {
        let total = 100_000
        let memory = RingMemory(size: 64)
        let queue = memory.makeQueue()
        let device = memory.makeDevice()
        let pool = BufferPool(count: 64, bufferSize: 8)
        let done = DispatchSemaphore(value: 0)
        let deviceBox = UncheckedBox(device)

        let thread = Thread {
            let device = deviceBox.value
            var sequence: UInt32 = 0
            while sequence < UInt32(total) {
                guard let chain = try! device.takeAvailable() else { continue }
                device.write(withUnsafeBytes(of: sequence.littleEndian) { Array($0) }, into: chain)
                sequence += 1
                device.addUsed(chain, len: 4)
                device.publishUsed()
            }
            done.signal()
        }
        thread.start()

        var received = 0
        var free = Array(0..<64)
        let deadline = Date().addingTimeInterval(60)
        while received < total, Date() < deadline {
            while let buffer = free.popLast() {
                _ = queue.addBuffer(addr: pool.address(buffer), len: 8, deviceWritable: true)
            }
            queue.publish()
            while let element = queue.popUsed() {
                let addr = queue.buffer(element.head)!.addr
                let b = pool.bytes(at: addr, count: 4)
                let value = UInt32(b[0]) | UInt32(b[1]) << 8 | UInt32(b[2]) << 16 | UInt32(b[3]) << 24
                if value != UInt32(received) {
                    XCTFail("packet \(received) carried \(value)")
                    return
                }
                received += 1
                free.append(pool.index(of: addr))
                queue.release(head: element.head)
            }
        }
        XCTAssertEqual(done.wait(timeout: .now() + 10), .success)
        XCTAssertEqual(received, total)
        XCTAssertEqual(queue.counters.deviceErrors, 0)
    }
}

final class UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
