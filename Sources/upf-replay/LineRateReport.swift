import Foundation
import Histogram
import UPFControl
import UPFService

/// The report of `upf-replay run --preload`: rate, latency percentiles (hdrhistogram), counters.
struct LineRateReport {
    var input: ReplayInput
    var outcome: LineRateOutcome
    var statistics: DatapathStatistics
    var ports: [String]
    var workers: Int

    func percentile(_ p: Double) -> Double { percentile(p, of: outcome.latency) }

    func percentile(_ p: Double, of histogram: Histogram<UInt64>) -> Double {
        histogram.totalCount == 0 ? 0 : Double(histogram.valueAtPercentile(p)) / 1000
    }

    /// The largest value in microseconds (0 when empty).
    func maximum(of histogram: Histogram<UInt64>) -> Double {
        histogram.totalCount == 0 ? 0 : Double(histogram.max) / 1000
    }

    var json: String {
        let o = outcome
        func num(_ v: Double, _ digits: Int = 3) -> JSONValue { .number(String(format: "%.\(digits)f", v)) }
        let fields: [(String, JSONValue)] = [
            ("preloaded", .int(o.preloaded)), ("frames", .int(o.frames)), ("workers", .int(workers)),
            ("fed", .int(o.fed)), ("transmitted", .int(o.transmitted)), ("dropped", .int(o.dropped)),
            ("foreign", .int(o.foreign)), ("stranded", .int(o.stranded)),
            ("measured_seconds", num(o.measuredSeconds)), ("measured_packets", .int(Int(o.measuredPackets))),
            ("mpps", num(o.packetsPerSecond / 1e6, 4)),
            ("gbps_offered", num(o.measuredSeconds > 0 ? o.measuredBits / o.measuredSeconds / 1e9 : 0, 4)),
            ("latency_us", .object([
                ("samples", .int(Int(o.latency.totalCount))),
                ("p50", num(percentile(50))), ("p99", num(percentile(99))), ("p99_9", num(percentile(99.9))),
                ("max", num(maximum(of: o.latency))),
                ("mean", num(o.latency.totalCount == 0 ? 0 : o.latency.mean / 1000)),
            ])),
            ("harness_latency_us", .object([
                ("p50", num(percentile(50, of: o.harnessLatency))), ("p99", num(percentile(99, of: o.harnessLatency))),
                ("p99_9", num(percentile(99.9, of: o.harnessLatency))),
                ("max", num(maximum(of: o.harnessLatency))),
            ])),
            ("worker_preempted", .object([
                ("seconds", num(o.workerPreemptedSeconds, 6)), ("involuntary_switches", .int(o.workerInvoluntarySwitches)),
            ])),
            ("output", .object(ports.enumerated().map { i, name in
                (name, .object([("packets", .int(o.outputs[i].packets)), ("bytes", .int(o.outputs[i].bytes))]))
            })),
            ("datapath", statistics.json),
        ]
        var text = ""
        JSONValue.object(fields).write(to: &text)
        return text
    }

    var text: String {
        let o = outcome
        var out = String(format: "%d frames through %d preloaded mbufs; %d workers; fed %d, transmitted %d, dropped %d, foreign %d\n",
                         o.frames, o.preloaded, workers, o.fed, o.transmitted, o.dropped, o.foreign)
        out += String(format: "rate: %.4f Mpps over %.3f s (%llu packets); offered %.3f Gbit/s\n",
                      o.packetsPerSecond / 1e6, o.measuredSeconds, o.measuredPackets,
                      o.measuredSeconds > 0 ? o.measuredBits / o.measuredSeconds / 1e9 : 0)
        out += String(format: "latency RX ring->TX burst (us, %llu samples): p50 %.2f  p99 %.2f  p99.9 %.2f  max %.2f\n",
                      o.latency.totalCount, percentile(50), percentile(99), percentile(99.9),
                      maximum(of: o.latency))
        out += String(format: "with the harness collecting TX (us): p50 %.2f  p99 %.2f  p99.9 %.2f\n",
                      percentile(50, of: o.harnessLatency), percentile(99, of: o.harnessLatency),
                      percentile(99.9, of: o.harnessLatency))
        out += String(format: "workers preempted in the measured window: %.3f ms waiting for their CPU, %d involuntary switches\n",
                      o.workerPreemptedSeconds * 1000, o.workerInvoluntarySwitches)
        out += "actions:"
        for a in statistics.actions where a.packets > 0 { out += " \(a.name)=\(a.packets)" }
        out += "\ndrops:"
        if statistics.drops.isEmpty { out += " none" }
        for d in statistics.drops { out += " \(d.name)=\(d.packets)" }
        return out + "\n"
    }
}
