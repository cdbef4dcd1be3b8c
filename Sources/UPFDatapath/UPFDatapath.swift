// UPFDatapath: per-worker fast-path state — session tables published with RCU, the classifier.
//
// SessionTables.swift  the control thread's API (put/delete/reclaim), the memory layout and the
//                      memory-ordering argument of the RCU/QSBR scheme
// TableReader.swift    the workers' API: lookups by N3 TEID and UE address, classify, quiescent
// SessionRecord.swift  the 128-byte session record, SessionHandle, RuleMatch
// KeyIndex.swift       the lock-free open-addressing index the readers probe
