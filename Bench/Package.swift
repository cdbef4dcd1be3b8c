// swift-tools-version:6.0
// Benchmarks of the fast path against C references. Run with tools/bench-parse.
import PackageDescription

let package = Package(
    name: "upfd-bench",
    dependencies: [
        .package(name: "upfd", path: "../"),
    ],
    targets: [
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
    ]
)
