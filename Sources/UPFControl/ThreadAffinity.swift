import CThreadAffinity
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// Pins control-plane threads to `control.cpus`.
///
/// Why: `rte_eal_init` pins the process's main thread to the main lcore's CPU, and every thread
/// created after it (the NIO loops, the snapshot writer) inherits that one CPU. The control plane
/// then shares a single core however many housekeeping cores the node has, and its two loops
/// cannot overlap: on this 2-vCPU VM, with two requests in flight, batched updates went from
/// ~27 k to ~35 k sessions/s (1.28×) with `control.cpus: [0, 1]` (docs/BENCHMARKS.md "Classifier
/// and updates").
public enum ThreadAffinity {
    public struct Failure: Error, CustomStringConvertible {
        public let cpus: [Int]
        public let errno: Int32
        public var description: String {
            "cannot pin a control thread to CPUs \(cpus): \(String(cString: strerror(errno)))"
        }
    }

    /// The largest CPU number a `cpu_set_t` holds.
    public static let maxCPU = Int(cthreadaffinity_max_cpu())

    /// Restricts the calling thread to `cpus` (each 0...`maxCPU`).
    public static func pinCurrentThread(to cpus: [Int]) throws(Failure) {
        let numbers = cpus.map { Int32(clamping: $0) }
        let result = numbers.withUnsafeBufferPointer {
            cthreadaffinity_pin_current_thread($0.baseAddress, Int32($0.count))
        }
        guard result == 0 else { throw Failure(cpus: cpus, errno: result) }
    }
}
