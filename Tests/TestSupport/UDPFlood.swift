import Foundation
import RingsideKit

/// Sends datagrams to 127.0.0.1:`port` at `rate` per second on a thread of its own (in 2 ms
/// bursts), and counts the echoes on another, until `stop()`.
public final class UDPFlood: @unchecked Sendable {
    public let port: UInt16
    public let rate: Double
    private let socket: UDPSocket
    private let lock = NSLock()
    private var stopping = false
    private var _sent = 0
    private var _echoed = 0
    private let done = DispatchGroup()

    public init(port: UInt16, rate: Double, payloadBytes: Int = 64) throws {
        self.port = port
        self.rate = rate
        socket = try UDPSocket()
        let payload = [UInt8](repeating: 0x46, count: payloadBytes)
        done.enter()
        Thread { [self] in
            let start = monotonicSeconds()
            var sent = 0
            while !self.isStopping {
                let due = Int((monotonicSeconds() - start) * rate)
                while sent < due {
                    if (try? self.socket.send(payload, toPort: port)) != nil { sent += 1 } else { break }
                    if sent % 64 == 0 { self.lock.lock(); self._sent = sent; self.lock.unlock() }
                }
                self.lock.lock(); self._sent = sent; self.lock.unlock()
                usleep(2000)
            }
            self.done.leave()
        }.start()
        done.enter()
        Thread { [self] in
            while !self.isStopping {
                if self.socket.receive(timeout: 0.05) != nil {
                    self.lock.lock(); self._echoed += 1; self.lock.unlock()
                }
            }
            self.done.leave()
        }.start()
    }

    private var isStopping: Bool { lock.lock(); defer { lock.unlock() }; return stopping }

    public var sent: Int { lock.lock(); defer { lock.unlock() }; return _sent }
    public var echoed: Int { lock.lock(); defer { lock.unlock() }; return _echoed }

    public func stop() {
        lock.lock(); stopping = true; lock.unlock()
        done.wait()
    }

    deinit {
        lock.lock(); stopping = true; lock.unlock()
    }
}
