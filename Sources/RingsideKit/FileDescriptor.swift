import Glibc

// The C conventions of file descriptors and errno as types, in the style of swift-system's
// `FileDescriptor` and `Errno`: thin wrappers with nothing hidden in them. A FileDescriptor is the
// Int32 the kernel gave us, closed only when told to; an Errno is the number a call left in `errno`,
// described by the C library's message for it (what `strerror` says, and what users read).

/// A C `errno` value.
public struct Errno: Error, RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// This thread's `errno` now: read it right after the call that failed, before any other call.
    public static var current: Errno { Errno(rawValue: errno) }

    /// The C library's message for the value (`strerror`), e.g. "No such file or directory".
    public var description: String { String(cString: strerror(rawValue)) }

    /// EINTR: a signal interrupted the call before it did anything; call again.
    public static let interrupted = Errno(rawValue: EINTR)
    /// EAGAIN: a non-blocking call had nothing to do now.
    public static let resourceTemporarilyUnavailable = Errno(rawValue: EAGAIN)
    /// EWOULDBLOCK: the same as EAGAIN on Linux, named apart by POSIX.
    public static let wouldBlock = Errno(rawValue: EWOULDBLOCK)
    /// ECHILD: no child process to wait for.
    public static let noChildProcess = Errno(rawValue: ECHILD)
    /// EEXIST: the file is already there.
    public static let fileExists = Errno(rawValue: EEXIST)
    /// ENOENT: no such file or directory.
    public static let noSuchFileOrDirectory = Errno(rawValue: ENOENT)

    /// EAGAIN or EWOULDBLOCK: a non-blocking descriptor is not ready.
    public var isWouldBlock: Bool { self == .resourceTemporarilyUnavailable || self == .wouldBlock }
}

/// An open file descriptor (a file, a socket, a pipe end).
public struct FileDescriptor: RawRepresentable, Hashable, Sendable {
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    /// Closes the descriptor. Its error is not reported: on Linux the descriptor is released even
    /// when close fails, and nothing here could be retried.
    public func close() {
        _ = Glibc.close(rawValue)
    }

    /// Puts the descriptor in non-blocking mode.
    public func setNonBlocking() {
        let flags = fcntl(rawValue, F_GETFL)
        _ = fcntl(rawValue, F_SETFL, flags | O_NONBLOCK)
    }

    /// Marks the descriptor close-on-exec (children such as QEMU must not inherit our sockets).
    public func setCloseOnExec() {
        let flags = fcntl(rawValue, F_GETFD)
        _ = fcntl(rawValue, F_SETFD, flags | FD_CLOEXEC)
    }
}
