import Checkpoints
import EngineCore
import FoundationEssentials
import ModelLoading

/// A model's parameters by dotted name, checked against its specification when loaded.
public struct ModelWeights: Sendable {
    public let tensors: [String: Tensor]
    public let source: String

    public init(_ tensors: [String: Tensor], source: String) {
        self.tensors = tensors
        self.source = source
    }

    /// The parameter `name`; loading guaranteed it exists with its shape, so a miss is a programming error.
    public subscript(_ name: String) -> Tensor {
        guard let t = tensors[name] else { preconditionFailure("\(source) has no parameter \(name) (the spec and the model disagree)") }
        return t
    }

    public func optional(_ name: String) -> Tensor? { tensors[name] }

    /// Loads `specs` from a checkpoint (a file or folder Diorama reads), converting to float32. `strict` also refuses
    /// keys the specs do not name; a part of a file (the VAE's encoder alone) loads with `strict: false`.
    public static func load(_ specs: [ParameterSpec], from path: String, prefix: String = "", strict: Bool = true) throws -> ModelWeights {
        let checkpoint = try CheckpointReader.open(path: path)
        let float32 = specs.map { spec in
            var wide = spec
            wide.dtype = spec.dtype ?? .float32
            return wide
        }
        return ModelWeights(try WeightLoader.load(float32, from: checkpoint, prefix: prefix, strict: strict, source: path), source: path)
    }
}

extension ModelWeights {
    /// Loads `specs` from `checkpoint` straight onto `backend`: each weight copied to the device as stored and
    /// converted there to `dtype`, one tensor at a time. The weights `quantizing` names (the transformer's block
    /// linears, the text encoder's linears in `fp8-lean`) go from their stored type to FP8 with their scales (as the
    /// reference quantises its loaded weights), so no full-width copy outlives its own tensor. Integer tensors stay as
    /// stored.
    public static func load(
        _ specs: [ParameterSpec], from checkpoint: Checkpoint, prefix: String = "", strict: Bool, source: String, as dtype: DType,
        quantizing: (String) -> Bool = { _ in false }, on backend: any Backend
    ) throws -> ModelWeights {
        var scales: [String: Tensor] = [:]
        var tensors = try WeightLoader.load(specs, from: checkpoint, prefix: prefix, strict: strict, source: source) { spec, host throws(EngineError) in
            let here = try backend.upload(host)
            guard here.dtype.isFloatingPoint else { return here }
            if quantizing(spec.name) {
                let (quantized, scale) = try ModelPrecision.quantizedFP8(here, on: backend)
                scales[ModelPrecision.scaleName(spec.name)] = scale
                return quantized
            }
            return try backend.cast(here, to: dtype)
        }
        tensors.merge(scales) { a, _ in a }
        return ModelWeights(tensors, source: source)
    }
}

extension ModelWeights {
    /// These weights with those `chosen` by name on `backend` (all by default): tensors already there as they are,
    /// others copied over (a host-resident model's part for the stage that needs it, or one layer's for sequential
    /// offload); the rest stay where they are. Free when nothing needs copying.
    public func uploaded(to backend: any Backend, where chosen: (String) -> Bool = { _ in true }) throws(EngineError) -> ModelWeights {
        guard tensors.contains(where: { $0.value.device != backend.device && chosen($0.key) }) else { return self }
        var moved = tensors
        for (name, tensor) in tensors where tensor.device != backend.device && chosen(name) { moved[name] = try backend.upload(tensor) }
        return ModelWeights(moved, source: source)
    }

    /// These weights in host memory (copied back from `backend`'s device), so the device holds none of them.
    public func downloaded(from backend: any Backend) throws(EngineError) -> ModelWeights {
        var moved: [String: Tensor] = [:]
        for (name, tensor) in tensors { moved[name] = tensor.device == backend.device ? try backend.download(tensor) : tensor }
        return ModelWeights(moved, source: source)
    }
}

extension ModelWeights {
    /// Seeded random weights for the built-in toy models, made on `backend` in spec order: norm scales near 1, every
    /// other tensor normal with a 1/√fan-in spread, unless `special` gives a tensor for a name (drawing nothing).
    public static func seeded(
        _ specs: [ParameterSpec], noise: inout some NoiseSource, source: String, on backend: any Backend,
        special: (ParameterSpec, Int) throws -> Tensor? = { _, _ in nil }
    ) throws -> ModelWeights {
        var tensors: [String: Tensor] = [:]
        for spec in specs {
            let n = spec.shape.reduce(1, *)
            let fanIn = spec.shape.count > 1 ? spec.shape.dropFirst().reduce(1, *) : 1
            let values: Tensor
            if let given = try special(spec, n) {
                values = given
            } else if spec.name.hasSuffix("gamma") || spec.name.hasSuffix("norm_q.weight") || spec.name.hasSuffix("norm_k.weight")
                || spec.name.contains("layer_norm") || spec.name.hasSuffix("norm2.weight")
            {
                values = try backend.add(try backend.full([1], value: 1), try backend.scaled(try noise.normal([n], on: backend), by: 0.1))
            } else {
                values = try backend.scaled(try noise.normal([n], on: backend), by: 1 / Float(fanIn).squareRoot())
            }
            tensors[spec.name] = try values.reshaped(spec.shape)
        }
        return ModelWeights(tensors, source: source)
    }
}

/// Why a model folder or configuration was refused.
public struct ModelError: Error, Equatable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Reads a `config.json` into a configuration type, naming the file on failure.
public func readConfiguration<C: Decodable>(_ type: C.Type, at path: String) throws -> C {
    let file = try MappedFile(path: path)
    do {
        return try JSONDecoder().decode(C.self, from: Data(UnsafeRawBufferPointer(start: file.bytes, count: file.size)))
    } catch {
        throw ModelError("\(path) is not a valid \(C.self): \(error)")
    }
}
