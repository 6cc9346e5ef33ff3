// ICMP (RFC 792). The stack answers echo requests; other messages are counted.
//
//   0: type | 1: code | 2-3: checksum over the whole ICMP message | 4..: rest
//   Echo (type 8) and echo reply (type 0): 4-5 identifier, 6-7 sequence, 8.. data.

public enum ICMPMessage {
    public static let headerLength = 8
    public static let typeEchoReply: UInt8 = 0
    public static let typeEchoRequest: UInt8 = 8
}
