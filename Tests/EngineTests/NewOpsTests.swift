import EngineCore
import Glibc
import Testing

@testable import EngineCPU

/// The ops added for device-resident models: elementwise exp, sqrt, abs, clamp, tensors made by `full`, and
/// FlashWorld's FP8 linear as the table's composition.
struct DeviceResidentOpsTests {
    let cpu = CPUBackend.shared

    @Test func elementwiseOpsFollowTheirFormulas() throws {
        let x = try Tensor([-2, -0.5, 0, 0.25, 3, .nan], shape: [6])
        #expect(try cpu.exp(x).floats().prefix(5) == [-2, -0.5, 0, 0.25, 3].map { expf($0) }[...])
        #expect(try cpu.run(.abs, [x])[0].floats().prefix(5) == [2, 0.5, 0, 0.25, 3])
        let clamped = try cpu.clamped(x, min: -1, max: 1).floats()
        #expect(clamped.prefix(5) == [-1, -0.5, 0, 0.25, 1] && clamped[5].isNaN, "clamp keeps NaN")
        #expect(try cpu.sqrt(try Tensor([4, 2.25], shape: [2])).floats() == [2, 1.5])
        let bf16 = try cpu.cast(try Tensor([0.1, 300], shape: [2]), to: .bfloat16)
        #expect(try cpu.clamped(bf16, max: 1).dtype == .bfloat16, "unary ops keep the input's type")
    }

    @Test func fullMakesTensorsOfEveryType() throws {
        #expect(try cpu.full([2, 3], value: 1.5).floats() == [Float](repeating: 1.5, count: 6))
        let ints = try cpu.full([3], value: 7, dtype: .int64)
        #expect(ints.dtype == .int64 && ints.int64s() == [7, 7, 7])
        #expect(try cpu.zeros([0, 4]).count == 0)
        #expect(throws: EngineError.self) { try cpu.full([-1], value: 0) }
    }

    /// §12.1 written out on the host for a small case: the composition must give exactly this.
    @Test func fp8LinearIsTheReferenceQuantisation() throws {
        let xValues: [Float] = (0..<32).map { Float($0 % 7) * 0.37 - 1.1 }
        let wValues: [Float] = (0..<48).map { Float(($0 * 5) % 11) * 0.05 - 0.25 }
        let x = try Tensor(xValues, shape: [2, 16]), w = try Tensor(wValues, shape: [3, 16])
        let bias = try Tensor([0.5, -0.25, 0], shape: [3])
        // Weight: s = 448/amax, Wq = e4m3(W·s), scale 1/s.
        let wAmax = wValues.map(abs).max()!
        let ws = 448 / wAmax
        let wq = try cpu.cast(try Tensor(wValues.map { min(max($0 * ws, -448), 448) }, shape: [3, 16]), to: .float8E4M3)
        let weightScale = try Tensor([1 / ws], shape: [1])
        let out = try cpu.run(.linearFP8, [x, wq, weightScale, bias])[0].floats()
        // Activation (quant.py on bf16): s = bf16(448/amax), q = e4m3(bf16(a·s)).
        let a = xValues.map { BFloat16($0).float }
        let s = BFloat16(448 / a.map(abs).max()!).float
        let q = a.map { Float8Format.e4m3.decode(Float8Format.e4m3.encode(BFloat16($0 * s).float)) }
        let wDecoded = try cpu.cast(wq, to: .float32).floats()
        for row in 0..<2 {
            for column in 0..<3 {
                var sum: Float = 0
                for i in 0..<16 { sum += q[row * 16 + i] * wDecoded[column * 16 + i] }
                let expected = sum * ((1 / ws) * (1 / s)) + [0.5, -0.25, 0][column]
                #expect(abs(out[row * 3 + column] - expected) <= 1e-5 * max(1, abs(expected)), "row \(row) column \(column)")
            }
        }
        #expect(throws: EngineError.self) { try cpu.run(.linearFP8, [x, w, weightScale]) }
    }
}
