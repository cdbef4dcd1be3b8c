import Testing
@testable import UPFControl

@Suite struct JSONTests {
    @Test func parsesValuesAndKeepsKeyOrder() throws {
        let value = try JSONValue.parse(#" {"b":1,"a":[true,false,null,"x\u00e9\n"],"c":{"d":-0.5e3}} "#)
        #expect(value.serialized == #"{"b":1,"a":[true,false,null,"xé\n"],"c":{"d":-0.5e3}}"#)
        #expect(value["b"] == .number("1"))
    }

    @Test func keepsLargeIntegersExact() throws {
        let value = try JSONValue.parse(#"{"seid":18446744073709551615}"#)
        #expect(value["seid"] == .number("18446744073709551615"))
        #expect(ControlProtocol.integer(value["seid"]!, as: UInt64.self) == UInt64.max)
    }

    @Test(arguments: [
        "", "   ", "{", "{\"a\":}", "[1,]", "{\"a\":1,}", "01", "1.", "-", "tru", "\"abc", "\"a\u{01}\"",
        "{\"a\":1}x", "{'a':1}", "\"\\x\"", "\"\\ud800\"", "\"\\udc00\"", "NaN",
    ])
    func rejectsInvalidJSON(_ text: String) {
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(text) }
    }

    /// The word-at-a-time scan of a string's plain bytes stops where a byte-at-a-time one does,
    /// for the bytes that end a run, their neighbours and non-ASCII, at every alignment.
    @Test func plainRunScanMatchesBytewiseScan() {
        let interesting: [UInt8] = [0x00, 0x01, 0x1F, 0x20, 0x21, 0x22, 0x23, 0x5B, 0x5C, 0x5D, 0x61, 0x7F, 0x80, 0xA2, 0xDC, 0xFF]
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        func next() -> UInt64 {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            return state
        }
        for _ in 0..<4000 {
            let count = Int(next() % 40)
            // Mostly plain bytes, so that runs are long enough to span several words.
            let bytes = (0..<count).map { _ in next() % 6 == 0 ? interesting[Int(next() % UInt64(interesting.count))] : 0x61 }
            bytes.withUnsafeBufferPointer { buffer in
                for start in 0...count {
                    var expected = start
                    while expected < count, buffer[expected] != 0x22, buffer[expected] != 0x5C, buffer[expected] >= 0x20 {
                        expected += 1
                    }
                    let stop = JSONDocument.plainPrefix(buffer, from: start)
                    // Either the same stop, or a tail shorter than a word left to the byte loop
                    // with nothing to stop at before it.
                    #expect(stop == expected || (stop < expected && count - stop < 8), "bytes \(bytes) from \(start)")
                    #expect(stop <= expected)
                }
            }
        }
    }

    /// Denser documents than the node buffer's first guess (a value per 6 bytes) make it grow
    /// while nodes of open containers are still to be closed: `[0,0,…]` is a value per 2 bytes,
    /// `[[[…]]]` one per byte, and objects of one-letter keys one per 3 bytes.
    @Test func indexesDocumentsDenserThanTheFirstGuess() throws {
        let count = 5000
        let zeros = try JSONValue.parse("[" + Array(repeating: "0", count: count).joined(separator: ",") + "]")
        #expect(zeros == .array(Array(repeating: .number("0"), count: count)))
        let nested = try JSONValue.parse(String(repeating: "[", count: 60) + "[]" + String(repeating: "]", count: 60))
        var depth = 0
        var value = nested
        while case .array(let items) = value, let first = items.first { depth += 1; value = first }
        #expect(depth == 60 && value == .array([]))
        let keys = (0..<count).map { #"{"a":\#($0 % 10),"b":[]}"# }.joined(separator: ",")
        let objects = try JSONValue.parse("[" + keys + "]")
        guard case .array(let items) = objects else { Issue.record("not an array"); return }
        #expect(items.count == count)
        #expect(items.last == .object([("a", .number("9")), ("b", .array([]))]))
    }

    @Test func decodesSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""\ud83d\ude00""#) == .string("😀"))
    }

    @Test func rejectsDuplicateKeys() {
        #expect(throws: JSONSyntaxError(kind: .duplicateKey("a"), offset: 8)) { try JSONValue.parse(#"{"a":1, "a":2}"#) }
    }

    @Test func boundsNestingDepth() {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONSyntaxError.self) { try JSONValue.parse(deep) }
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect((try? JSONValue.parse(ok)) != nil)
    }

    @Test(arguments: [
        [0xFF] as [UInt8], [0xC0, 0x80], [0xE0, 0x80, 0x80], [0xED, 0xA0, 0x80], [0xF4, 0x90, 0x80, 0x80],
        [0xF0, 0x9F, 0x98], [0x80], [0xC3],
    ])
    func rejectsInvalidUTF8(_ bytes: [UInt8]) {
        let line = Array(#"{"a":""#.utf8) + bytes + Array(#""}"#.utf8)
        #expect(throws: JSONSyntaxError(kind: .invalidUTF8, offset: 6)) { try JSONValue.parse(line) }
    }

    @Test func acceptsValidMultibyteUTF8() throws {
        #expect(try JSONValue.parse(Array(#"{"a":"é€😀"}"#.utf8))["a"] == .string("é€😀"))
    }

    @Test func escapesControlCharactersWhenWriting() throws {
        let text = JSONValue.string("a\"b\\c\u{01}\u{2028}").serialized
        #expect(text == #""a\"b\\c\u0001\u2028""#)
        #expect(try JSONValue.parse(text) == .string("a\"b\\c\u{01}\u{2028}"))
    }
}

@Suite struct LineFramerTests {
    @Test func splitsLinesAcrossReads() {
        var framer = LineFramer(maxLineBytes: 100)
        #expect(framer.append(Array("ab".utf8)) == [])
        #expect(framer.append(Array("c\nde\r\nf".utf8)) == [.line(Array("abc".utf8)), .line(Array("de".utf8))])
        #expect(framer.bufferedCount == 1)
        #expect(framer.append(Array("\n\n".utf8)) == [.line(Array("f".utf8)), .line([])])
    }

    @Test func refusesALongLineBeforeItsNewline() {
        var framer = LineFramer(maxLineBytes: 10)
        #expect(framer.append([UInt8](repeating: 0x41, count: 10)) == [])
        #expect(framer.append([0x41]) == [.tooLong])
        // Nothing more once the stream is out of step, and nothing is held.
        #expect(framer.append(Array("\n{}\n".utf8)) == [])
        #expect(framer.bufferedCount == 0)
    }

    @Test func linesBeforeALongOneAreKept() {
        var framer = LineFramer(maxLineBytes: 4)
        #expect(framer.append(Array("ok\n123456\n".utf8)) == [.line(Array("ok".utf8)), .tooLong])
    }

    @Test func exactlyTheLimitIsAccepted() {
        var framer = LineFramer(maxLineBytes: 4)
        #expect(framer.append(Array("1234\n".utf8)) == [.line(Array("1234".utf8))])
        #expect(framer.append(Array("12345\n".utf8)) == [.tooLong])
    }

    @Test func finishReturnsAnUnterminatedLastLine() {
        var framer = LineFramer(maxLineBytes: 100)
        _ = framer.append(Array("{\"op\":\"health\"}".utf8))
        #expect(framer.finish() == .line(Array("{\"op\":\"health\"}".utf8)))
        #expect(framer.finish() == nil)
    }
}
