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
        // A View: 8 shapes and 8 strides (64-bit), rank and dtype (32-bit): 136 bytes, 8-aligned.
        let t = try Tensor([Float](repeating: 0, count: 6), shape: [2, 3], dtype: .bfloat16)
        a.view(try t.transposed(0, 1))
        #expect(a.bytes.count == 24 + 136)
        func int64(at offset: Int) -> Int64 { a.bytes[offset..<(offset + 8)].reversed().reduce(0) { $0 << 8 | Int64($1) } }
        #expect(int64(at: 24) == 3 && int64(at: 32) == 2 && int64(at: 40) == 1, "shape, padded with 1s")
        #expect(int64(at: 24 + 64) == 1 && int64(at: 24 + 72) == 3, "strides of the transposed view")
        #expect(a.bytes[24 + 128] == 2, "rank")
        #expect(a.bytes[24 + 132] == 2, "dtype code of bfloat16")
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
