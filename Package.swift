// swift-tools-version:6.0
// upfd: a user-space 5G UPF fast path on DPDK. See docs/ARCHITECTURE.md for the layout.
import PackageDescription

/// Debian's libdpdk.pc trips SwiftPM's pkg-config parser, so the include paths are given by hand
/// (to the C target and, through -Xcc, to every Swift target that imports CDPDK).
let dpdkIncludes = ["/usr/include/dpdk", "/usr/include/x86_64-linux-gnu/dpdk"]
let dpdkCFlags = dpdkIncludes.map { "-I\($0)" } + ["-march=corei7", "-mno-avx512f", "-include", "rte_config.h"]
let dpdkSwiftFlags = dpdkIncludes.flatMap { ["-Xcc", "-I\($0)"] } + ["-Xcc", "-include", "-Xcc", "rte_config.h"]
let dpdkLibraries = ["rte_ethdev", "rte_mbuf", "rte_mempool", "rte_ring", "rte_net_ring", "rte_eal", "rte_net", "rte_kvargs", "numa"]

let package = Package(
    name: "upfd",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "upf-replay", targets: ["upf-replay"]),
        .executable(name: "upfd", targets: ["upfd"]),
        .executable(name: "upfctl", targets: ["upfctl"]),
        .library(name: "UPFPackets", targets: ["UPFPackets"]),
        .library(name: "UPFCapture", targets: ["UPFCapture"]),
        .library(name: "UPFDPDK", targets: ["UPFDPDK"]),
        .library(name: "UPFPolicy", targets: ["UPFPolicy"]),
        .library(name: "UPFDatapath", targets: ["UPFDatapath"]),
        .library(name: "UPFControl", targets: ["UPFControl"]),
        .library(name: "UPFService", targets: ["UPFService"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // The only code that includes rte_*.h. Per-packet helpers are static inline in the header.
        .target(
            name: "CDPDK",
            cSettings: [.unsafeFlags(dpdkCFlags)],
            linkerSettings: dpdkLibraries.map { .linkedLibrary($0) }
        ),
        // libpcap, for reading and writing captures (pcap and pcapng).
        .systemLibrary(name: "CPcap", providers: [.apt(["libpcap-dev"])]),
        // Header views, bounds-checked parsing, GTP-U builders, checksums. Standard library only.
        .target(name: "UPFPackets"),
        // The policy model (PFCP names), its validation with precise errors, and its compilation
        // into the numeric form the fast path walks.
        .target(name: "UPFPolicy", dependencies: ["UPFPackets", "Yams"]),
        // `__builtin_prefetch` for UPFDatapath's burst lookups (static inline; no DPDK).
        .target(name: "CPrefetch"),
        // sched_setaffinity for the control threads (`control.cpus`).
        .target(name: "CThreadAffinity"),
        // Per-worker fast-path state: session tables with RCU-published updates, the classifier.
        .target(name: "UPFDatapath", dependencies: ["UPFPackets", "UPFPolicy", "CPrefetch"]),
        // The control thread: the Unix socket, its protocol, persistence, events. Never touches a packet.
        .target(
            name: "UPFControl",
            dependencies: [
                "UPFPolicy", "UPFDatapath", "CThreadAffinity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Capture files in and out, through libpcap.
        .target(name: "UPFCapture", dependencies: ["CPcap", "UPFPackets"]),
        // DPDK-backed EAL, mempools, ports and lcores for Swift callers.
        .target(
            name: "UPFDPDK",
            dependencies: ["CDPDK", "UPFPackets", "UPFDatapath"],
            swiftSettings: [.unsafeFlags(dpdkSwiftFlags)]
        ),
        // The running service: EAL, ports with roles, workers, the control plane wired to them.
        // upfd and the replay harness run exactly this.
        .target(
            name: "UPFService",
            dependencies: [
                "UPFPackets", "UPFPolicy", "UPFDatapath", "UPFDPDK", "UPFControl", "UPFCapture",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: [.unsafeFlags(dpdkSwiftFlags)]
        ),
        .executableTarget(
            name: "upf-replay",
            dependencies: [
                "UPFPackets", "UPFCapture", "UPFDPDK", "UPFService", "UPFControl", "UPFDatapath", "UPFPolicy",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
            ],
            swiftSettings: [.unsafeFlags(dpdkSwiftFlags)]
        ),
        .executableTarget(
            name: "upfd",
            dependencies: [
                "UPFControl", "UPFPolicy", "UPFDatapath", "UPFService",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: [.unsafeFlags(dpdkSwiftFlags)]
        ),
        .executableTarget(
            name: "upfctl",
            dependencies: [
                "UPFPolicy",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        .testTarget(name: "UPFPacketsTests", dependencies: ["UPFPackets"]),
        .testTarget(name: "UPFPolicyTests", dependencies: ["UPFPolicy"]),
        .testTarget(name: "UPFDatapathTests", dependencies: ["UPFDatapath", "UPFPolicy", "UPFPackets"]),
        .testTarget(name: "UPFControlTests", dependencies: [
            "UPFControl", "UPFPolicy", "UPFDatapath",
            .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
        ]),
        .testTarget(name: "UPFCaptureTests", dependencies: ["UPFCapture", "UPFPackets"]),
        // The parts of UPFDPDK that need no EAL (the per-worker packet buffers).
        .testTarget(name: "UPFDPDKTests", dependencies: ["UPFDPDK", "UPFDatapath"],
                    swiftSettings: [.unsafeFlags(dpdkSwiftFlags)]),
        // Runs the built executables as subprocesses (EAL initialises once per process) and
        // checks them against tshark and scapy.
        .testTarget(name: "IntegrationTests", dependencies: ["UPFPackets", "UPFCapture"]),
    ]
)
