import EngineCore

/// Runs `body` over `count` items of a batch (axis 0) `chunk` at a time, `(start, length)` each, and concatenates
/// each of its outputs along axis 0; one call over everything when `chunk` is nil or not smaller. For networks whose
/// items are independent (per-frame VAE encoders and decoders), where chunks trade a little speed for activations
/// that shrink with the chunk.
func chunkedAlongBatch(
    _ count: Int, chunk: Int?, on backend: any Backend, _ body: (_ start: Int, _ length: Int) throws(EngineError) -> [Tensor]
) throws(EngineError) -> [Tensor] {
    let size = max(1, min(chunk ?? count, count))
    guard size < count else { return try body(0, count) }
    var parts: [[Tensor]] = []
    for start in stride(from: 0, to: count, by: size) { parts.append(try body(start, min(size, count - start))) }
    var joined: [Tensor] = []
    for output in parts[0].indices { joined.append(try backend.concat(parts.map { $0[output] }, axis: 0)) }
    return joined
}
