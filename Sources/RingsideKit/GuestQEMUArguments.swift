// The QEMU arguments that let Ringside watch any guest: guest RAM in a shared file (so the host
// can map it read-only and read the rings where the device reads them) and a QMP socket.

/// Builds and merges the arguments (`ringside qemu-args --guest`, `ringside wrap`).
public enum QEMUGuestArguments {
    public static let backendID = "ringside-ram"

    /// `-object memory-backend-file,…,share=on -machine memory-backend=ID`.
    public static func memory(path: String, sizeMiB: Int, id: String = backendID) -> [String] {
        ["-object", "memory-backend-file,id=\(id),size=\(sizeMiB)M,mem-path=\(path),share=on",
         "-machine", "memory-backend=\(id)"]
    }

    /// The RAM size of a `-m` value in MiB: `512`, `512M`, `2G`, `size=1G,slots=2,maxmem=4G`.
    /// QEMU's default unit is MiB. Nil when it cannot be read.
    public static func parseMemorySize(_ value: String) -> Int? {
        var v = Substring(value)
        for part in value.split(separator: ",") where part.hasPrefix("size=") { v = part.dropFirst(5) }
        if value.contains("=") && !value.split(separator: ",").contains(where: { $0.hasPrefix("size=") }) { return nil }
        guard let last = v.last else { return nil }
        let units: [Character: Double] = ["k": 1.0 / 1024, "K": 1.0 / 1024, "m": 1, "M": 1, "g": 1024, "G": 1024, "t": 1_048_576, "T": 1_048_576]
        let (digits, unit) = last.isNumber ? (v, 1.0) : (v.dropLast(), units[last] ?? -1)
        guard unit > 0, let n = Double(digits), n > 0 else { return nil }
        let mib = n * unit
        guard mib == mib.rounded(), mib >= 1, mib < Double(1 << 30) else { return nil }
        return Int(mib)
    }

    /// The user's QEMU command line (argv[0] is QEMU) with the memory backend (size from `-m`,
    /// QEMU's 128 MiB when absent) and a QMP socket added; `memory-backend=` merged into an
    /// existing `-machine`/`-M`. Throws when the line already names a memory backend.
    public static func wrap(_ argv: [String], memoryPath: String, qmpPath: String) throws(RingsideError) -> (argv: [String], sizeMiB: Int) {
        guard !argv.isEmpty else { throw RingsideError("no QEMU command line after --") }
        var out = argv
        var sizeMiB = 128
        var machineIndex: Int?
        var i = 1
        while i < out.count {
            let a = out[i]
            let flag = a.hasPrefix("--") ? String(a.dropFirst()) : a
            func value() throws(RingsideError) -> String {
                guard i + 1 < out.count else { throw RingsideError("\(a) needs a value") }
                return out[i + 1]
            }
            switch flag {
            case "-m":
                let v = try value()
                guard let n = parseMemorySize(v) else { throw RingsideError("cannot read the RAM size in -m \(v)") }
                sizeMiB = n
                i += 2
            case "-machine", "-M":
                let v = try value()
                if v.split(separator: ",").contains(where: { $0.hasPrefix("memory-backend=") }) {
                    throw RingsideError("the command line already sets memory-backend (\(v)): give it share=on and use `ringside attach --qmp … --memory FILE`")
                }
                machineIndex = i + 1
                i += 2
            default:
                if flag.hasPrefix("-m="), let n = parseMemorySize(String(flag.dropFirst(3))) { sizeMiB = n }
                i += 1
            }
        }
        let object = ["-object", "memory-backend-file,id=\(backendID),size=\(sizeMiB)M,mem-path=\(memoryPath),share=on"]
        if let machineIndex {
            out[machineIndex] += ",memory-backend=\(backendID)"
            out += object
        } else {
            out += object + ["-machine", "memory-backend=\(backendID)"]
        }
        out += QEMUConfiguration.qmpArguments(socket: qmpPath)
        return (out, sizeMiB)
    }
}
