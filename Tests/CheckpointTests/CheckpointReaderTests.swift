import Foundation
import Testing

@testable import Checkpoints

/// Files written by torch 2.13 and the safetensors package (`tools/engine/make_checkpoint_fixtures.py`), with every
/// tensor's dtype, shape and SHA-256 in the manifest.
struct CheckpointFixtures {
    struct ExpectedTensor: Decodable {
        var name: String
        var dtype: String
        var shape: [Int]
        var sha256: String
    }
    struct ExpectedFile: Decodable {
        var file: String
        var format: String
        var tensors: [ExpectedTensor]?
    }
    struct Corrupt: Decodable {
        var file: String
        var expect: String
    }
    struct Manifest: Decodable {
        var files: [ExpectedFile]
        var corrupt: [Corrupt]
    }

    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let manifest: Manifest = {
        try! JSONDecoder().decode(Manifest.self, from: Data(contentsOf: folder.appendingPathComponent("manifest.json")))
    }()
    static func path(_ name: String) -> String { folder.appendingPathComponent(name).path }
}

/// SHA-256 (FIPS 180-4), enough to check fixture bytes without a crypto package.
func sha256Hex(_ data: UnsafeRawBufferPointer) -> String {
    let k: [UInt32] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98, 0x12835b01,
        0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
        0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147,
        0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
        0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08,
        0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
        0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
    ]
    var h: [UInt32] = [0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19]
    var message = Array(data)
    let bitLength = UInt64(message.count) * 8
    message.append(0x80)
    while message.count % 64 != 56 { message.append(0) }
    for i in (0..<8).reversed() { message.append(UInt8(truncatingIfNeeded: bitLength >> (8 * UInt64(i)))) }
    func rotr(_ x: UInt32, _ n: UInt32) -> UInt32 { (x >> n) | (x << (32 - n)) }
    for chunk in stride(from: 0, to: message.count, by: 64) {
        var w = [UInt32](repeating: 0, count: 64)
        for i in 0..<16 {
            w[i] = (0..<4).reduce(0) { $0 << 8 | UInt32(message[chunk + 4 * i + $1]) }
        }
        for i in 16..<64 {
            let s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3)
            let s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10)
            w[i] = w[i - 16] &+ s0 &+ w[i - 7] &+ s1
        }
        var (a, b, c, d, e, f, g, hh) = (h[0], h[1], h[2], h[3], h[4], h[5], h[6], h[7])
        for i in 0..<64 {
            let t1 = hh &+ (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) &+ ((e & f) ^ (~e & g)) &+ k[i] &+ w[i]
            let t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) &+ ((a & b) ^ (a & c) ^ (b & c))
            (hh, g, f, e, d, c, b, a) = (g, f, e, d &+ t1, c, b, a, t1 &+ t2)
        }
        for (i, v) in [a, b, c, d, e, f, g, hh].enumerated() { h[i] = h[i] &+ v }
    }
    return h.map { v in (0..<4).map { String(format: "%02x", (v >> (24 - 8 * UInt32($0))) & 0xFF) }.joined() }.joined()
}

struct CheckpointReaderTests {
    @Test(arguments: CheckpointFixtures.manifest.files.filter { $0.format != "torch-legacy" }.map(\.file))
    func everyTensorReadsBackExactly(file: String) throws {
        let expected = CheckpointFixtures.manifest.files.first { $0.file == file }!
        let checkpoint = try CheckpointReader.open(path: CheckpointFixtures.path(file))
        let tensors = expected.tensors ?? []
        #expect(checkpoint.tensors.count == tensors.count, "\(file)")
        for e in tensors {
            guard let t = checkpoint.tensor(named: e.name) else {
                Issue.record("\(file): \(e.name) missing")
                continue
            }
            #expect(t.dtype.rawValue == e.dtype && t.shape == e.shape, "\(e.name): \(t.dtype) \(t.shape)")
            #expect(t.withContiguousBytes(sha256Hex) == e.sha256, "\(file): bytes of \(e.name)")
        }
    }

    @Test func flashWorldCheckpointKeepsItsTwoStateDicts() throws {
        let checkpoint = try CheckpointReader.open(path: CheckpointFixtures.path("flashworld-like.ckpt"))
        #expect(checkpoint.format == .pytorchZip)
        let prefixes = Set(checkpoint.tensors.map { String($0.name.split(separator: ".")[0]) })
        #expect(prefixes == ["transformer", "recon_decoder"])
        // Views are read through their strides: a transposed weight is not dense.
        #expect(checkpoint.tensors.contains { !$0.isDense })
    }

    @Test func legacyPyTorchFilesAreNamed() {
        #expect {
            _ = try CheckpointReader.open(path: CheckpointFixtures.path("legacy.pt"))
        } throws: { error in
            (error as? CheckpointError)?.kind == .unsupportedFormat && "\(error)".contains("legacy")
        }
    }

    @Test(arguments: CheckpointFixtures.manifest.corrupt.map(\.file))
    func corruptFilesFailWithATypedError(file: String) {
        #expect {
            let checkpoint = try CheckpointReader.open(path: CheckpointFixtures.path(file))
            for t in checkpoint.tensors { _ = t.withContiguousBytes { $0.count } }
        } throws: { error in
            guard let e = error as? CheckpointError else { return false }
            return e.file.contains("corrupt") && !e.message.isEmpty
        }
    }

    @Test func errorsNameTheTensorAndOffset() throws {
        let expectations: [(String, CheckpointError.Kind, String?)] = [
            ("corrupt/offsets-out-of-bounds.safetensors", .outOfBounds, "b"),
            ("corrupt/length-mismatch.safetensors", .dtypeMismatch, "a"),
            ("corrupt/unknown-dtype.safetensors", .dtypeMismatch, "b"),
            ("corrupt/forbidden-global.pt", .unsupportedPickle, nil),
            ("corrupt/unsupported-opcode.pt", .unsupportedPickle, nil),
            ("corrupt/missing-storage.pt", .missingEntry, "weight"),
        ]
        for (file, kind, tensor) in expectations {
            #expect {
                _ = try CheckpointReader.open(path: CheckpointFixtures.path(file))
            } throws: { error in
                guard let e = error as? CheckpointError else { return false }
                return e.kind == kind && (tensor == nil || e.tensor == tensor)
            }
        }
        #expect {
            _ = try CheckpointReader.open(path: CheckpointFixtures.path("corrupt/forbidden-global.pt"))
        } throws: { "\($0)".contains("os.system") }
    }

    /// Random damage never crashes a reader: each mutant either reads (and its tensors stay in bounds) or fails with a
    /// `CheckpointError`.
    @Test(arguments: ["state_dict.pt", "single.safetensors", "flashworld-like.ckpt"])
    func mutatedFilesNeverCrash(file: String) throws {
        let original = try [UInt8](Data(contentsOf: URL(fileURLWithPath: CheckpointFixtures.path(file))))
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-ckpt-\(getpid())-\(file)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        var random = MutationRandom()
        var failures = 0
        for round in 0..<300 {
            var bytes = original
            switch round % 3 {
            case 0:
                for _ in 0..<(1 + random.next(4)) {
                    let (at, bit) = (random.next(bytes.count), random.next(8))
                    bytes[at] ^= UInt8(1 << bit)
                }
            case 1:
                let cut = random.next(bytes.count)
                bytes.removeSubrange(cut...)
            default:
                for _ in 0..<(1 + random.next(8)) {
                    let (at, value) = (random.next(min(bytes.count, 600)), random.next(256))
                    bytes[at] = UInt8(value)
                }
            }
            try Data(bytes).write(to: scratch)
            // The reader throws only CheckpointError (typed throws), so any failure here is a typed one.
            do throws(CheckpointError) {
                let checkpoint = try CheckpointReader.open(path: scratch.path)
                for t in checkpoint.tensors { _ = t.withContiguousBytes { $0.reduce(0) { $0 &+ Int($1) } } }
            } catch {
                failures += 1
            }
        }
        #expect(failures > 50, "most mutants should be refused")
    }

    @Test func convertingToSafetensorsPreservesEveryTensor() throws {
        let source = try CheckpointReader.open(path: CheckpointFixtures.path("flashworld-like.ckpt"))
        var out: [UInt8] = []
        SafetensorsWriter.write(source.tensors, metadata: ["converted_from": "flashworld-like.ckpt"]) { out += $0 }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("diorama-converted-\(getpid()).safetensors")
        defer { try? FileManager.default.removeItem(at: path) }
        try Data(out).write(to: path)
        let converted = try CheckpointReader.open(path: path.path)
        #expect(converted.metadata["converted_from"] == "flashworld-like.ckpt")
        #expect(converted.tensors.map(\.name) == source.tensors.map(\.name))
        for (a, b) in zip(source.tensors, converted.tensors) {
            #expect(a.dtype == b.dtype && a.shape == b.shape)
            #expect(a.withContiguousBytes(sha256Hex) == b.withContiguousBytes(sha256Hex), "\(a.name)")
        }
    }
}

/// A small LCG for repeatable mutations.
struct MutationRandom {
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    mutating func next(_ bound: Int) -> Int {
        state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        return Int((state >> 33) % UInt64(max(bound, 1)))
    }
}
