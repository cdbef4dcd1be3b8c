import ArgumentParser
struct Decode: ParsableCommand {
    @Argument var file: String
    func run() throws {}
}
