import EngineCore
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// cuDNN's fused flash attention through its graph API: one SDPA forward operation (cuDNN 9.13.1 or newer; bf16
/// q, k, v and output with the last axis contiguous, float32 accumulation, no mask), one execution plan per shape
/// chosen by cuDNN's heuristics. Descriptors are built with `cudnnBackend*` calls, numbered as `cudnn_graph.h`.
struct CuDNNGraph: @unchecked Sendable {
    typealias Status = Int32
    typealias Descriptor = UnsafeMutableRawPointer

    let create: @convention(c) (Int32, UnsafeMutablePointer<UnsafeMutableRawPointer?>) -> Status
    let destroy: @convention(c) (UnsafeMutableRawPointer?) -> Status
    let finalize: @convention(c) (UnsafeMutableRawPointer?) -> Status
    let setAttribute: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32, Int64, UnsafeRawPointer?) -> Status
    let getAttribute: @convention(c) (UnsafeMutableRawPointer?, Int32, Int32, Int64, UnsafeMutablePointer<Int64>?, UnsafeMutableRawPointer?) -> Status
    let execute: @convention(c) (OpaquePointer?, UnsafeMutableRawPointer?, UnsafeMutableRawPointer?) -> Status
    let lastError: (@convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Void)?

    /// The first release whose SDPA forward operation cuDNN's own front end uses.
    static let minimumVersion = 91301

    /// Nil where the library is older or lacks the graph API.
    init?(_ library: DynamicLibrary, version: Int) {
        guard version >= Self.minimumVersion,
            let create = library.optionalSymbol("cudnnBackendCreateDescriptor", as: type(of: create)),
            let destroy = library.optionalSymbol("cudnnBackendDestroyDescriptor", as: type(of: destroy)),
            let finalize = library.optionalSymbol("cudnnBackendFinalize", as: type(of: finalize)),
            let setAttribute = library.optionalSymbol("cudnnBackendSetAttribute", as: type(of: setAttribute)),
            let getAttribute = library.optionalSymbol("cudnnBackendGetAttribute", as: type(of: getAttribute)),
            let execute = library.optionalSymbol("cudnnBackendExecute", as: type(of: execute))
        else { return nil }
        (self.create, self.destroy, self.finalize, self.setAttribute, self.getAttribute, self.execute) =
            (create, destroy, finalize, setAttribute, getAttribute, execute)
        typealias LastError = @convention(c) (UnsafeMutablePointer<CChar>?, Int) -> Void
        lastError = library.optionalSymbol("cudnnGetLastErrorString", as: LastError.self)
    }

    // cudnnBackendDescriptorType_t
    static let engineConfigType: Int32 = 3
    static let heuristicsType: Int32 = 4
    static let executionPlanType: Int32 = 5
    static let operationGraphType: Int32 = 15
    static let variantPackType: Int32 = 16
    static let tensorType: Int32 = 17
    static let sdpaForwardType: Int32 = 41
    // cudnnBackendAttributeType_t
    static let handleValue: Int32 = 0
    static let dataTypeValue: Int32 = 1
    static let booleanValue: Int32 = 2
    static let int64Value: Int32 = 3
    static let pointerValue: Int32 = 6
    static let heuristicModeValue: Int32 = 8
    static let descriptorValue: Int32 = 15
    // cudnnBackendAttributeName_t
    static let tensorByteAlignment: Int32 = 900
    static let tensorDataType: Int32 = 901
    static let tensorDimensions: Int32 = 902
    static let tensorStrides: Int32 = 903
    static let tensorUniqueID: Int32 = 906
    static let tensorIsByValue: Int32 = 908
    static let sdpaQuery: Int32 = 2800
    static let sdpaKey: Int32 = 2801
    static let sdpaValue: Int32 = 2802
    static let sdpaOutput: Int32 = 2803
    static let sdpaScale: Int32 = 2805
    static let graphHandle: Int32 = 800
    static let graphOperations: Int32 = 801
    static let heuristicsMode: Int32 = 200
    static let heuristicsGraph: Int32 = 201
    static let heuristicsResults: Int32 = 202
    static let planHandle: Int32 = 400
    static let planEngineConfig: Int32 = 401
    static let planWorkspaceSize: Int32 = 402
    static let variantUniqueIDs: Int32 = 1000
    static let variantPointers: Int32 = 1001
    static let variantWorkspace: Int32 = 1003
    // cudnnDataType_t, cudnnBackendHeurMode_t
    static let float32: Int32 = 0
    static let bfloat16: Int32 = 9
    static let heuristicModeA: Int32 = 3
    static let heuristicFallback: Int32 = 2

    /// Unique ids of the plan's tensors, in the variant pack's order.
    static let uids: [Int64] = [1, 2, 3, 4, 5]

    /// Where a step failed, with cuDNN's own last message.
    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    /// A shape's plan: the execution plan, its workspace, and every descriptor it was built from (kept alive with it).
    struct AttentionPlan: @unchecked Sendable {
        var plan: Descriptor
        var workspace: Int
        var descriptors: [Descriptor]
    }

    /// What an attention call looks like to cuDNN: sizes and the strides (in elements) of q, k, v and the output.
    struct AttentionShape: Hashable, Sendable {
        var batch, heads, queries, keys, dim: Int
        var strides: [[Int]]
    }

    private func check(_ status: Status, _ step: String) throws(Failure) {
        guard status != 0 else { return }
        var message = [CChar](repeating: 0, count: 512)
        lastError?(&message, message.count)
        let detail = String(decoding: message.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        throw Failure(description: "\(step): cuDNN status \(status)\(detail.isEmpty ? "" : " (\(detail))")")
    }

    private func make(_ type: Int32, _ kept: inout [Descriptor]) throws(Failure) -> Descriptor {
        var descriptor: UnsafeMutableRawPointer?
        try check(create(type, &descriptor), "creating descriptor type \(type)")
        guard let descriptor else { throw Failure(description: "cuDNN returned no descriptor of type \(type)") }
        kept.append(descriptor)
        return descriptor
    }

    private func set<T>(_ descriptor: Descriptor, _ name: Int32, _ type: Int32, _ values: [T], _ step: String) throws(Failure) {
        let status = values.withUnsafeBytes { setAttribute(descriptor, name, type, Int64(values.count), $0.baseAddress) }
        try check(status, step)
    }

    private func tensor(
        uid: Int64, dimensions: [Int], strides: [Int], dataType: Int32, byValue: Bool = false, _ kept: inout [Descriptor]
    ) throws(Failure) -> Descriptor {
        let t = try make(Self.tensorType, &kept)
        try set(t, Self.tensorDataType, Self.dataTypeValue, [dataType], "tensor \(uid) data type")
        try set(t, Self.tensorDimensions, Self.int64Value, dimensions.map(Int64.init), "tensor \(uid) dimensions \(dimensions)")
        try set(t, Self.tensorStrides, Self.int64Value, strides.map(Int64.init), "tensor \(uid) strides \(strides)")
        try set(t, Self.tensorUniqueID, Self.int64Value, [uid], "tensor \(uid) id")
        try set(t, Self.tensorByteAlignment, Self.int64Value, [Int64(16)], "tensor \(uid) alignment")
        if byValue { try set(t, Self.tensorIsByValue, Self.booleanValue, [true], "tensor \(uid) by value") }
        try check(finalize(t), "finalizing tensor \(uid) \(dimensions) strides \(strides)")
        return t
    }

    /// The operation graph of one SDPA forward over `shape` (finalized; needs no GPU to build).
    func attentionGraph(_ shape: AttentionShape, handle: OpaquePointer?, _ kept: inout [Descriptor]) throws(Failure) -> Descriptor {
        let (b, h, l, s, d) = (shape.batch, shape.heads, shape.queries, shape.keys, shape.dim)
        let q = try tensor(uid: Self.uids[0], dimensions: [b, h, l, d], strides: shape.strides[0], dataType: Self.bfloat16, &kept)
        // The key as stored, [b, h, s, d]: the operation transposes it itself.
        let k = try tensor(uid: Self.uids[1], dimensions: [b, h, s, d], strides: shape.strides[1], dataType: Self.bfloat16, &kept)
        let v = try tensor(uid: Self.uids[2], dimensions: [b, h, s, d], strides: shape.strides[2], dataType: Self.bfloat16, &kept)
        let o = try tensor(uid: Self.uids[3], dimensions: [b, h, l, d], strides: shape.strides[3], dataType: Self.bfloat16, &kept)
        let scale = try tensor(uid: Self.uids[4], dimensions: [1, 1, 1, 1], strides: [1, 1, 1, 1], dataType: Self.float32, byValue: true, &kept)
        let sdpa = try make(Self.sdpaForwardType, &kept)
        for (name, operand) in [(Self.sdpaQuery, q), (Self.sdpaKey, k), (Self.sdpaValue, v), (Self.sdpaOutput, o), (Self.sdpaScale, scale)] {
            try set(sdpa, name, Self.descriptorValue, [operand], "SDPA operand \(name)")
        }
        try check(finalize(sdpa), "finalizing the SDPA operation")
        let graph = try make(Self.operationGraphType, &kept)
        if let handle { try set(graph, Self.graphHandle, Self.handleValue, [handle], "graph handle") }
        try set(graph, Self.graphOperations, Self.descriptorValue, [sdpa], "graph operations")
        try check(finalize(graph), "finalizing the operation graph")
        return graph
    }

    /// The plan cuDNN's heuristics rank first among those that build here (mode A, then the fallback list).
    func attentionPlan(_ shape: AttentionShape, handle: OpaquePointer?) throws(Failure) -> AttentionPlan {
        var kept: [Descriptor] = []
        do throws(Failure) {
            let graph = try attentionGraph(shape, handle: handle, &kept)
            var reasons: [String] = []
            for mode in [Self.heuristicModeA, Self.heuristicFallback] {
                let heuristics = try make(Self.heuristicsType, &kept)
                try set(heuristics, Self.heuristicsGraph, Self.descriptorValue, [graph], "heuristics graph")
                try set(heuristics, Self.heuristicsMode, Self.heuristicModeValue, [mode], "heuristics mode")
                try check(finalize(heuristics), "finalizing heuristics mode \(mode)")
                var count: Int64 = 0
                try check(getAttribute(heuristics, Self.heuristicsResults, Self.descriptorValue, 0, &count, nil), "counting engine configurations")
                guard count > 0 else {
                    reasons.append("heuristics mode \(mode) offered no engine")
                    continue
                }
                var configurations: [UnsafeMutableRawPointer?] = []
                for _ in 0..<count { configurations.append(try make(Self.engineConfigType, &kept)) }
                var returned: Int64 = 0
                let status = configurations.withUnsafeMutableBytes {
                    getAttribute(heuristics, Self.heuristicsResults, Self.descriptorValue, count, &returned, $0.baseAddress)
                }
                try check(status, "reading engine configurations")
                for configuration in configurations.prefix(Int(returned)) {
                    var plan: UnsafeMutableRawPointer?
                    guard create(Self.executionPlanType, &plan) == 0, let plan else { continue }
                    var handleValue = handle
                    let built =
                        setAttribute(plan, Self.planHandle, Self.handleValue, 1, &handleValue) == 0
                        && [configuration].withUnsafeBytes { setAttribute(plan, Self.planEngineConfig, Self.descriptorValue, 1, $0.baseAddress) } == 0
                        && finalize(plan) == 0
                    guard built else {
                        _ = destroy(plan)
                        continue
                    }
                    kept.append(plan)
                    var workspace: Int64 = 0
                    var got: Int64 = 0
                    try check(getAttribute(plan, Self.planWorkspaceSize, Self.int64Value, 1, &got, &workspace), "reading the workspace size")
                    return AttentionPlan(plan: plan, workspace: Int(workspace), descriptors: kept)
                }
                reasons.append("none of heuristics mode \(mode)'s \(returned) engines built a plan")
            }
            throw Failure(description: reasons.joined(separator: "; "))
        } catch {
            for descriptor in kept.reversed() { _ = destroy(descriptor) }
            throw error
        }
    }

    /// Enqueues one attention on the handle's stream: addresses of q, k, v and the output, the workspace's (0 when
    /// none is needed), and the softmax scale.
    func runAttention(_ plan: AttentionPlan, handle: OpaquePointer?, addresses: [UInt64], workspace: UInt64, scale: Float) throws(Failure) {
        var kept: [Descriptor] = []
        defer { for descriptor in kept { _ = destroy(descriptor) } }
        let pack = try make(Self.variantPackType, &kept)
        var scaleValue = scale
        try withUnsafeMutablePointer(to: &scaleValue) { (scalePointer) throws(Failure) in
            // The scale is passed by value: a host pointer, read while the call enqueues.
            let pointers: [UnsafeMutableRawPointer?] = addresses.map { UnsafeMutableRawPointer(bitPattern: UInt($0)) } + [UnsafeMutableRawPointer(scalePointer)]
            try set(pack, Self.variantUniqueIDs, Self.int64Value, Self.uids, "variant ids")
            try set(pack, Self.variantPointers, Self.pointerValue, pointers, "variant pointers")
            try set(pack, Self.variantWorkspace, Self.pointerValue, [UnsafeMutableRawPointer(bitPattern: UInt(workspace))], "variant workspace")
            try check(finalize(pack), "finalizing the variant pack")
            try check(execute(handle, plan.plan, pack), "executing the SDPA plan")
        }
    }
}

/// Which attention kernel runs bf16, head-dimension-128 attention: Diorama's own flash kernel, or cuDNN's fused SDPA
/// where it builds (else the own kernel). `DIORAMA_ATTENTION=cudnn` picks cuDNN until it is measured to win.
public enum AttentionKernel: String, Sendable {
    case own, cudnn

    static var fromEnvironment: AttentionKernel { getenv("DIORAMA_ATTENTION").flatMap { AttentionKernel(rawValue: String(cString: $0)) } ?? .own }
}

extension CUDABackend {
    /// cuDNN loaded and a handle on this backend's stream, made on first use; false where cuDNN is absent.
    func cudnnIsReady(_ confined: inout Confined) -> Bool {
        if confined.cudnnState == .untried {
            confined.cudnnState = .unavailable
            if let library = try? CuDNN() {
                var handle: OpaquePointer?
                if library.cudnnCreate(&handle) == 0, library.cudnnSetStream(handle, confined.stream) == 0 {
                    confined.cudnn = library
                    confined.cudnnHandle = handle
                    confined.cudnnState = .ready
                }
            }
        }
        return confined.cudnnState == .ready
    }

    /// Attention through cuDNN's fused SDPA into `out` (bf16, [b, h, l, 128] views whose last axis is contiguous);
    /// false (nothing enqueued) where cuDNN is absent, too old, or declines the shape: the reason is kept in
    /// `attentionPath`.
    func cudnnAttention(_ q: Tensor, _ k: Tensor, _ v: Tensor, into out: Tensor, scale: Float) throws(EngineError) -> Bool {
        let shape = CuDNNGraph.AttentionShape(
            batch: q.shape[0], heads: q.shape[1], queries: q.shape[2], keys: k.shape[2], dim: q.shape[3], strides: [q, k, v, out].map(\.strides))
        let prepared: (CuDNNGraph, OpaquePointer?, CuDNNGraph.AttentionPlan)? = try withContext { confined throws(EngineError) in
            guard cudnnIsReady(&confined), let library = confined.cudnn else {
                noteAttention(declined: "cuDNN is not loaded")
                return nil
            }
            guard let graph = library.graph else {
                noteAttention(declined: "cuDNN \(library.cudnnGetVersion()) has no SDPA operation (9.13.1 or newer has)")
                return nil
            }
            if let cached = confined.cudnnAttentionPlans[shape] { return cached.map { (graph, confined.cudnnHandle, $0) } }
            do {
                let plan = try graph.attentionPlan(shape, handle: confined.cudnnHandle)
                confined.cudnnAttentionPlans[shape] = .some(plan)
                return (graph, confined.cudnnHandle, plan)
            } catch {
                confined.cudnnAttentionPlans[shape] = .some(nil)
                noteAttention(declined: "\(shape.batch)x\(shape.heads)x\(shape.queries)x\(shape.keys): \(error)")
                return nil
            }
        }
        guard let (graph, handle, plan) = prepared else { return false }
        let workspace = plan.workspace > 0 ? try empty([plan.workspace], dtype: .bool) : nil
        let ran = try withContext { confined throws(EngineError) -> Bool in
            do {
                try graph.runAttention(
                    plan, handle: handle, addresses: [q, k, v, out].map(Self.address), workspace: workspace.map(Self.address) ?? 0, scale: scale)
                return true
            } catch {
                // Declined at run time (a status, nothing enqueued): the own kernel takes this shape from now on. A
                // broken device shows itself there too, as the device error it is.
                confined.cudnnAttentionPlans[shape] = .some(nil)
                noteAttention(declined: "executing for \(shape.batch)x\(shape.heads)x\(shape.queries)x\(shape.keys): \(error)")
                return false
            }
        }
        if ran { attentionCounts.withLock { $0.cudnn += 1 } }
        return ran
    }

    func noteAttention(declined reason: String) {
        attentionCounts.withLock {
            $0.declined += 1
            $0.lastDecline = reason
        }
    }

    /// Attentions cuDNN's fused SDPA has run here.
    public var cudnnAttentionRuns: Int { attentionCounts.withLock { $0.cudnn } }

    /// How bf16 head-128 attention has run here, for `engine selftest` and benchmarks.
    public var attentionPath: String {
        attentionCounts.withLock { counts in
            var parts: [String] = []
            if counts.cudnn > 0 { parts.append("cuDNN fused SDPA \(counts.cudnn) times") }
            if counts.own > 0 { parts.append("own flash kernel \(counts.own) times") }
            if let reason = counts.lastDecline { parts.append("cuDNN declined \(counts.declined) times (last: \(reason))") }
            return parts.isEmpty ? "not run yet" : parts.joined(separator: "; ")
        }
    }
}
