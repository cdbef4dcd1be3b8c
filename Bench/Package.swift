// swift-tools-version:6.1
// Benchmarks of the fast path against C references. Run with tools/bench-parse and tools/bench-classify.
import PackageDescription

let package = Package(
    name: "upfd-bench",
    dependencies: [
        .package(name: "upfd", path: "../"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/ordo-one/benchmark", exact: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // Micro benchmarks (ordo-one/benchmark) with malloc-count thresholds of 0: tools/bench --micro.
        .executableTarget(
            name: "UPFMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "UPFPackets", package: "upfd"),
                .product(name: "UPFPolicy", package: "upfd"),
                .product(name: "UPFDatapath", package: "upfd"),
            ],
            path: "Benchmarks/UPFMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
        // A C parser doing the same work as UPFPackets' PacketParser, for comparison.
        .target(name: "CReferenceParser"),
        // Times both parsers over the same in-memory frame mix; `--only swift|c` for callgrind.
        .executableTarget(
            name: "parse-bench",
            dependencies: [
                "CReferenceParser",
                .product(name: "UPFPackets", package: "upfd"),
            ]
        ),
        // Session lookup + rule match at 1k/100k/1M sessions, update rate through the socket,
        // request-to-fast-path latency. Run with tools/bench-classify.
        .executableTarget(
            name: "classify-bench",
            dependencies: [
                .product(name: "UPFPackets", package: "upfd"),
                .product(name: "UPFPolicy", package: "upfd"),
                .product(name: "UPFDatapath", package: "upfd"),
                .product(name: "UPFControl", package: "upfd"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
