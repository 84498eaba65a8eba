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
