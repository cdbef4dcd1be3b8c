import Synchronization
import UPFPackets
import UPFPolicy
@testable import UPFDatapath
#if canImport(Glibc)
import Glibc
#endif

// MARK: Building sessions

func ip(_ text: String) -> IPAddress { IPAddress(text)! }

/// A flow as the parser would report it.
func flow(_ source: String, _ destination: String, proto: UInt8 = 6, sport: UInt16 = 40000, dport: UInt16 = 443,
          tos: UInt8 = 0, fragment: Bool = false) -> InnerFlow {
    var f = InnerFlow()
    f.source = ip(source)
    f.destination = ip(destination)
    f.version = f.source.isIPv4 ? 4 : 6
    f.proto = proto
    f.trafficClass = tos
    f.hasPorts = (proto == 6 || proto == 17 || proto == 132) && !fragment
    f.isFragment = fragment
    if f.hasPorts {
        f.sourcePort = sport
        f.destinationPort = dport
    }
    return f
}

/// A compiled session without the policy layer (fast, for the concurrency test).
func compiledSession(seid: UInt64, teid: UInt32, ueIPv4: UInt32? = nil, ueIPv6: IPAddress? = nil,
                     gnbTEID: UInt32? = nil, rules: [CompiledRule] = [], prefixes: [CompiledPrefix] = [],
                     ports: [CompiledPortRange] = []) -> CompiledSession {
    CompiledSession(seid: seid, n3: CompiledFTEID(teid: teid, address: ip("192.0.2.1")), ueIPv4: ueIPv4,
                    ueIPv6: ueIPv6, ueIPv6PrefixLength: 64,
                    gnb: gnbTEID.map { CompiledFTEID(teid: $0, address: ip("192.0.2.100")) },
                    rules: rules, prefixes: prefixes, ports: ports)
}

/// Deterministic xorshift64*.
struct TestRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed == 0 ? 0x9E37_79B9_7F4A_7C15 : seed }
    mutating func next() -> UInt64 {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        return state &* 2_685_821_657_736_338_717
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

// MARK: Threads

/// A real OS thread (the worker side of the tests must not run on the cooperative pool).
final class TestThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: @Sendable () -> Void

    init(_ body: @escaping @Sendable () -> Void) {
        self.body = body
        let context = Unmanaged.passRetained(self).toOpaque()
        let rc = pthread_create(&thread, nil, { raw in
            let me = Unmanaged<TestThread>.fromOpaque(raw!).takeRetainedValue()
            me.body()
            return nil
        }, context)
        precondition(rc == 0, "pthread_create failed")
    }

    func join() {
        pthread_join(thread, nil)
    }
}

// MARK: Counting mallocs on one thread

/// Counts the `malloc`s made on one thread through the sanitizers' allocator hooks
/// (`__sanitizer_install_malloc_and_free_hooks`, present in the ASan and TSan runtimes): every
/// Swift heap object (class instance, Array/Dictionary/String storage, box, closure context)
/// comes from malloc. Without a sanitizer the hooks do not exist and `available` is false.
/// (Replacing the Swift runtime's `_swift_allocObject` hook is no option: once any runtime hook
/// is set, this runtime routes `swift_retain` through an adapter that crashes.)
enum MallocCounter {
    typealias Hook = @convention(c) (UnsafeRawPointer?, Int) -> Void
    typealias FreeHook = @convention(c) (UnsafeRawPointer?) -> Void
    typealias Install = @convention(c) (Hook?, FreeHook?) -> Int32

    static let watched = Atomic<UInt>(0)
    static let allocations = Atomic<Int>(0)
    static let available: Bool = install()

    private static func install() -> Bool {
        guard let symbol = dlsym(nil, "__sanitizer_install_malloc_and_free_hooks")
                ?? ownSymbol("__sanitizer_install_malloc_and_free_hooks") else { return false }
        let install = unsafeBitCast(symbol, to: Install.self)
        let onMalloc: Hook = { _, _ in
            if MallocCounter.watched.load(ordering: .relaxed) == UInt(pthread_self()) {
                MallocCounter.allocations.add(1, ordering: .relaxed)
            }
        }
        let onFree: FreeHook = { _ in }   // both hooks are required
        return install(onMalloc, onFree) != 0
    }

    /// The address of a symbol of the executable itself that is not exported (Swift links the
    /// sanitizer runtimes statically): looked up in the ELF symbol table of /proc/self/exe and
    /// moved by the executable's load bias.
    private static func ownSymbol(_ name: String) -> UnsafeMutableRawPointer? {
        let fd = open("/proc/self/exe", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, let map = mmap(nil, Int(st.st_size), PROT_READ, MAP_PRIVATE, fd, 0),
              map != MAP_FAILED else { return nil }
        defer { munmap(map, Int(st.st_size)) }
        let base = UnsafeRawPointer(map)
        let size = Int(st.st_size)
        guard size > 64, base.load(as: UInt32.self) == 0x464C_457F, base.load(fromByteOffset: 4, as: UInt8.self) == 2 else {
            return nil
        }
        let sectionTable = Int(base.load(fromByteOffset: 0x28, as: UInt64.self))
        let sectionSize = Int(base.load(fromByteOffset: 0x3A, as: UInt16.self))
        let sectionCount = Int(base.load(fromByteOffset: 0x3C, as: UInt16.self))
        func section(_ i: Int) -> (type: UInt32, offset: Int, size: Int, link: Int, entry: Int) {
            let h = base + sectionTable + i * sectionSize
            return (h.load(fromByteOffset: 4, as: UInt32.self), Int(h.load(fromByteOffset: 0x18, as: UInt64.self)),
                    Int(h.load(fromByteOffset: 0x20, as: UInt64.self)), Int(h.load(fromByteOffset: 0x28, as: UInt32.self)),
                    Int(h.load(fromByteOffset: 0x38, as: UInt64.self)))
        }
        var value: UInt64?
        search: for i in 0..<sectionCount where section(i).type == 2 {   // SHT_SYMTAB
            let symtab = section(i), strtab = section(symtab.link)
            guard symtab.entry == 24, symtab.offset + symtab.size <= size else { continue }
            for k in 0..<(symtab.size / 24) {
                let entry = base + symtab.offset + k * 24
                let nameOffset = Int(entry.load(as: UInt32.self))
                guard nameOffset < strtab.size else { continue }
                let text = (base + strtab.offset + nameOffset).assumingMemoryBound(to: CChar.self)
                if strcmp(text, name) == 0 {
                    value = entry.load(fromByteOffset: 8, as: UInt64.self)
                    break search
                }
            }
        }
        guard let address = value, address != 0 else { return nil }
        // The load bias: where the program headers are (AT_PHDR) less where PT_PHDR says they are.
        let phOffset = Int(base.load(fromByteOffset: 0x20, as: UInt64.self))
        let phSize = Int(base.load(fromByteOffset: 0x36, as: UInt16.self))
        let phCount = Int(base.load(fromByteOffset: 0x38, as: UInt16.self))
        var phdrAddress: UInt64?
        for i in 0..<phCount where base.load(fromByteOffset: phOffset + i * phSize, as: UInt32.self) == 6 {  // PT_PHDR
            phdrAddress = base.load(fromByteOffset: phOffset + i * phSize + 0x10, as: UInt64.self)
        }
        guard let phdr = phdrAddress else { return nil }
        guard let runtimePhdr = auxiliaryValue(3) else { return nil }   // AT_PHDR
        let bias = UInt(runtimePhdr) &- UInt(phdr)
        return UnsafeMutableRawPointer(bitPattern: bias &+ UInt(address))
    }

    /// An entry of the auxiliary vector (/proc/self/auxv: pairs of 64-bit type and value).
    private static func auxiliaryValue(_ type: UInt64) -> UInt64? {
        let fd = open("/proc/self/auxv", O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var pair: (UInt64, UInt64) = (0, 0)
        while read(fd, &pair, 16) == 16 {
            if pair.0 == type { return pair.1 }
            if pair.0 == 0 { break }
        }
        return nil
    }

    /// Runs `body` and returns the mallocs it made on this thread.
    static func count(_ body: () -> Void) -> Int {
        precondition(available)
        allocations.store(0, ordering: .relaxed)
        watched.store(UInt(pthread_self()), ordering: .relaxed)
        body()
        watched.store(0, ordering: .relaxed)
        return allocations.load(ordering: .relaxed)
    }
}
