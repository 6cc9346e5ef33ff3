// swift-tools-version:6.0
import PackageDescription

// Ringside: a virtio ring monitor and the Embedded Swift unikernel it watches.
//
// `Virtio`, `NetStack`, `HTTP` and `Wire` hold the hardware-independent kernel logic. They compile here
// for the host (so `swift test` exercises them fast) and, unchanged, into the kernel in
// Embedded mode (see kernel/Makefile). Code in them must stay Embedded-clean: no Foundation,
// no existentials, typed throws only.
let package = Package(
    name: "Ringside",
    products: [
        .executable(name: "ringside", targets: ["ringside"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // Header-only C: memory barriers and ordered loads/stores for ring memory shared with a device.
        .systemLibrary(name: "RingAtomics", path: "Sources/RingAtomics"),
        // Virtio 1.x spec layouts and split/packed virtqueue bookkeeping (kernel + host); sources in
        // subfolders by layer: transport/pci, virtqueue/split, virtqueue/packed, device.
        // CHeap: the packed queue's bookkeeping allocation fails with an error, not a trap.
        .target(name: "Virtio", dependencies: ["RingAtomics", "CHeap"]),
        // Header-only C: allocation that returns nil instead of trapping (kernel heap or libc).
        .systemLibrary(name: "CHeap", path: "Sources/CHeap"),
        // Ethernet, ARP, IPv4, ICMP, UDP, TCP (kernel + host).
        .target(name: "NetStack", dependencies: ["CHeap"]),
        // HTTP/1.1 on NetStack's TCP: request parser, responses, server, Prometheus text (kernel + host).
        .target(name: "HTTP", dependencies: ["NetStack"]),
        // The telemetry wire format, defined once: encoded by the kernel, decoded by the monitor.
        // Host builds also use Virtio's feature and status names (for JSON); the kernel's build of
        // Wire leaves that part out.
        .target(name: "Wire", dependencies: ["Virtio"]),
        // The PVH start info (Xen's start_info.h) read in place, and the kernel heap's place chosen
        // from its memory map (kernel + host: allocation-free, it runs before the kernel's heap exists).
        .target(name: "PVH"),
        // Monitor core: QEMU launcher, run directory, QMP client.
        .target(name: "RingsideKit", dependencies: ["Wire", "Virtio"]),
        // ncurses (wide-character) as a system library; a thin typed Swift layer lives in RingsideTUI.
        .systemLibrary(name: "CNcurses", path: "Sources/CNcurses"),
        // The live view: a screen model rendered to a cell grid, blitted by ncurses.
        .target(name: "RingsideTUI", dependencies: ["RingsideKit", "Wire", "Virtio", "CNcurses"]),
        // The `ringside` command-line tool.
        .executableTarget(
            name: "ringside",
            dependencies: [
                "RingsideKit",
                "RingsideTUI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Helpers every test target shares: a seeded PRNG, loopback UDP sockets, free ports, running
        // commands, where the kernel and the `ringside` executable are, reference Ethernet/IPv4/UDP
        // frames and a pcapng reader written from the formats alone.
        .target(name: "RingsideTestSupport", dependencies: ["RingsideKit"], path: "Tests/TestSupport"),
        .testTarget(name: "VirtioTests", dependencies: ["Virtio", "RingsideTestSupport"]),
        // NetStack's test peer: reference frame builders sharing no code with the stack, and a
        // hand-driven TCP harness (NetStack's public API only), for NetStackTests and HTTPTests.
        .target(name: "NetStackTestSupport", dependencies: ["NetStack", "RingsideTestSupport"],
                path: "Tests/NetStackTestSupport"),
        .testTarget(name: "NetStackTests", dependencies: ["NetStack", "NetStackTestSupport"]),
        .testTarget(name: "HTTPTests", dependencies: ["HTTP", "NetStack", "NetStackTestSupport"]),
        .testTarget(name: "PVHTests", dependencies: ["PVH"]),
        .testTarget(name: "WireTests", dependencies: ["Wire", "RingsideTestSupport"]),
        // The screen model, panes and key handling on a cell grid, without a terminal.
        .testTarget(name: "RingsideTUITests", dependencies: ["RingsideTUI", "RingsideKit", "Wire", "Virtio", "RingsideTestSupport"]),
        // The monitor core on the host: launcher arguments, guest-ring reading, capture files, the
        // device-truth rule, and the `ringside` executable against fake kernels; no QEMU, no tmux.
        .testTarget(name: "RingsideKitTests", dependencies: ["RingsideKit", "Wire", "Virtio", "RingsideTestSupport"]),
        // Every test that starts QEMU or tmux: the real kernel (or a Linux guest) in real QEMU, talked
        // to through real sockets, and the real `ringside` TUI driven in tmux.
        .testTarget(name: "SystemTests", dependencies: ["RingsideKit", "Wire", "Virtio", "RingsideTestSupport"]),
    ]
)
