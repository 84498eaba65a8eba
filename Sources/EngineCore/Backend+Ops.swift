/// The op table as functions, for model code: `backend.linear(x, w, b)` rather than `backend.run(.linear, …)[0]`.
extension Backend {
    public func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor? = nil) throws(EngineError) -> Tensor {
        try run(.linear, [x, weight] + (bias.map { [$0] } ?? []))[0]
    }
    public func add(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.add, [a, b])[0] }
    public func multiply(_ a: Tensor, _ b: Tensor) throws(EngineError) -> Tensor { try run(.multiply, [a, b])[0] }
    public func scaled(_ x: Tensor, by factor: Float) throws(EngineError) -> Tensor { try run(.scaled(by: factor), [x])[0] }
    public func silu(_ x: Tensor) throws(EngineError) -> Tensor { try run(.silu, [x])[0] }
    public func geluTanh(_ x: Tensor) throws(EngineError) -> Tensor { try run(.geluTanh, [x])[0] }
    public func layerNorm(_ x: Tensor, eps: Float, weight: Tensor? = nil, bias: Tensor? = nil) throws(EngineError) -> Tensor {
        try run(.layerNorm(eps: eps), [x] + [weight, bias].compactMap { $0 })[0]
    }
    public func rmsNorm(_ x: Tensor, weight: Tensor, eps: Float) throws(EngineError) -> Tensor {
        try run(.rmsNorm(eps: eps), [x, weight])[0]
    }
    public func attention(_ q: Tensor, _ k: Tensor, _ v: Tensor, bias: Tensor? = nil, scale: Float? = nil) throws(EngineError) -> Tensor {
        try run(.attention(scale: scale), [q, k, v] + (bias.map { [$0] } ?? []))[0]
    }
    public func permuted(_ x: Tensor, _ dims: [Int]) throws(EngineError) -> Tensor { try run(.permute(dims), [x])[0] }
    public func contiguous(_ x: Tensor) throws(EngineError) -> Tensor { try run(.contiguous, [x])[0] }
    public func split(_ x: Tensor, sizes: [Int], axis: Int) throws(EngineError) -> [Tensor] { try run(.split(sizes: sizes, axis: axis), [x]) }
    public func concat(_ parts: [Tensor], axis: Int) throws(EngineError) -> Tensor { try run(.concat(axis: axis), parts)[0] }
    public func embedding(_ weight: Tensor, ids: Tensor) throws(EngineError) -> Tensor { try run(.embedding, [weight, ids])[0] }
}
