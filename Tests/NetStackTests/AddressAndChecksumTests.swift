import XCTest
@testable import NetStack
import NetStackTestSupport

final class AddressAndChecksumTests: XCTestCase {
    func testRfc1071Example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2, checksum 220d.
        let bytes: [UInt8] = [0x00, 0x01, 0xF2, 0x03, 0xF4, 0xF5, 0xF6, 0xF7]
        XCTAssertEqual(InternetChecksum.compute(bytes), 0x220D)
        XCTAssertEqual(Ref.checksum(bytes), 0x220D)
    }

    func testKnownIPv4HeaderChecksum() {
        // A real UDP packet's header 192.168.0.1 → 192.168.0.199, checksum b861.
        var header: [UInt8] = [0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,
                               0xC0, 0xA8, 0x00, 0x01, 0xC0, 0xA8, 0x00, 0xC7]
        XCTAssertEqual(InternetChecksum.compute(header), 0xB861)
        header[10] = 0xB8
        header[11] = 0x61
        XCTAssertEqual(InternetChecksum.compute(header), 0)
    }

    func testIncrementalMatchesReferenceForOddPieces() {
        var generator = SplitMix64(seed: 1071)
        for _ in 0..<500 {
            let length = Int.random(in: 0..<300, using: &generator)
            let data = (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) }
            var checksum = InternetChecksum()
            var offset = 0
            while offset < length {
                let piece = min(Int.random(in: 1...9, using: &generator), length - offset)
                checksum.add(Array(data[offset..<(offset + piece)]))
                offset += piece
            }
            XCTAssertEqual(checksum.value, Ref.checksum(data))
            XCTAssertEqual(InternetChecksum.compute(data), Ref.checksum(data))
        }
    }

    /// Sums that carry out of 64 bits (eight bytes at a time, end-around carry): all-0xFF and
    /// mostly-0xFF frames of every length up to a full one, whole and from an odd start.
    func testCarriesOutOfSixtyFourBitsMatchReference() {
        var generator = SplitMix64(seed: 0xFFFF)
        for length in 0...1514 {
            var data = [UInt8](repeating: 0xFF, count: length)
            if length % 3 == 1 { for i in 0..<length where i % 7 == 0 { data[i] = UInt8.random(in: 0...255, using: &generator) } }
            XCTAssertEqual(InternetChecksum.compute(data), Ref.checksum(data), "length \(length)")
            var split = InternetChecksum()
            split.add(Array(data.prefix(1)))
            split.add(Array(data.dropFirst(1)))
            XCTAssertEqual(split.value, Ref.checksum(data), "length \(length), split after 1")
        }
    }

    func testWordAfterOddByteMatchesBytes() {
        var a = InternetChecksum()
        a.add([0x12])
        a.add(UInt16(0x3456))
        a.add([0x78])
        XCTAssertEqual(a.value, Ref.checksum([0x12, 0x34, 0x56, 0x78]))
    }

    func testPseudoHeaderMatchesReference() {
        let segment: [UInt8] = [1, 2, 3, 4, 5, 6, 7, 8, 9]
        var checksum = InternetChecksum.pseudoHeader(source: peerIP, destination: ourIP, protocolNumber: 17, length: 9)
        checksum.add(segment)
        XCTAssertEqual(checksum.value, Ref.checksum(Ref.pseudoHeader(peerIP, ourIP, 17, 9) + segment))
    }

    func testMacFormatting() {
        XCTAssertEqual(ourMAC.description, "52:54:00:12:34:56")
        XCTAssertEqual(MACAddress.broadcast.description, "ff:ff:ff:ff:ff:ff")
        XCTAssertTrue(MACAddress.broadcast.isBroadcast && MACAddress.broadcast.isMulticast)
        XCTAssertTrue(!ourMAC.isMulticast)
        XCTAssertEqual(MACAddress(bytes: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]), ourMAC)
        XCTAssertEqual(ourMAC.bytes, [0x52, 0x54, 0x00, 0x12, 0x34, 0x56])
        XCTAssertNil(MACAddress(bytes: [1, 2, 3]))
    }

    func testIpv4FormattingAndParsing() {
        XCTAssertEqual(ourIP.description, "10.0.2.15")
        XCTAssertEqual(IPv4Address(255, 255, 255, 255).description, "255.255.255.255")
        XCTAssertEqual(IPv4Address(0).description, "0.0.0.0")
        XCTAssertEqual(IPv4Address(parsing: Array("192.168.100.254".utf8)), IPv4Address(192, 168, 100, 254))
        XCTAssertEqual(IPv4Address(parsing: Array("0.0.0.0".utf8)), .unspecified)
        for bad in ["", "1.2.3", "1.2.3.4.5", "256.1.1.1", "1..2.3", "1.2.3.", ".1.2.3", "a.b.c.d", "1.2.3.4 ",
                    "1234.1.1.1", "-1.2.3.4", "1.2.3.4/24"] {
            XCTAssertNil(IPv4Address(parsing: Array(bad.utf8)), "\(bad)")
        }
        XCTAssertEqual(IPv4Address.mask(prefixLength: 24), 0xFFFF_FF00)
        XCTAssertEqual(IPv4Address.mask(prefixLength: 0), 0)
        XCTAssertEqual(IPv4Address.mask(prefixLength: 32), 0xFFFF_FFFF)
        XCTAssertTrue(IPv4Address(224, 0, 0, 1).isMulticast)
    }
}
