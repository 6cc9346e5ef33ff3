import Foundation
import RingsideKit

/// The repository root, from this file's path (Tests/TestSupport/Processes.swift).
public let repositoryRoot: String = {
    var url = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { url.deleteLastPathComponent() }
    return url.path
}()

/// Where the tests look for the kernel: $RINGSIDE_KERNEL, else <repo>/kernel/build/ringside.elf.
public func kernelPathForTests() -> String {
    if let env = ProcessInfo.processInfo.environment["RINGSIDE_KERNEL"], !env.isEmpty { return env }
    return repositoryRoot + "/" + KernelLocator.relativePath
}

/// The `ringside` executable the tests run: $RINGSIDE_BIN, else the one built beside the test
/// bundle, else <repo>/.build/debug/ringside; nil when there is none.
public func ringsideBinary() -> String? {
    if let env = ProcessInfo.processInfo.environment["RINGSIDE_BIN"], !env.isEmpty { return env }
    var dir = (KernelLocator.executablePath() ?? "") as NSString
    // The XCTest runner is .build/<config>/RingsidePackageTests.xctest (a file on Linux).
    for _ in 0..<3 {
        dir = dir.deletingLastPathComponent as NSString
        let candidate = dir.appendingPathComponent("ringside")
        if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
    }
    let fallback = repositoryRoot + "/.build/debug/ringside"
    return FileManager.default.isExecutableFile(atPath: fallback) ? fallback : nil
}

/// Runs a command to completion (output to a file, never a pipe), with a time limit.
public func runCommand(_ argv: [String], timeout: Double = 30) throws -> (status: ExitStatus, output: String) {
    let out = NSTemporaryDirectory() + "ringside-test-\(getpid())-\(UInt32.random(in: 0...UInt32.max)).out"
    defer { unlink(out) }
    let child = try ChildProcess(argv: argv, outputFile: out)
    guard let status = child.wait(timeout: timeout) else {
        child.signal(SIGKILL)
        child.wait(timeout: nil)
        throw RingsideError("\(argv.joined(separator: " ")) did not finish within \(timeout) s; output: \(readTextFile(out))")
    }
    return (status, readTextFile(out))
}

extension Array where Element == UInt8 {
    public static func random<G: RandomNumberGenerator>(count: Int, using g: inout G) -> [UInt8] {
        (0..<count).map { _ in UInt8.random(in: 0...255, using: &g) }
    }
}

/// Bytes as "0a 1b …" for failure messages, at most `limit` of them.
public func hex(_ bytes: some Collection<UInt8>, limit: Int = 64) -> String {
    bytes.prefix(limit).map { String(format: "%02x", $0) }.joined(separator: " ") + (bytes.count > limit ? " …" : "")
}
