import Foundation
import XCTest
@testable import RingsideTUI
import RingsideKit

/// Runs /usr/bin/hexdump -C on `bytes` (through files: no pipes to hang on).
func realHexdump(_ bytes: [UInt8], extra: [String] = []) throws -> [String] {
    let dir = NSTemporaryDirectory()
    let input = dir + "ringside-hex-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).bin"
    let output = input + ".txt"
    defer { unlink(input); unlink(output) }
    FileManager.default.createFile(atPath: input, contents: Data(bytes))
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/hexdump")
    p.arguments = ["-C"] + extra + [input]
    FileManager.default.createFile(atPath: output, contents: nil)
    p.standardOutput = FileHandle(forWritingAtPath: output)
    try p.run()
    p.waitUntilExit()
    let text = try String(contentsOfFile: output, encoding: .utf8)
    return text.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
}

final class HexdumpTests: XCTestCase {
    override func setUpWithError() throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/hexdump") else {
            XCTFail("/usr/bin/hexdump is missing (apt-get install bsdextrautils)")
            throw XCTSkip("no hexdump")
        }
    }

    func testMatchesHexdumpOnFrames() throws {
        var rng = SystemRandomNumberGenerator()
        let lengths = [1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 60, 64, 70, 98, 1514]
        for n in lengths {
            let bytes = (0..<n).map { _ in UInt8.random(in: 0...255, using: &rng) }
            XCTAssertEqual(hexDumpCLines(bytes), try realHexdump(bytes), "length \(n)")
        }
        let frame = sampleFrame(payload: Array("ringside payload 0123456789".utf8))
        XCTAssertEqual(hexDumpCLines(frame), try realHexdump(frame))
    }

    func testSqueezesRepeatedLinesLikeHexdump() throws {
        let bytes = [UInt8](repeating: 0, count: 100) + [1, 2, 3] + [UInt8](repeating: 0x41, count: 48)
        XCTAssertEqual(hexDumpCLines(bytes), try realHexdump(bytes))
        XCTAssertEqual(hexDumpCLines(bytes, squeeze: false), try realHexdump(bytes, extra: ["-v"]))
    }

    func testDecodedUDPFrame() {
        let lines = FrameDecoder.describe(sampleFrame(payload: [1, 2, 3, 4]), virtioHeaderBytes: 12).summaryLines
        XCTAssertEqual(lines.count, 4)
        XCTAssertTrue(lines[1].hasPrefix("Ethernet: 52:55:0a:00:02:02 → 52:54:00:12:34:56"), lines[1])
        XCTAssertTrue(lines[2].hasPrefix("IPv4: 10.0.2.2 → 10.0.2.15 len 32"), lines[2])
        XCTAssertTrue(lines[3].hasPrefix("UDP: 37575 → 7 len 12"), lines[3])
        // Short buffers never trap.
        for n in 0..<60 { _ = FrameDecoder.describe(Array(sampleFrame(payload: [1, 2]).prefix(n)), virtioHeaderBytes: 12).summaryLines }
    }
}
