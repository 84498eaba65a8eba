import EngineCore
import Testing

@testable import EngineCPU

struct EngineCoreTests {
    @Test func allocatorReusesBlocksAndCountsBytes() throws {
        let allocator = CachingAllocator(device: .cpu, raw: HostMemory(), limit: 1 << 20)
        let a = try allocator.allocate(1000)
        #expect(a.size == 1024)
        #expect(allocator.stats.active == 1024 && allocator.stats.peak == 1024)
        allocator.release(a)
        #expect(allocator.stats.active == 0 && allocator.stats.cached == 1024)
        let b = try allocator.allocate(900)
        #expect(b.address == a.address, "a freed block of the same size class is reused")
        #expect(allocator.stats.cached == 0)
        #expect(CachingAllocator.roundedSize(40_000) == 49_152)
        // Beyond the limit: a typed error that says how much was asked for.
        #expect {
            _ = try allocator.allocate(2 << 20)
        } throws: { ($0 as? EngineError)?.kind == .outOfMemory && "\($0)".contains("2097152 bytes") }
        allocator.release(b)
        allocator.clearCache()
        #expect(allocator.stats.cached == 0)
    }

    @Test func viewsShareStorageAndCheckTheirArguments() throws {
        let t = try Tensor((0..<24).map(Float.init), shape: [2, 3, 4])
        let p = try t.permuted([2, 0, 1])
        #expect(p.shape == [4, 2, 3] && !p.isContiguous && p.storage === t.storage)
        #expect(try CPUBackend.shared.run(.contiguous, [p])[0].floats() == [0, 4, 8, 12, 16, 20, 1, 5, 9, 13, 17, 21, 2, 6, 10, 14, 18, 22, 3, 7, 11, 15, 19, 23])
        #expect(try t.reshaped([6, -1]).shape == [6, 4])
        #expect(try t.narrowed(1, start: 1, length: 2).floats() == [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23])
        #expect(throws: EngineError.self) { try t.reshaped([5, 5]) }
        #expect(throws: EngineError.self) { try p.reshaped([24]) }
        #expect(throws: EngineError.self) { try t.permuted([0, 0, 1]) }
        #expect(throws: EngineError.self) { try t.narrowed(2, start: 3, length: 2) }
        #expect(throws: EngineError.self) { try Tensor([1, 2, 3], shape: [2, 2]) }
    }

    @Test func opsRefuseMismatchedShapesWithTypedErrors() throws {
        let cpu = CPUBackend.shared
        let x = try Tensor([Float](repeating: 1, count: 12), shape: [3, 4])
        let w = try Tensor([Float](repeating: 1, count: 15), shape: [3, 5])
        #expect { _ = try cpu.run(.linear, [x, w]) } throws: { ($0 as? EngineError)?.kind == .shapeMismatch }
        #expect { _ = try cpu.run(.add, [x, w]) } throws: { ($0 as? EngineError)?.kind == .shapeMismatch }
        #expect { _ = try cpu.run(.softmax(axis: 5), [x]) } throws: { ($0 as? EngineError)?.kind == .invalidArgument }
        let ids = try Tensor(int64s: [0, 7], shape: [2])
        #expect { _ = try cpu.run(.embedding, [x, ids]) } throws: { "\($0)".contains("id 7") }
        #expect { _ = try cpu.run(.split(sizes: [1, 1], axis: 0), [x]) } throws: { ($0 as? EngineError)?.kind == .shapeMismatch }
    }

    /// The seeded generator: the same numbers for a seed, different for another, standard normal in distribution.
    @Test func seededNormalsAreRepeatableAndStandard() throws {
        let cpu = CPUBackend.shared
        let a = try cpu.run(.randomNormal(shape: [100_001], seed: 42), [])[0].floats()
        let b = try cpu.run(.randomNormal(shape: [100_001], seed: 42), [])[0].floats()
        let c = try cpu.run(.randomNormal(shape: [100_001], seed: 43), [])[0].floats()
        #expect(a == b && a != c)
        let mean = a.reduce(0.0) { $0 + Double($1) } / Double(a.count)
        let variance = a.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(a.count)
        #expect(abs(mean) < 0.01 && abs(variance - 1) < 0.02)
        #expect(a.allSatisfy { $0.isFinite })
        // A prefix of a longer draw is the shorter draw: samples depend on their index only.
        #expect(Array(a.prefix(10)) == (try cpu.run(.randomNormal(shape: [10], seed: 42), [])[0].floats()))
    }

    @Test func narrowFormatsRoundTripEveryByte() {
        for byte in 0...255 {
            for format in [Float8Format.e4m3, .e5m2] {
                let value = format.decode(UInt8(byte))
                if value.isNaN { continue }
                if value.isInfinite { continue }
                #expect(format.encode(value) == UInt8(byte) || (value == 0), "\(format) byte \(byte)")
            }
        }
        #expect(BFloat16(Float(1.00390625)).float == 1)  // a tie rounds to even
        #expect(BFloat16(Float.nan).bitPattern == 0x7FC0)
        #expect(Float8Format.e4m3.encode(1e9) == 0x7E && Float8Format.e4m3.encode(-.infinity) == 0xFE)
    }
}
