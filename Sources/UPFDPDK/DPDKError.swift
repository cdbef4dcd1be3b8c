import CDPDK

/// A DPDK call that failed: which operation, the errno DPDK reported, and DPDK's own text for it.
///
/// DPDK reports errors as negative errno returns (ethdev) or as -1 plus `rte_errno` (EAL, mempool);
/// both end up here so callers see one typed error with a message an operator can act on.
public struct DPDKError: Error, Equatable, Sendable, CustomStringConvertible {
    /// What was being done, e.g. `rte_eth_dev_configure(port 0)`.
    public var operation: String
    /// The positive errno value (DPDK's own codes included).
    public var code: Int32
    /// `rte_strerror(code)`.
    public var message: String

    public init(operation: String, code: Int32) {
        self.operation = operation
        self.code = code
        self.message = String(cString: cdpdk_strerror(code))
    }

    /// An error not reported by DPDK itself (e.g. a name that is not a port), with its own text.
    public init(operation: String, code: Int32, message: String) {
        self.operation = operation
        self.code = code
        self.message = message
    }

    public var description: String { "\(operation): \(message)" }

    /// Throws for a negative-errno return, the ethdev convention.
    @inline(__always)
    static func check(_ result: Int32, _ operation: @autoclosure () -> String) throws(DPDKError) {
        if result < 0 { throw DPDKError(operation: operation(), code: -result) }
    }

    /// The error for a call that returned -1 / NULL and left the reason in `rte_errno`.
    static func fromRteErrno(_ operation: String) -> DPDKError {
        DPDKError(operation: operation, code: cdpdk_errno())
    }
}
