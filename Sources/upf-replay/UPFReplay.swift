import ArgumentParser

/// The replay harness: decodes captures the way the data path sees them, and drives DPDK ports.
@main
struct UPFReplay: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upf-replay",
        abstract: "Replay captures through the upfd data path, decode captures as it sees them, check DPDK ports.",
        subcommands: [Decode.self, Run.self, PortCheck.self]
    )
}
