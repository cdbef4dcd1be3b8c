import UPFPackets
import UPFPolicy

extension SessionHandle {
    /// The first rule after evaluation position `position` that `flow` matches and that does not
    /// steer: what a steered packet does when its engine is down and the engine's fallback is
    /// `core` ("as if the steer action were the session's forwarding to the core").
    @inlinable
    public func classifySkippingSteer(flow: InnerFlow, qfi: UInt8, source: SourceInterface, after position: Int) -> RuleMatch? {
        let n = Int(record.pointee.ruleCount)
        guard n > 0 else { return nil }
        let rules = record.pointee.rules
        let pools = record.pointee.pools
        let code = source.compiledCode
        var i = position &+ 1
        while i < n {
            if case .steer = rules[i].action {
                // skipped
            } else if CompiledRule.matches(rules + i, flow, qfi: qfi, source: code, pools: pools) {
                return RuleMatch(index: i, rule: rules + i, record: record)
            }
            i &+= 1
        }
        return nil
    }
}
