import EngineCore
import Testing

@testable import EngineCUDA

/// The host side of kernel launches, checked without a GPU: parameters packed as the C ABI lays them out, and the
/// axis merging every strided copy relies on.
struct KernelArgumentTests {
    @Test func parametersFollowCAlignment() throws {
        var a = KernelArguments()
        a.append(Int32(7))
        a.append(UInt64(0x1122))  // aligned to 8: 4 bytes of padding first
        a.append(Float(1.5))
        #expect(a.bytes.count == 20)
        #expect(Array(a.bytes[0..<4]) == [7, 0, 0, 0])
        #expect(Array(a.bytes[4..<8]) == [0, 0, 0, 0])
        #expect(Array(a.bytes[8..<10]) == [0x22, 0x11])
        // A View: 8 shapes and 8 strides (64-bit), rank and dtype, 8 magic numbers, 8 shifts and the fast flag
        // (32-bit): 204 bytes, padded to 208.
        let t = try Tensor([Float](repeating: 0, count: 6), shape: [2, 3], dtype: .bfloat16)
        a.view(try t.transposed(0, 1))
        #expect(a.bytes.count == 24 + 208)
        func uint32(at offset: Int) -> UInt32 { a.bytes[offset..<(offset + 4)].reversed().reduce(0) { $0 << 8 | UInt32($1) } }
        #expect(uint32(at: 24 + 136) == FastDivider(3)!.magic && uint32(at: 24 + 168 + 4) == FastDivider(2)!.shift, "dividers per axis")
        #expect(uint32(at: 24 + 200) == 1, "every size takes the 32-bit path")
        func int64(at offset: Int) -> Int64 { a.bytes[offset..<(offset + 8)].reversed().reduce(0) { $0 << 8 | Int64($1) } }
        #expect(int64(at: 24) == 3 && int64(at: 32) == 2 && int64(at: 40) == 1, "shape, padded with 1s")
        #expect(int64(at: 24 + 64) == 1 && int64(at: 24 + 72) == 3, "strides of the transposed view")
        #expect(a.bytes[24 + 128] == 2, "rank")
        #expect(a.bytes[24 + 132] == 2, "dtype code of bfloat16")
    }

    /// The kernels' 32-bit division: exact for every dividend below 2^31, at the edges of each divisor's range.
    @Test func fastDivisionIsExact() throws {
        var divisors = Array(1...1100) + [1320, 5280, 84480, 2_027_520, 1 << 20, (1 << 30) + 1, Int(Int32.max)]
        divisors += (1...30).flatMap { [(1 << $0) - 1, 1 << $0, (1 << $0) + 1] }
        var random = SystemRandomNumberGenerator()
        for d in divisors {
            let divider = try #require(FastDivider(d))
            var dividends: [UInt32] = [0, 1, UInt32(Int32.max), UInt32(Int32.max) - 1]
            for k in [UInt64(1), 2, 3, 1000] where UInt64(d) * k < 1 << 31 { dividends += [UInt32(UInt64(d) * k), UInt32(UInt64(d) * k - 1)] }
            dividends += (0..<64).map { _ in UInt32.random(in: 0...UInt32(Int32.max), using: &random) }
            for n in dividends {
                #expect(divider.divide(n) == n / UInt32(d), "\(n) / \(d)")
            }
        }
        #expect(FastDivider(0) == nil && FastDivider(1 << 31) == nil, "outside the 32-bit path")
        // A size past 2^31 sends the whole view to the 64-bit path.
        var a = KernelArguments()
        a.view(shape: [3, 1 << 31], strides: [0, 1], dtype: .bool)
        #expect(a.bytes[200] == 0)
    }

    @Test func contiguousRunsMergeAndBroadcastAxesStay() throws {
        let storage = try Tensor.zeros([2 * 3 * 4])
        let dense = Tensor(storage: storage.storage, dtype: .float32, shape: [2, 3, 4])
        let (a, b) = CUDABackend.mergedAxes(dense, dense)
        #expect(a.shape == [24] && a.strides == [1] && b.shape == [24])
        // A permuted source against a dense target: nothing merges across the swapped axes.
        let permuted = try dense.permuted([0, 2, 1])
        let target = Tensor(storage: storage.storage, dtype: .float32, shape: [2, 4, 3])
        let (p, q) = CUDABackend.mergedAxes(permuted, target)
        #expect(p.shape == [2, 4, 3] && p.strides == [12, 1, 4] && q.strides == [12, 3, 1])
        // Stride-0 (broadcast) axes merge only with other broadcast axes; size-1 axes vanish.
        let row = Tensor(storage: storage.storage, dtype: .float32, shape: [5, 1, 4], strides: [0, 9, 1], offset: 3)
        let out = Tensor(storage: storage.storage, dtype: .float32, shape: [5, 1, 4])
        let (r, o) = CUDABackend.mergedAxes(row, out)
        #expect(r.shape == [5, 4] && r.strides == [0, 1] && r.offset == 3 && o.strides == [4, 1])
    }

    /// A per-channel broadcast against a dense map: the batch and the spatial axes each fold into one.
    @Test func broadcastOperandsMergeWithTheOutput() throws {
        let storage = try Tensor.zeros([1])
        let shape = [24, 256, 60, 88]
        let dense = Tensor(storage: storage.storage, dtype: .bfloat16, shape: shape)
        let channel = Tensor(storage: storage.storage, dtype: .float32, shape: shape, strides: [0, 1, 0, 0])
        let merged = CUDABackend.mergedAxes([dense, channel, dense])
        #expect(merged[0].shape == [24, 256, 5280] && merged[0].strides == [256 * 5280, 5280, 1])
        #expect(merged[1].strides == [0, 1, 0])
        #expect(merged.allSatisfy { $0.count == 24 * 256 * 60 * 88 })
    }
}
