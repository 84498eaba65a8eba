import Synchronization

/// Counters and a generation-time summary for `/metrics`, in Prometheus' text format. Updated from any thread.
public final class ServiceMetrics: Sendable {
    struct State {
        var events: [String: Int] = [:]
        var responses: [Int: Int] = [:]
        var generationCount = 0
        var generationSeconds = 0.0
    }
    private let state = Mutex(State())

    public init() {}

    func count(_ event: String) { state.withLock { $0.events[event, default: 0] += 1 } }
    func response(_ status: Int) { state.withLock { $0.responses[status, default: 0] += 1 } }
    func observeGeneration(seconds: Double) {
        state.withLock {
            $0.generationCount += 1
            $0.generationSeconds += seconds
        }
    }

    /// The exposition: job events, HTTP responses by status, generation time, and the gauges given.
    func exposition(gauges: [(name: String, help: String, value: Double)]) -> String {
        let s = state.withLock { $0 }
        var lines: [String] = []
        lines.append("# HELP diorama_job_events_total Jobs by what happened to them.")
        lines.append("# TYPE diorama_job_events_total counter")
        for event in ["submitted", "completed", "failed", "cancelled", "rejected_queue_full"] {
            lines.append("diorama_job_events_total{event=\"\(event)\"} \(s.events[event, default: 0])")
        }
        lines.append("# HELP diorama_http_responses_total HTTP responses by status code.")
        lines.append("# TYPE diorama_http_responses_total counter")
        for (status, n) in s.responses.sorted(by: { $0.key < $1.key }) { lines.append("diorama_http_responses_total{code=\"\(status)\"} \(n)") }
        lines.append("# HELP diorama_generation_seconds Time from a job's start to its scene.")
        lines.append("# TYPE diorama_generation_seconds summary")
        lines.append("diorama_generation_seconds_count \(s.generationCount)")
        lines.append("diorama_generation_seconds_sum \(s.generationSeconds)")
        for gauge in gauges {
            lines.append("# HELP \(gauge.name) \(gauge.help)")
            lines.append("# TYPE \(gauge.name) gauge")
            lines.append("\(gauge.name) \(gauge.value)")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
