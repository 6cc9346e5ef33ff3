// libFuzzer harness for the Wire decoder. Built by scripts/fuzz-wire.sh (the sources of
// Sources/Wire and Sources/Virtio with this file, swiftc -sanitize=fuzzer,address)
// compiled into this one module, so no `import Wire`.
//
// The first input byte picks a mode:
//   even: the rest is a raw byte stream, fed to a WireFrameDecoder in chunks whose sizes come
//         from the input itself — exercises delimiting, COBS, CRC and resynchronisation;
//   odd:  the rest is a frame *body* without its CRC; the harness appends a valid CRC-32C and
//         COBS-frames it — random bytes almost never pass a CRC, so this is what reaches the
//         payload parsers.
// Invariants checked (a violation traps, which libFuzzer reports as a crash):
//   - decoding never traps and never yields more results than delimiters + 1;
//   - a decoded message re-encodes and decodes to the same message (one definition, both ways);
//   - after any input, a known-good frame still decodes (resynchronisation within one frame).

@_cdecl("LLVMFuzzerTestOneInput")
public func wireFuzzOneInput(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let input = UnsafeBufferPointer(start: data, count: size)
    guard let mode = input.first else { return 0 }
    let rest = UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(input)[1...])
    var decoder = WireFrameDecoder()
    var results: [WireDecodeResult] = []

    if mode & 1 == 0 {
        // Raw stream, chunked: chunk sizes cycle through the low bits of the mode byte.
        let chunk = Int(mode >> 1) + 1
        var i = 0
        while i < rest.count {
            let n = min(chunk + (i % 7), rest.count - i)
            decoder.feed(UnsafeRawBufferPointer(rebasing: rest[i..<(i + n)]))
            while let r = decoder.next() { results.append(r) }
            i += n
        }
    } else {
        var body = [UInt8](rest)
        let crc = WireCRC32C.checksum(body)
        for k in 0..<4 { body.append(UInt8(truncatingIfNeeded: crc >> (8 * UInt32(k)))) }
        var wire: [UInt8] = [0]
        WireCOBS.encode(body, appendingTo: &wire)
        wire.append(0)
        decoder.feed(wire)
        while let r = decoder.next() { results.append(r) }
    }

    // Bounded output: one result per delimited chunk at most (plus one oversize report).
    var zeros = 0
    for b in rest where b == 0 { zeros += 1 }
    if results.count > zeros + 2 { fatalError("more results than frames") }

    // Round trip every decoded message.
    for r in results {
        guard case let .message(message, seq) = r else { continue }
        var encoder = WireFrameEncoder(firstSeq: seq)
        var out: [UInt8] = []
        do {
            try encoder.encode(message, into: &out)
        } catch {
            fatalError("decoded message does not re-encode")
        }
        var again = WireFrameDecoder()
        again.feed(out)
        guard again.next() == .message(message, seq: seq), again.next() == nil else {
            fatalError("re-encoded message decodes differently")
        }
    }

    // Resynchronisation: a good frame after whatever came before must decode.
    let probe = WireMessage.event(WireEvent(uptimeNs: 1, kind: .kick(queue: 1)))
    var encoder = WireFrameEncoder(firstSeq: 7)
    var good: [UInt8] = []
    do { try encoder.encode(probe, into: &good) } catch { fatalError("probe") }
    decoder.feed(good)
    var last: WireDecodeResult? = nil
    while let r = decoder.next() { last = r }
    if last != .message(probe, seq: 7) { fatalError("no resync after input") }
    return 0
}
