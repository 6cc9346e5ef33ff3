import Foundation
import XCTest
import Wire
@testable import RingsideKit

/// Telemetry end to end: the real kernel in real QEMU, its console socket, the host library.
final class TelemetryTests: QEMUTestCase {

    struct Guest {
        let qemu: QEMUInstance
        let telemetry: TelemetryConnection
        let udpPort: UInt16
    }

    /// Boots the kernel and connects to its console socket; returns once a complete model is in.
    func bootWithTelemetry(file: StaticString = #filePath, line: UInt = #line) throws -> Guest? {
        guard let kernel = requireKernel(file: file, line: line) else { return nil }
        let c = try baseConfiguration(kernel: kernel)
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { XCTFail("not user networking"); return nil }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        guard t.nextCompleteSnapshot(timeout: 10) != nil else {
            XCTFail("no complete snapshot within 10 s of connecting", file: file, line: line)
            return nil
        }
        return Guest(qemu: q, telemetry: t, udpPort: udpPort)
    }

    /// A fresh full snapshot (`stats`), as the model.
    func stats(_ t: TelemetryConnection, file: StaticString = #filePath, line: UInt = #line) throws -> TelemetryModel {
        try t.fullSnapshot(timeout: 10)
    }

    func status(_ m: TelemetryModel, _ queue: UInt8) -> WireQueueStatus {
        m.queues[m.position(ofQueue: queue)!].status!
    }

    /// Polls `stats` until `condition` holds (or throws after `timeout`).
    func waitForModel(_ t: TelemetryConnection, timeout: Double = 5, _ what: String,
                      _ condition: (TelemetryModel) -> Bool) throws -> TelemetryModel {
        let deadline = monotonicSeconds() + timeout
        var m = try stats(t)
        while !condition(m) {
            if monotonicSeconds() > deadline { throw RingsideError("timed out waiting for \(what); last: \(m.snapshotJSON().prefix(600))") }
            usleep(50_000)
            m = try stats(t)
        }
        return m
    }

    func payloads(_ n: Int, tag: String) -> [[UInt8]] {
        (0..<n).map { Array("ringside \(tag) datagram #\($0) \(UUID().uuidString)".utf8) }
    }

    /// One echo to settle ARP/slirp before exact counting.
    func warmUp(_ port: UInt16) throws {
        _ = try runEchoExchange(port: port, count: 3, sizes: 16...64, seed: 7, perTryTimeout: 1)
    }

    // MARK: Snapshots

    func testSnapshotsArriveAt10HzAndCountUDPTraffic() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        var uptimes: [UInt64] = []
        let start = monotonicSeconds()
        while monotonicSeconds() - start < 3 {
            for item in t.receive(timeout: 0.2) {
                if case .snapshot(let s, _, _) = item { uptimes.append(s.uptimeNs) }
            }
        }
        let elapsed = monotonicSeconds() - start
        let rate = Double(uptimes.count) / elapsed
        print("snapshots: \(uptimes.count) in \(String(format: "%.2f", elapsed)) s = \(String(format: "%.1f", rate)) Hz")
        XCTAssertGreaterThan(rate, 7, "snapshots should arrive at about 10 Hz")
        XCTAssertLessThan(rate, 14, "snapshots should arrive at about 10 Hz")
        if uptimes.count > 2 {
            let gaps = zip(uptimes.dropFirst(), uptimes).map { Double($0 &- $1) / 1e6 }
            let mean = gaps.reduce(0, +) / Double(gaps.count)
            XCTAssertEqual(mean, 100, accuracy: 20, "mean kernel-side snapshot interval (ms)")
        }

        try warmUp(g.udpPort)
        // Exact counts: slirp now and then sends the guest a frame of its own (an ARP request),
        // which the counters rightly include; such a window is measured again (up to 3 times).
        let sock = try UDPSocket()
        var exact = false
        for attempt in 0..<3 {
            let before = try stats(t)
            let sent = payloads(20, tag: "count\(attempt)")
            var echoed = 0
            for p in sent {
                try sock.send(p, toPort: g.udpPort)
                if let r = sock.receive(timeout: 2), r == p { echoed += 1 }
            }
            XCTAssertEqual(echoed, sent.count, "every datagram echoed")
            // Snapshots move on their own: wait for one that has seen every packet.
            let after = try waitForModel(t, "rx packets +\(sent.count)") {
                self.status($0, 0).counters.packets &- self.status(before, 0).counters.packets >= UInt64(sent.count)
            }
            let rx0 = status(before, 0), rx1 = status(after, 0)
            let tx0 = status(before, 1), tx1 = status(after, 1)
            let frameBytes = sent.reduce(0) { $0 + UInt64(12 + 14 + 20 + 8 + $1.count) }
            let rxPackets = rx1.counters.packets - rx0.counters.packets, txPackets = tx1.counters.packets - tx0.counters.packets
            let rxBytes = rx1.counters.bytes - rx0.counters.bytes
            print("attempt \(attempt): \(sent.count) datagrams: net0.rx +\(rxPackets) packets +\(rxBytes) bytes (expected \(frameBytes)), net0.tx +\(txPackets) packets, used_idx +\(rx1.usedIdx &- rx0.usedIdx)")
            XCTAssertGreaterThanOrEqual(rxPackets, UInt64(sent.count))
            XCTAssertLessThanOrEqual(rxPackets, UInt64(sent.count) + 2, "net0.rx packets")
            XCTAssertEqual(UInt64(ringDistance(from: rx0.usedIdx, to: rx1.usedIdx)), rxPackets, "net0.rx used_idx moves with the packet count")
            XCTAssertEqual(rx1.lastUsedIdx, rx1.usedIdx, "a running RX queue consumes everything")
            if rxPackets == UInt64(sent.count) && txPackets == UInt64(sent.count) {
                XCTAssertEqual(rxBytes, frameBytes, "net0.rx bytes (virtio-net header + frame)")
                exact = true
                break
            }
        }
        XCTAssertTrue(exact, "net0.rx and net0.tx packets never moved by exactly the datagram count")
    }

    // MARK: Pause and step

    func testPauseRXStepsOneDatagramAtATimeAndResumeDrains() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        try warmUp(g.udpPort)
        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let sock = try UDPSocket()
        let sent = payloads(3, tag: "step")
        for p in sent { try sock.send(p, toPort: g.udpPort) }
        XCTAssertNil(sock.receive(timeout: 1), "a paused RX queue must not deliver (no echo)")
        let paused = try waitForModel(t, "3 pending used elements") { self.status($0, 0).pendingUsed == 3 }
        let rx = status(paused, 0)
        XCTAssertTrue(rx.paused)
        XCTAssertEqual(ringDistance(from: rx.lastUsedIdx, to: rx.usedIdx), 3)
        // The three elements are in state "used" in the descriptor table.
        XCTAssertEqual(paused.queues[0].count(of: .used), 3, "descriptors awaiting the driver")

        // dump --next: the first datagram's frame, byte for byte.
        let reply = try t.request(.dump(queue: 0, selector: .next))
        XCTAssertEqual(reply.status, .ok, reply.message)
        guard case .dump(let dump) = reply.body else { return XCTFail("no dump body") }
        let bytes = dump.bytes
        XCTAssertEqual(bytes.count, 12 + 14 + 20 + 8 + sent[0].count, "virtio-net header + Ethernet + IPv4 + UDP + payload")
        XCTAssertEqual(Int(dump.bufferLength), bytes.count)
        XCTAssertEqual(Array(bytes[0..<10]), [UInt8](repeating: 0, count: 10), "virtio-net header: no offloads")
        XCTAssertEqual(Array(bytes[12 + 12..<12 + 14]), [0x08, 0x00], "EtherType IPv4")
        XCTAssertEqual(bytes[12 + 14] >> 4, 4)
        XCTAssertEqual(bytes[12 + 14 + 9], 17, "IP protocol UDP")
        XCTAssertEqual(UInt16(bytes[12 + 34 + 2]) << 8 | UInt16(bytes[12 + 34 + 3]), 7, "UDP destination port 7")
        let description = FrameDecoder.describe(bytes)
        XCTAssertEqual(description.udpPayload, sent[0], "dumped UDP payload equals the first datagram\n\(description.text)")
        XCTAssertTrue(description.notes.isEmpty, description.text)

        // Two steps: one echo each, in order, never more.
        for i in 0..<2 {
            let r = try t.request(.step(queue: 0, count: 1))
            XCTAssertEqual(r.status, .ok, r.message)
            XCTAssertEqual(sock.receive(timeout: 2), sent[i], "step \(i + 1) delivers datagram \(i)")
            XCTAssertNil(sock.receive(timeout: 0.5), "step \(i + 1) delivered more than one")
            if i == 0 {
                // The step reports the used element it took: the very buffer dumped above.
                let event = t.wait(timeout: 2) { incoming in
                    if case .message(.event(let e), _) = incoming, case let .usedBatch(0, _, elements) = e.kind {
                        return elements == [WireUsedElement(id: UInt32(dump.descriptor), len: UInt32(bytes.count))]
                    }
                    return false
                }
                XCTAssertNotNil(event, "a usedBatch event for descriptor \(dump.descriptor) after the step")
            }
            let m = try stats(t)
            XCTAssertEqual(status(m, 0).pendingUsed, UInt16(2 - i), "pending after step \(i + 1)")
        }
        // The dump of `last` is now the second datagram.
        let last = try t.request(.dump(queue: 0, selector: .last))
        if case .dump(let d) = last.body { XCTAssertEqual(FrameDecoder.describe(d.bytes).udpPayload, sent[1]) } else { XCTFail("dump --last: \(last)") }

        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
        XCTAssertEqual(sock.receive(timeout: 2), sent[2], "resume drains the rest")
        XCTAssertNil(sock.receive(timeout: 0.5))
        let m = try waitForModel(t, "nothing pending") { self.status($0, 0).pendingUsed == 0 && !self.status($0, 0).paused }
        XCTAssertEqual(status(m, 0).lastUsedIdx, status(m, 0).usedIdx)

        // A second round with more datagrams than steps: N steps, exactly N echoes.
        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let more = payloads(5, tag: "round2")
        for p in more { try sock.send(p, toPort: g.udpPort) }
        _ = try waitForModel(t, "5 pending") { self.status($0, 0).pendingUsed == 5 }
        let r = try t.request(.step(queue: 0, count: 3))
        XCTAssertEqual(r.status, .ok, r.message)
        for i in 0..<3 { XCTAssertEqual(sock.receive(timeout: 2), more[i], "step 3: echo \(i)") }
        XCTAssertNil(sock.receive(timeout: 0.7), "step 3 delivered more than 3")
        let over = try t.request(.step(queue: 0, count: 10))
        XCTAssertEqual(over.status, .ok)
        XCTAssertFalse(over.message.isEmpty, "a short step says so")
        for i in 3..<5 { XCTAssertEqual(sock.receive(timeout: 2), more[i]) }
        XCTAssertEqual(try t.request(.step(queue: 0, count: 1)).status, .nothingPending)
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
    }

    /// A step of 257 (more than the console has transmit buffers, and than a 256-entry ring
    /// holds) reports every used element it took, in ring order, with its length: none lost.
    func testStepOf257ReportsEveryUsedElement() throws {
        try skipOnMicrovm("needs a 512-entry RX queue; the MMIO driver caps its queues at 256 (QEMU's QueueNumMax ignores rx_queue_size)")
        guard let kernel = requireKernel() else { return }
        var c = try baseConfiguration(kernel: kernel)
        c.rxQueueSize = 512
        let q = try launchReady(c)
        guard case let .user(udpPort, _) = c.network else { return XCTFail("not user networking") }
        let t = try TelemetryConnection(path: q.run.consoleSocket, timeout: 10)
        XCTAssertNotNil(t.nextCompleteSnapshot(timeout: 10))
        try warmUp(udpPort)
        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let sock = try UDPSocket()
        // Datagram i has 10 + i payload bytes: its used length (virtio-net header + Ethernet +
        // IPv4 + UDP + payload) says which datagram a used element carried.
        let total = 300, stepped = 257
        for i in 0..<total {
            try sock.send([UInt8](repeating: UInt8(truncatingIfNeeded: i), count: 10 + i), toPort: udpPort)
            if i % 50 == 49 { usleep(20_000) }
        }
        let paused = try waitForModel(t, timeout: 15, "\(total) pending") { self.status($0, 0).pendingUsed == UInt16(total) }
        let first = status(paused, 0).lastUsedIdx
        let droppedBefore = paused.droppedFrames
        _ = t.receive(timeout: 0)
        let r = try t.request(.step(queue: 0, count: UInt16(stepped)), timeout: 10)
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(r.message, "", "all \(stepped) were pending")
        var elements: [WireUsedElement] = []
        var nextIdx = first
        var steppedCount: UInt16?
        let deadline = monotonicSeconds() + 10
        while steppedCount == nil && monotonicSeconds() < deadline {
            for item in t.receive(timeout: 0.5) {
                guard case .message(.event(let e), _) = item else { continue }
                switch e.kind {
                case let .usedBatch(0, firstUsedIdx, batch):
                    XCTAssertEqual(firstUsedIdx, nextIdx, "each batch starts where the previous ended")
                    nextIdx = firstUsedIdx &+ UInt16(batch.count)
                    elements += batch
                case let .stepped(0, n):
                    steppedCount = n
                default:
                    break
                }
            }
        }
        XCTAssertEqual(steppedCount, UInt16(stepped), "the stepped event")
        XCTAssertEqual(elements.count, stepped, "a used element reported for every one stepped")
        let lengths = elements.map { Int($0.len) }
        XCTAssertEqual(lengths, (0..<stepped).map { 12 + 14 + 20 + 8 + 10 + $0 }, "in ring order, each with its datagram's length")
        XCTAssertEqual(Set(elements.map { $0.id }).count, stepped, "distinct chain heads")
        XCTAssertTrue(elements.allSatisfy { $0.id < 512 })
        let after = try stats(t)
        XCTAssertEqual(status(after, 0).lastUsedIdx, first &+ UInt16(stepped))
        XCTAssertEqual(status(after, 0).pendingUsed, UInt16(total - stepped))
        print("step \(stepped): \(elements.count) used elements reported; kernel telemetry drops \(droppedBefore) -> \(after.droppedFrames)")
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
    }

    func testPauseTXHoldsTheEchoUntilStepped() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        try warmUp(g.udpPort)
        XCTAssertEqual(try t.request(.pause(queue: 1)).status, .ok)
        let sock = try UDPSocket()
        let p = payloads(1, tag: "tx")[0]
        try sock.send(p, toPort: g.udpPort)
        XCTAssertNil(sock.receive(timeout: 1), "a paused TX queue must hold the echo")
        // No echo within 1 s does not mean the echo is held yet (a loaded host may not have run
        // the guest that long): until it is, dump --next says nothingPending. Ask again until
        // the held frame is there (pending_used counts used elements, not held TX frames).
        var next = try t.request(.dump(queue: 1, selector: .next))
        let heldDeadline = monotonicSeconds() + 5
        while next.status == .nothingPending && monotonicSeconds() < heldDeadline {
            usleep(50_000)
            next = try t.request(.dump(queue: 1, selector: .next))
        }
        XCTAssertEqual(next.status, .ok, next.message)
        if case .dump(let d) = next.body {
            let desc = FrameDecoder.describe(d.bytes)
            XCTAssertEqual(desc.udpPayload, p, "the held TX frame is the echo\n\(desc.text)")
        } else { XCTFail("no dump body") }
        let r = try t.request(.step(queue: 1, count: 1))
        XCTAssertEqual(r.status, .ok, r.message)
        XCTAssertEqual(sock.receive(timeout: 2), p, "step tx 1 releases the echo")
        XCTAssertEqual(try t.request(.step(queue: 1, count: 1)).status, .nothingPending)
        XCTAssertEqual(try t.request(.resume(queue: 1)).status, .ok)
        _ = try runEchoExchange(port: g.udpPort, count: 5, sizes: 1...100, seed: 11)
    }

    /// A console TX buffer holds a frame the driver wrote; its used length (what the device
    /// wrote) is 0, so the dump must cover the driver's own length, not 0 bytes.
    func testDumpOfAConsoleTXDescriptorShowsTheBytesTheDriverWrote() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        var dumped = false
        for _ in 0..<100 where !dumped {
            let m = try stats(t)
            guard let p = m.position(ofQueueNamed: "con0.tx") else { return XCTFail("no con0.tx queue") }
            let q = m.queues[p]
            for (id, d) in q.descriptors.enumerated() where d.state != .free && d.len > 0 {
                let r = try t.request(.dump(queue: q.info.queue, selector: .descriptor(UInt16(id))))
                guard r.status.isOK else { continue }   // reclaimed meanwhile
                guard case .dump(let dump) = r.body else { XCTFail("no dump body"); break }
                XCTAssertGreaterThan(dump.bufferLength, 0, "a \(d.len)-byte \(d.state.name) con0.tx descriptor")
                XCTAssertEqual(dump.bytes.count, min(Int(dump.bufferLength), WireProtocol.maxDumpBytes))
                // The bytes are a telemetry frame the kernel wrote.
                XCTAssertFalse(dump.bytes.allSatisfy { $0 == 0 }, "the driver's bytes, not zeroes")
                dumped = true
                break
            }
            if !dumped { usleep(20_000) }
        }
        XCTAssertTrue(dumped, "no con0.tx descriptor outstanding long enough to dump")
    }

    // MARK: Device truth

    /// The kernel's indices against QEMU's own view of the same rings (QMP), with the guest
    /// stopped while QEMU is asked and net0.rx paused so nothing moves.
    func testKernelIndicesAgreeWithTheDevice() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        _ = try runEchoExchange(port: g.udpPort, count: 10, sizes: 16...200, seed: 3, perTryTimeout: 1)
        XCTAssertEqual(try t.request(.pause(queue: 0)).status, .ok)
        let sock = try UDPSocket()
        for p in payloads(2, tag: "truth") { try sock.send(p, toPort: g.udpPort) }
        _ = try waitForModel(t, "2 pending") { self.status($0, 0).pendingUsed == 2 }
        let qmp = try g.qemu.qmpClient()
        let netPath = try virtioDevicePath(qmp, id: "net0")
        var compared = false
        for attempt in 0..<5 {
            let before = try stats(t)
            try qmp.execute("stop")
            var device: [UInt8: (status: [String: Any], element: [String: Any])] = [:]
            for q: UInt8 in [0, 1] {
                let s = try qmp.execute("x-query-virtio-queue-status", arguments: ["path": netPath, "queue": Int(q)]) as? [String: Any] ?? [:]
                // (The element query reads split rings' avail/used indices: split only.)
                let e = testRingFormat == .packed ? [:]
                    : try qmp.execute("x-query-virtio-queue-element", arguments: ["path": netPath, "queue": Int(q)]) as? [String: Any] ?? [:]
                device[q] = (s, e)
            }
            try qmp.execute("cont")
            let after = try stats(t)
            guard (0...1).allSatisfy({ status(before, UInt8($0)) == status(after, UInt8($0)) }) else {
                print("device truth: queues moved during attempt \(attempt); retrying")
                continue
            }
            if testRingFormat == .packed {
                comparePackedPositions(before, device.mapValues { $0.status })
                compared = true
                break
            }
            for q: UInt8 in [0, 1] {
                let k = status(before, q)
                let name = before.queueName(q)
                let (s, e) = device[q]!
                let usedIdx = s["used-idx"] as? Int
                let lastAvail = s["last-avail-idx"] as? Int
                let shadow = s["shadow-avail-idx"] as? Int
                let liveAvail = (e["avail"] as? [String: Any])?["idx"] as? Int
                let liveUsed = (e["used"] as? [String: Any])?["idx"] as? Int
                print("device truth \(name): kernel avail \(k.availIdx) used \(k.usedIdx) last_used \(k.lastUsedIdx) | QEMU last-avail \(lastAvail ?? -1) shadow-avail \(shadow ?? -1) used \(usedIdx ?? -1) inuse \(s["inuse"] ?? "?") live avail \(liveAvail ?? -1) live used \(liveUsed ?? -1)")
                XCTAssertEqual(s["vring-num"] as? Int, Int(before.queues[Int(q)].info.size), "\(name): queue size")
                XCTAssertEqual(liveAvail, Int(k.availIdx), "\(name): avail->idx in guest memory vs the kernel's avail_idx")
                XCTAssertEqual(liveUsed, Int(k.usedIdx), "\(name): used->idx in guest memory vs the kernel's used_idx")
                XCTAssertEqual(usedIdx, Int(k.usedIdx), "\(name): QEMU's used-idx vs the kernel's used_idx")
                XCTAssertEqual(s["inuse"] as? Int, 0, "\(name): nothing popped and not yet returned")
                XCTAssertEqual(lastAvail, usedIdx, "\(name): the device returned everything it took")
                // The shadow (QEMU's last read of avail->idx) can lag the guest, never lead it,
                // and never by more than the queue size.
                if let shadow, let lastAvail {
                    let lag = UInt16(truncatingIfNeeded: Int(k.availIdx) - shadow)
                    XCTAssertLessThanOrEqual(Int(lag), Int(before.queues[Int(q)].info.size), "\(name): shadow-avail-idx \(shadow) vs kernel \(k.availIdx)")
                    XCTAssertLessThanOrEqual(Int(UInt16(truncatingIfNeeded: shadow - lastAvail)), Int(before.queues[Int(q)].info.size))
                }
                // Buffers the device holds (avail - device's last avail) = descriptors the kernel marks "avail".
                if let lastAvail {
                    XCTAssertEqual(Int(UInt16(truncatingIfNeeded: Int(k.availIdx) - lastAvail)), before.queues[Int(q)].count(of: .avail),
                                   "\(name): buffers with the device")
                }
            }
            XCTAssertEqual(status(before, 0).pendingUsed, 2)
            XCTAssertEqual(Int(status(before, 0).usedIdx &- status(before, 0).lastUsedIdx), 2, "the device used 2 the paused driver has not consumed")
            // The next element the device will fill is a buffer the kernel has given it.
            if let descs = device[0]!.element["descs"] as? [[String: Any]], let first = descs.first,
               let addr = first["addr"] as? Int, let len = first["len"] as? Int {
                let table = before.queues[0].descriptors
                XCTAssertTrue(table.contains { $0.state == .avail && Int($0.addr) == addr && Int($0.len) == len },
                              "QEMU's next RX buffer (addr \(addr), len \(len)) is an avail descriptor in the kernel's table")
            } else {
                XCTFail("x-query-virtio-queue-element gave no descriptor: \(device[0]!.element)")
            }
            compared = true
            break
        }
        XCTAssertTrue(compared, "the queues never held still long enough to compare")
        XCTAssertEqual(try t.request(.resume(queue: 0)).status, .ok)
    }

    /// The packed form of the check above (virtio 1.2 §2.8): QEMU 7.2 reports a packed queue's
    /// used-idx and last-avail-idx as slot offsets without their wrap counters, so the kernel's
    /// positions (offset | wrap << 15) are compared by offset; the slots from the device position
    /// to the driver's are the buffers the kernel marks avail (one slot per buffer).
    func comparePackedPositions(_ before: TelemetryModel, _ device: [UInt8: [String: Any]]) {
        for q: UInt8 in [0, 1] {
            let k = status(before, q)
            let name = before.queueName(q)
            let s = device[q] ?? [:]
            let size = Int(before.queues[Int(q)].info.size)
            let usedIdx = s["used-idx"] as? Int ?? -1
            let lastAvail = s["last-avail-idx"] as? Int ?? -1
            print("device truth \(name) (packed): kernel driver \(k.availIdx & 0x7FFF)/w\(k.availIdx >> 15) device \(k.usedIdx & 0x7FFF)/w\(k.usedIdx >> 15) | QEMU last-avail \(lastAvail) used \(usedIdx) inuse \(s["inuse"] ?? "?")")
            XCTAssertEqual(s["vring-num"] as? Int, size, "\(name): queue size")
            XCTAssertEqual(usedIdx, Int(k.usedIdx & 0x7FFF), "\(name): QEMU's used-idx vs the kernel's device position")
            XCTAssertEqual(s["inuse"] as? Int, 0, "\(name): nothing popped and not yet returned")
            XCTAssertEqual(lastAvail, usedIdx, "\(name): the device returned everything it took")
            let given = ringDistance(from: k.usedIdx, to: k.availIdx, size: UInt16(size))
            XCTAssertEqual((lastAvail + given) % size, Int(k.availIdx & 0x7FFF), "\(name): driver position = last-avail-idx + slots given")
            XCTAssertEqual(given, before.queues[Int(q)].count(of: .avail), "\(name): buffers with the device")
            let view = DeviceQueueView(queue: Int(q), lastAvailIdx: UInt16(clamping: lastAvail), usedIdx: UInt16(clamping: usedIdx),
                                       inuse: s["inuse"] as? Int ?? -1, vringNum: s["vring-num"] as? Int ?? -1, shadowAvailIdx: 0)
            let driver = DriverQueueView(availIdx: k.availIdx, usedIdx: k.usedIdx, size: size, availDescriptors: nil, time: 0, format: .packed)
            XCTAssertEqual(compareQueue(driver: driver, device: view), .agree, name)
        }
        XCTAssertEqual(status(before, 0).pendingUsed, 2)
        XCTAssertEqual(ringDistance(from: status(before, 0).lastUsedIdx, to: status(before, 0).usedIdx), 2,
                       "the device used 2 the paused driver has not consumed")
    }

    // MARK: Bad input

    func testBadCommandsGetErrorRepliesAndChangeNothing() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        let before = try stats(t)
        XCTAssertEqual(try t.request(.pause(queue: 9)).status, .unknownQueue)
        XCTAssertEqual(try t.request(.dump(queue: 9, selector: .last)).status, .unknownQueue)
        XCTAssertEqual(try t.request(.dump(queue: 0, selector: .descriptor(999))).status, .descriptorOutOfRange)
        XCTAssertEqual(try t.request(.dump(queue: 0, selector: .descriptor(before.queues[0].info.size))).status, .descriptorOutOfRange)
        XCTAssertEqual(try t.request(.step(queue: 0, count: 1)).status, .badCommand, "step on a running queue")
        XCTAssertEqual(try t.request(.pause(queue: 3)).status, .unsupported, "the telemetry queue cannot be paused")
        XCTAssertEqual(try t.request(.setSnapshotRate(hz: 5000)).status, .badCommand)
        guard let free = before.queues[1].descriptors.firstIndex(where: { $0.state == .free }) else {
            return XCTFail("no free descriptor on net0.tx")
        }
        let r = try t.request(.dump(queue: 1, selector: .descriptor(UInt16(free))))
        XCTAssertEqual(r.status, .notOwned, r.message)
        XCTAssertEqual(try t.request(.dump(queue: 0, selector: .next)).status, .nothingPending)
        let after = try stats(t)
        for q: UInt8 in 0...3 { XCTAssertFalse(status(after, q).paused) }
        XCTAssertEqual(after.rateHz, 10, "rate unchanged")
        XCTAssertEqual(status(after, 0).pendingUsed, 0)
        _ = try runEchoExchange(port: g.udpPort, count: 20, sizes: 1...1472, seed: 99)
    }

    func testGarbageOnTheConsoleIsSurvived() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        var rng = SplitMix64(seed: 0xBAD)
        try t.sendRaw([UInt8].random(count: 10 * 1024, using: &rng))
        // A torn frame: the first half of a good command, no trailing delimiter.
        var enc = WireFrameEncoder(firstSeq: 1000)
        var good: [UInt8] = []
        try enc.encode(.command(.pause(queue: 0)), into: &good)
        try t.sendRaw(Array(good[0..<good.count / 2]))
        // A frame with a bad CRC: a stats command whose checksum is off by one bit.
        var body: [UInt8] = [WireProtocol.version, WireMessageType.command.rawValue, 0xE9, 0x03, 0, 0, 9]
        let crc = WireCRC32C.checksum(body) ^ 1
        for i in 0..<4 { body.append(UInt8(truncatingIfNeeded: crc >> (8 * i))) }
        var bad: [UInt8] = [0]
        WireCOBS.encode(body, appendingTo: &bad)
        bad.append(0)
        try t.sendRaw(bad)
        // Then a good command: answered.
        let m = try stats(t)
        XCTAssertFalse(status(m, 0).paused, "the torn pause must not have paused net0.rx")
        XCTAssertGreaterThan(status(m, 2).counters.drops, 0, "con0.rx counts the host frames that did not decode")
        XCTAssertTrue(g.qemu.process.isRunning)
        _ = try runEchoExchange(port: g.udpPort, count: 20, sizes: 1...1472, seed: 5)
        XCTAssertEqual(try t.request(.resetCounters).status, .ok)
    }

    /// The host keeps the console connected but stops reading for 10 s under UDP load: the
    /// echo must not stall, and the kernel drops (and counts) telemetry instead.
    func testHostThatStopsReadingDoesNotStallTheEcho() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        try warmUp(g.udpPort)
        // A higher rate fills QEMU's socket buffer within the window.
        XCTAssertEqual(try t.request(.setSnapshotRate(hz: 100)).status, .ok)
        let before = try stats(t)
        let sock = try UDPSocket()
        func echoLoop(seconds: Double, reading: Bool) throws -> (echoed: Int, lost: Int, rate: Double) {
            var echoed = 0, lost = 0, n = 0
            let start = monotonicSeconds()
            while monotonicSeconds() - start < seconds {
                var p = Array("load \(n) ".utf8); p += [UInt8](repeating: 0x61, count: 64 - p.count)
                n += 1
                try sock.send(p, toPort: g.udpPort)
                var got = false
                let deadline = monotonicSeconds() + 2
                while let r = sock.receive(timeout: deadline - monotonicSeconds()) {
                    if r == p { got = true; break }
                }
                if got { echoed += 1 } else { lost += 1 }
                if reading { _ = t.receive(timeout: 0) }
            }
            return (echoed, lost, Double(echoed) / (monotonicSeconds() - start))
        }
        let reading = try echoLoop(seconds: 3, reading: true)
        let stalled = try echoLoop(seconds: 10, reading: false)
        print("echo while reading telemetry: \(String(format: "%.0f", reading.rate))/s; while not reading: \(String(format: "%.0f", stalled.rate))/s (\(stalled.echoed) echoed, \(stalled.lost) lost)")
        XCTAssertEqual(reading.lost, 0)
        XCTAssertEqual(stalled.lost, 0, "every datagram echoed while the host did not read")
        XCTAssertGreaterThan(stalled.rate, 0.5 * reading.rate, "echo rate while the host does not read")
        // Read again: drain the backlog first (a command sent while QEMU's buffer is still full
        // would have its reply discarded), then ask for a fresh full snapshot.
        let statsBefore = t.decoder.statistics
        let drainEnd = monotonicSeconds() + 1
        while monotonicSeconds() < drainEnd { _ = t.receive(timeout: 0.05) }
        let m = try stats(t)
        let st = t.decoder.statistics
        print("after the stall: kernel droppedFrames \(before.droppedFrames) -> \(m.droppedFrames), con0.tx drops \(status(m, 3).counters.drops); host: \(st.framesMissed[0]) frames missed in \(st.sequenceGaps[0]) seq gaps, \(st.totalErrors) bad frames (\(st.bytesSkipped) bytes skipped), \(st.framesOK - statsBefore.framesOK) frames decoded on catching up")
        XCTAssertTrue(m.isComplete)
        XCTAssertGreaterThan(m.droppedFrames + st.framesMissed[0], 0, "the loss of telemetry is visible (kernel drop count or host-side seq gaps)")
        XCTAssertEqual(try t.request(.setSnapshotRate(hz: 10)).status, .ok)
    }

    // MARK: Reconnect

    func testReconnectResynchronisesMidStream() throws {
        guard let g = try bootWithTelemetry() else { return }
        let t = g.telemetry
        t.close()
        usleep(300_000)
        // A raw client that does not say hello sees only deltas: the model asks for a hello itself.
        let raw = try TelemetryConnection(path: g.qemu.run.consoleSocket, timeout: 5, sendHello: false)
        guard let m = raw.nextCompleteSnapshot(timeout: 5) else { return XCTFail("no complete model without an explicit hello") }
        XCTAssertEqual(m.queues.map(\.info.name), ["net0.rx", "net0.tx", "con0.rx", "con0.tx"])
        raw.close()
        try t.connect(timeout: 5)
        XCTAssertNotNil(t.nextCompleteSnapshot(timeout: 5))
    }
}
