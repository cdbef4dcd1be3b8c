// swift-tools-version:6.0
// Coverage-guided fuzzing of the UPFPackets parser with libFuzzer. Build and run with tools/fuzz.
import PackageDescription

let package = Package(
    name: "upfd-fuzz",
    dependencies: [
        .package(name: "upfd", path: "../"),
    ],
    targets: [
        // One source, not main.swift: libFuzzer (-sanitize=fuzzer) provides main(), and the
        // target is compiled with -parse-as-library so Swift emits no main of its own.
        .executableTarget(
            name: "ParserFuzz",
            dependencies: [.product(name: "UPFPackets", package: "upfd")]
        ),
    ]
)
