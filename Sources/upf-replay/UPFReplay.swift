import ArgumentParser

/// The replay harness: decodes captures the way the data path sees them, and drives DPDK ports.
@main
struct UPFReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upf-replay",
        abstract: "Decode captures as the upfd data path sees them, and drive DPDK ports with them.",
        subcommands: [Decode.self, PortCheck.self]
    )
}
