#if canImport(Glibc)
import Glibc
#endif

/// Writes a line to standard error (reports and summaries that must not mix with the data on
/// standard output).
func printToStandardError(_ text: String) {
    fflush(nil) // keep the order of standard output's lines and this one on a shared terminal
    var line = text
    if !line.hasSuffix("\n") { line += "\n" }
    line.withUTF8 { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(2, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}
