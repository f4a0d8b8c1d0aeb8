import Foundation
import Prometheus

/// Prometheus metrics: requests and latency by route, method and status; batch sizes and queue
/// depth and forward-pass time per queue; readiness.
final class ServerMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    private static let latencyBuckets: [Double] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]
    private static let batchBuckets: [Double] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]

    func recordRequest(route: String, method: String, status: Int, seconds: Double) {
        let labels = [("route", route), ("method", method), ("status", String(status))]
        registry.makeCounter(descriptor: .init(metricName: "swiftclip_http_requests", unitName: "total",
                                               helpText: "HTTP requests answered"), labels: labels).increment()
        registry.makeValueHistogram(descriptor: .init(metricName: "swiftclip_http_request_duration", unitName: "seconds",
                                                      helpText: "Time from request head to response"),
                                    labels: labels, buckets: Self.latencyBuckets).record(seconds)
    }

    func recordPass(queue: String, batchSize: Int, depth: Int, seconds: Double) {
        registry.makeValueHistogram(descriptor: .init(metricName: "swiftclip_batch", unitName: "size",
                                                      helpText: "Items per forward pass"),
                                    labels: [("queue", queue)], buckets: Self.batchBuckets).record(Double(batchSize))
        // Its sum over a load run, against the run's wall time, says how busy the forward passes kept
        // the model (tools/serve/load_bench.py: pass busy, pass time per item).
        registry.makeValueHistogram(descriptor: .init(metricName: "swiftclip_pass", unitName: "seconds",
                                                      helpText: "Time of each forward pass"),
                                    labels: [("queue", queue)], buckets: Self.latencyBuckets).record(seconds)
        setDepth(queue: queue, depth)
    }

    func setDepth(queue: String, _ depth: Int) {
        registry.makeGauge(descriptor: .init(metricName: "swiftclip_queue", unitName: "depth",
                                             helpText: "Items waiting for a forward pass"), labels: [("queue", queue)]).set(to: Double(depth))
    }

    func setReady(_ ready: Bool) {
        registry.makeGauge(descriptor: .init(metricName: "swiftclip", unitName: "ready",
                                             helpText: "1 once the model is loaded and warmed")).set(to: ready ? 1 : 0)
    }

    func text() -> String { registry.emitToString() }
}
