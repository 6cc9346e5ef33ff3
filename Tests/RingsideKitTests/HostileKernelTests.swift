import Foundation
import RingsideTestSupport
import XCTest
import Wire
@testable import RingsideKit

/// `ringside ctl` and `ringside watch` against a kernel whose strings (queue names, kernel
/// version, reply messages) and dumped bytes carry terminal escape sequences: nothing the CLI
/// writes may contain a raw control character, and the escaped text must stay readable.
final class HostileKernelCLITests: XCTestCase {
    static let osc = "\u{1b}]0;owned\u{07}"            // set the window title
    static let csi = "\u{1b}[31m\u{9b}2J\u{7f}"         // colour, C1 CSI (clear screen), DEL
    static let hostileMessage = "done\u{1b}]2;title\u{07}\u{1b}[1;31mred\u{9b}0m\u{7f}\r\nringside: forged line\u{85}\u{202e}"

    /// Every output byte is printable UTF-8: no C0 control but \n and \t, no DEL, no C1 control.
    func assertTerminalSafe(_ bytes: [UInt8], _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        guard let text = String(validating: bytes, as: UTF8.self) else {
            return XCTFail("\(what): output is not valid UTF-8: \(hex(bytes, limit: 400))", file: file, line: line)
        }
        for s in text.unicodeScalars where (s.value < 0x20 && s != "\n" && s != "\t") || (0x7f...0x9f).contains(s.value) {
            return XCTFail("\(what): raw control U+\(String(s.value, radix: 16)) in output: \(text.debugDescription)", file: file, line: line)
        }
    }

    func testCtlAndWatchEscapeWhatAHostileKernelSends() throws {
        guard let bin = ringsideBinary() else { return XCTFail("ringside executable not found; build it with `swift build`") }
        let dir = NSTemporaryDirectory() + "ringside-hostile-\(getpid())"
        mkdir(dir, 0o700)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let queues = [WireQueueInfo(queue: 0, name: "net0.rx" + Self.osc, size: 4),
                      WireQueueInfo(queue: 1, name: "con0.tx" + Self.csi, size: 4)]
        let hello = WireHello(kernelVersion: "evil\u{1b}[2J\r\n\u{85}", mac: [2, 0, 0, 0, 0, 1], devices: [], queues: queues)
        // A UDP frame whose payload is an escape sequence, as a net queue's dump.
        let payload = Array(("\u{1b}]0;frame\u{07}" + Self.csi).utf8)
        let src: [UInt8] = [10, 0, 2, 2], dst: [UInt8] = [10, 0, 2, 15]
        let frame = [UInt8](repeating: 0, count: 12)
            + ethernet(dst: [2, 0, 0, 0, 0, 1], src: [2, 0, 0, 0, 0, 2], type: EtherType.ipv4,
                       payload: ipv4Header(src: src, dst: dst, proto: 17, payloadLength: 8 + payload.count)
                           + udp(src: src, dst: dst, srcPort: 7, dstPort: 7, payload: payload))
        let kernel = try FakeKernel(path: dir + "/console.sock", hello: hello) { command, seq in
            switch command {
            case .pause: return WireReply(commandSeq: seq, status: .ok)
            case .step: return WireReply(commandSeq: seq, status: .ok, message: Self.hostileMessage)
            case .dump(let q, _):
                return WireReply(commandSeq: seq, status: .ok, body: .dump(WireDump(queue: q, descriptor: 0, guestAddress: 0x1000,
                                                                                  bufferLength: UInt32(frame.count), bytes: frame)))
            case .setSnapshotRate: return WireReply(commandSeq: seq, status: WireReplyStatus(rawValue: 200), message: Self.hostileMessage)
            default: return WireReply(commandSeq: seq, status: .notOwned, message: Self.hostileMessage)
            }
        }
        defer { kernel.stop() }

        var all: [UInt8] = []
        func run(_ args: [String], expectSuccess: Bool) throws -> String {
            let out = dir + "/out-\(all.count)"
            let child = try ChildProcess(argv: [bin] + args, outputFile: out)   // stdout and stderr
            let status = child.wait(timeout: 20)
            if status == nil { child.signal(SIGKILL); child.wait(timeout: nil) }
            let bytes = Array(FileManager.default.contents(atPath: out) ?? Data())
            let text = String(decoding: bytes, as: UTF8.self)
            XCTAssertEqual(status == .exited(0), expectSuccess, "\(args): \(String(describing: status)) \(text.debugDescription)")
            assertTerminalSafe(bytes, args.joined(separator: " "))
            all += bytes
            return text
        }
        let sock = kernel.path
        let stats = try run(["ctl", sock, "stats"], expectSuccess: true)
        let object = try JSONSerialization.jsonObject(with: Data(stats.utf8)) as? [String: Any]
        let names = (object?["queues"] as? [[String: Any]])?.compactMap { $0["name"] as? String }
        XCTAssertEqual(names, queues.map(\.name), "JSON escapes the names and keeps them exact")

        let pause = try run(["ctl", sock, "pause", "0"], expectSuccess: true)
        XCTAssertEqual(pause, "net0.rx\\x1b]0;owned\\x07 paused\n")
        let step = try run(["ctl", sock, "step", "1", "3"], expectSuccess: true)
        XCTAssertEqual(step.split(separator: "\n").count, 1, "the message cannot forge a line: \(step)")
        XCTAssertTrue(step.contains("\\x1b]2;title\\x07\\x1b[1;31mred\\x9b0m\\x7f\\r\\nringside: forged line\\x85\\u202e"), step)
        let resume = try run(["ctl", sock, "resume", "1"], expectSuccess: false)
        XCTAssertTrue(resume.hasPrefix("ringside: done\\x1b]2;title") && resume.hasSuffix("(notOwned)\n"), resume)
        let rate = try run(["ctl", sock, "rate", "5"], expectSuccess: false)
        XCTAssertTrue(rate.contains("(error200)"), rate)
        let unknown = try run(["ctl", sock, "pause", "nope"], expectSuccess: false)
        XCTAssertTrue(unknown.contains("con0.tx\\x1b[31m\\x9b2J\\x7f"), unknown)
        let dump = try run(["ctl", sock, "dump", "0", "--desc", "0"], expectSuccess: true)
        XCTAssertTrue(dump.hasPrefix("net0.rx\\x1b]0;owned\\x07 descriptor 0"), dump)
        XCTAssertTrue(dump.contains("UDP"), dump)
        let pcap = try run(["ctl", sock, "dump", "0", "--desc", "0", "--pcap", dir + "/x.pcap"], expectSuccess: true)
        XCTAssertTrue(pcap.contains("(net0.rx\\x1b]0;owned\\x07 descriptor 0"), pcap)
        let watch = try run(["watch", sock, "--count", "1", "--timeout", "10"], expectSuccess: true)
        XCTAssertTrue(watch.contains("# evil\\x1b[2J\\r\\n\\x85 protocol"), watch)
        let watchJSON = try run(["watch", sock, "--json", "--count", "1", "--timeout", "10"], expectSuccess: true)
        XCTAssertTrue(watchJSON.contains("\"name\":\"con0.tx\\u001b[31m\\u009b2J\\u007f\""), watchJSON)
        XCTAssertGreaterThan(all.count, 1000)
    }
}

/// The one escaping function every CLI print path uses.
final class TerminalTextTests: XCTestCase {
    func testEscapesControlsLikeRepr() {
        XCTAssertEqual("a\u{1b}]0;t\u{07}b".escapingTerminalControls(), "a\\x1b]0;t\\x07b")
        XCTAssertEqual("\u{9b}2J\u{7f}\u{85}\u{0}".escapingTerminalControls(), "\\x9b2J\\x7f\\x85\\x00")
        XCTAssertEqual("x\r\ny\tz".escapingTerminalControls(), "x\\r\\ny\\tz")
        XCTAssertEqual("x\r\ny\tz".escapingTerminalControls(keepingLines: true), "x\\r\ny\tz")
        XCTAssertEqual("abc\u{202e}cba\u{2028}\u{2066}".escapingTerminalControls(), "abc\\u202ecba\\u2028\\u2066")
        // Ordinary text, non-ASCII included, and JSON pass through unchanged.
        for s in ["", "net0.rx", "UDP: 37575 → 7", "naïve ü 日本 🙂", #"{"name":"a\u001b\\"}"#] {
            XCTAssertEqual(s.escapingTerminalControls(), s)
        }
        // Every scalar below U+00A0 but the printable ASCII ones is escaped.
        let all = String(String.UnicodeScalarView((0..<0xA0).compactMap(Unicode.Scalar.init)))
        let escaped = all.escapingTerminalControls()
        XCTAssertTrue(escaped.unicodeScalars.allSatisfy { (0x20..<0x7F).contains($0.value) }, escaped)
        XCTAssertTrue(escaped.contains(" !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~\\x7f\\x80"), escaped)
    }

    func testStreamHoldsSplitSequencesAndReplacesInvalidBytes() {
        var s = TerminalSafeStream()
        let text = Array("é→🙂\u{9b}\n".utf8)
        var out: [UInt8] = []
        for b in text { out += s.escape([b]) }   // one byte at a time: every sequence split
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "é→🙂\\x9b\n")
        // A lone 0x9B (CSI to an 8-bit terminal) and ESC: neither passes raw.
        out = s.escape([0x41, 0x9B, 0x32, 0x4A, 0x1B, 0x5B, 0x6D, 0x0A])
        XCTAssertEqual(String(decoding: out, as: UTF8.self), "A\u{FFFD}2J\\x1b[m\n")
        XCTAssertFalse(out.contains(0x9B))
    }
}
