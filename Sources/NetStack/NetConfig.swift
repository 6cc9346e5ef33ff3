// The interface's addresses, and how the kernel command line sets them.

public struct NetConfig: Equatable, Sendable {
    public static let defaultIP = IPv4Address(10, 0, 2, 15)
    public static let defaultPrefixLength = 24
    public static let defaultGateway = IPv4Address(10, 0, 2, 2)

    public var mac: MACAddress
    public var ip: IPv4Address
    /// 0...32.
    public var prefixLength: Int
    /// Unspecified (0.0.0.0) means no route off the subnet.
    public var gateway: IPv4Address

    /// QEMU user-mode networking's defaults: 10.0.2.15/24, gateway 10.0.2.2.
    public init(
        mac: MACAddress, ip: IPv4Address = defaultIP, prefixLength: Int = defaultPrefixLength,
        gateway: IPv4Address = defaultGateway
    ) {
        self.mac = mac
        self.ip = ip
        self.prefixLength = Swift.min(Swift.max(prefixLength, 0), 32)
        self.gateway = gateway
    }

    public var subnetMask: UInt32 { IPv4Address.mask(prefixLength: prefixLength) }

    /// Whether `address` is on our link (same subnet): reached directly, not via the gateway.
    public func isOnLink(_ address: IPv4Address) -> Bool {
        (address.value ^ ip.value) & subnetMask == 0
    }

    /// The subnet-directed broadcast address, or nil for /31 and /32 (RFC 3021), which
    /// have none.
    public var directedBroadcast: IPv4Address? {
        prefixLength >= 31 ? nil : IPv4Address(ip.value | ~subnetMask)
    }

    /// "10.0.2.15/24 gw 10.0.2.2 mac 52:54:00:12:34:56".
    public var summary: String {
        var text: [UInt8] = []
        ip.appendDottedQuad(to: &text)
        text.append(UInt8(ascii: "/"))
        NetText.appendDecimal(UInt32(truncatingIfNeeded: prefixLength), to: &text)
        text.append(contentsOf: " gw ".utf8)
        gateway.appendDottedQuad(to: &text)
        return NetText.string(text) + " mac " + mac.description
    }

    /// Reads `ip=A.B.C.D[/N]` and `gw=A.B.C.D` from space-separated words anywhere in a
    /// kernel command line (which may end with NUL bytes); other words are ignored and the
    /// last of a repeated key wins. A value that does not parse, or is not a usable
    /// address, leaves that setting at its default and adds a message to `errors`.
    /// A gateway outside the subnet is kept (it is ARPed for directly, like Linux's
    /// "onlink") but reported.
    public static func parse(commandLine: [UInt8], mac: MACAddress) -> NetConfigParseResult {
        var config = NetConfig(mac: mac)
        var errors: [String] = []
        var ipWord: ArraySlice<UInt8>?
        var gatewayWord: ArraySlice<UInt8>?

        var end = 0
        while end < commandLine.count, commandLine[end] != 0 { end += 1 }
        var index = 0
        while index < end {
            while index < end, isSpace(commandLine[index]) { index += 1 }
            let start = index
            while index < end, !isSpace(commandLine[index]) { index += 1 }
            let word = commandLine[start..<index]
            if hasPrefix(word, "ip=") {
                ipWord = word.dropFirst(3)
            } else if hasPrefix(word, "gw=") {
                gatewayWord = word.dropFirst(3)
            }
        }

        if let value = ipWord {
            if let (address, prefix) = parseAddressAndPrefix(value),
               !address.isUnspecified, !address.isMulticast, !address.isReserved {
                config.ip = address
                config.prefixLength = prefix
            } else {
                errors.append("netcfg: bad ip=" + quoted(value) + " (want A.B.C.D/N, a unicast address, N 0-32); using "
                    + defaultIP.description + "/24")
            }
        }
        if let value = gatewayWord {
            if let address = IPv4Address(parsing: value),
               !address.isMulticast, !address.isReserved, address != config.ip {
                config.gateway = address
            } else {
                errors.append("netcfg: bad gw=" + quoted(value) + " (want A.B.C.D, a unicast address other than ours); using "
                    + defaultGateway.description)
            }
        }
        if !config.gateway.isUnspecified, !config.isOnLink(config.gateway) {
            errors.append("netcfg: gateway " + config.gateway.description + " is outside "
                + IPv4Address(config.ip.value & config.subnetMask).description + "/"
                + NetText.string(decimal(config.prefixLength)) + "; ARPing for it anyway")
        }
        return NetConfigParseResult(config: config, errors: errors)
    }

    private static func isSpace(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\t") || byte == UInt8(ascii: "\n")
            || byte == UInt8(ascii: "\r")
    }

    private static func hasPrefix(_ word: ArraySlice<UInt8>, _ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard word.count >= count else { return false }
        let start = prefix.utf8Start
        for offset in 0..<count where word[word.startIndex + offset] != start[offset] {
            return false
        }
        return true
    }

    /// "A.B.C.D" (prefix 24) or "A.B.C.D/N".
    private static func parseAddressAndPrefix(_ text: ArraySlice<UInt8>) -> (IPv4Address, Int)? {
        guard let slash = text.firstIndex(of: UInt8(ascii: "/")) else {
            guard let address = IPv4Address(parsing: text) else { return nil }
            return (address, defaultPrefixLength)
        }
        guard let address = IPv4Address(parsing: text[text.startIndex..<slash]),
              let prefix = NetText.parseDecimal(text[(slash + 1)...], maxDigits: 2), prefix <= 32
        else { return nil }
        return (address, Int(prefix))
    }

    /// The value for a message: at most 40 bytes, non-printable bytes as '?'.
    private static func quoted(_ value: ArraySlice<UInt8>) -> String {
        var text: [UInt8] = [UInt8(ascii: "\"")]
        for byte in value.prefix(40) {
            text.append(byte >= 0x20 && byte < 0x7F ? byte : UInt8(ascii: "?"))
        }
        if value.count > 40 { text.append(contentsOf: "...".utf8) }
        text.append(UInt8(ascii: "\""))
        return NetText.string(text)
    }

    private static func decimal(_ value: Int) -> [UInt8] {
        var text: [UInt8] = []
        NetText.appendDecimal(UInt32(truncatingIfNeeded: value), to: &text)
        return text
    }
}

/// A configuration and what was wrong with the command line, if anything.
public struct NetConfigParseResult {
    public var config: NetConfig
    /// One line each, ready for the console; empty when all was well.
    public var errors: [String]
}
