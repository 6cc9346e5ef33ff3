import Foundation

/// Finds the kernel ELF when no `--kernel` is given.
public enum KernelLocator {
    /// Where the kernel build puts the image, relative to the repository root.
    public static let relativePath = "kernel/build/ringside.elf"

    /// Candidates, in order: `<cwd>/kernel/build/ringside.elf` and the same under each parent of the
    /// current directory, then under each parent of the running executable's directory (so
    /// `.build/debug/ringside` finds the repository's kernel from anywhere).
    public static func candidates(currentDirectory: String = FileManager.default.currentDirectoryPath,
                                  executablePath: String? = executablePath()) -> [String] {
        var out: [String] = []
        for start in [currentDirectory, executablePath.map { ($0 as NSString).deletingLastPathComponent }].compactMap({ $0 }) {
            var dir = (start as NSString).standardizingPath
            while true {
                out.append(dir == "/" ? "/" + relativePath : dir + "/" + relativePath)
                let parent = (dir as NSString).deletingLastPathComponent
                if parent == dir || parent.isEmpty { break }
                dir = parent
            }
        }
        var seen = Set<String>()
        return out.filter { seen.insert($0).inserted }
    }

    /// The first candidate that exists, or nil.
    public static func find(currentDirectory: String = FileManager.default.currentDirectoryPath,
                            executablePath: String? = executablePath()) -> String? {
        candidates(currentDirectory: currentDirectory, executablePath: executablePath)
            .first { FileManager.default.isReadableFile(atPath: $0) }
    }

    /// The running executable (via /proc/self/exe), or nil.
    public static func executablePath() -> String? {
        var buf = [CChar](repeating: 0, count: 4096)
        let n = readlink("/proc/self/exe", &buf, buf.count - 1)
        if n > 0 { return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self) }
        return CommandLine.arguments.first.map { URL(fileURLWithPath: $0).standardizedFileURL.path }
    }
}
