// UPFDatapath: per-worker fast-path state — session tables published with RCU, the classifier.
//
// SessionTables.swift  the control thread's API (put/delete/reclaim), the memory layout and the
//                      memory-ordering argument of the RCU/QSBR scheme
// TableReader.swift    the workers' API: lookups by N3 TEID and UE address (single and burst),
//                      classify, quiescent
// SessionRecord.swift  the 128-byte session record, SessionHandle, RuleMatch
// KeyIndex.swift       the lock-free open-addressing index the readers probe
// RuleBlocks.swift     where the per-version rule blocks are cut from (line-sized, in chunks)
// LargePages.swift     the big arrays on 2 MiB transparent huge pages
