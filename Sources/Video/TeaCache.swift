import EngineCore
import Models

/// Which half of classifier-free guidance a transformer pass is.
enum GuidanceBranch: Hashable { case conditional, unconditional }

/// VideoX-Fun's TeaCache for Wan (`service-and-ui.md` §3.3): on the conditional pass, the relative L1 change of the
/// timestep modulation since the last step, through Wan2.2's rescaling polynomial, accumulates; while the sum stays
/// under the threshold the blocks are skipped and each branch adds the residual (blocks' output minus input) it kept
/// when they last ran. The first `startSteps` steps always run, and the unconditional pass follows the conditional
/// decision but for the last step's (`computesUnconditional`). Deciding reads one number back from the device per step.
struct TeaCache {
    /// The rescaling polynomial for every Wan2.2 model, highest degree first.
    static let wan22Coefficients = [8.10705460e+03, 2.13393892e+03, -3.72934672e+02, 1.66203073e+01, -4.17769401e-02]

    let threshold: Double?
    let startSteps: Int
    let steps: Int
    private var previousModulation: Tensor?
    private(set) var accumulated = 0.0
    private var residuals: [GuidanceBranch: Tensor] = [:]

    init(acceleration: VideoAcceleration, steps: Int) {
        threshold = acceleration.teaCacheThreshold
        // The first step has nothing to compare with, so it always runs.
        startSteps = max(acceleration.teaCacheStartSteps, 1)
        self.steps = steps
    }

    /// Whether the unconditional pass of `step` runs, given the conditional decision: it follows it, except at the
    /// last step, where VideoX-Fun's cache has already reset after the conditional pass and so always runs it.
    func computesUnconditional(step: Int, conditional: Bool) -> Bool {
        conditional || (threshold != nil && step == steps - 1)
    }

    static func rescaled(_ distance: Double) -> Double { wan22Coefficients.reduce(0) { $0 * distance + $1 } }

    /// Whether step `step` runs the blocks. Without a threshold, always.
    mutating func shouldCompute(step: Int, timestep: Tensor, transformer: WanTransformer, on backend: any Backend) throws(EngineError) -> Bool {
        guard threshold != nil else { return true }
        // The modulation of the last frame's tokens, as VideoX-Fun takes the last token's when timesteps are per token.
        let projection = try transformer.timestepModulation(timestep, on: backend).projection
        let modulation = try backend.cast(try projection.narrowed(0, start: projection.shape[0] - 1, length: 1), to: .float32)
        defer { previousModulation = modulation }
        guard step >= startSteps, let previous = previousModulation else {
            accumulated = 0
            return true
        }
        let change = try backend.run(.mean(axes: [], keepDims: false), try backend.run(.abs, [try backend.subtract(modulation, previous)]))[0]
        let size = try backend.run(.mean(axes: [], keepDims: false), try backend.run(.abs, [previous]))[0]
        let values = try backend.readFloats(try backend.concat([try change.reshaped([1]), try size.reshaped([1])], axis: 0))
        accumulated += Self.rescaled(Double(values[0]) / Double(values[1]))
        if accumulated < threshold! { return false }
        accumulated = 0
        return true
    }

    /// One transformer pass for `branch`: the blocks run (keeping their residual when TeaCache is on) or are replaced
    /// by the residual this branch kept.
    mutating func run(
        _ branch: GuidanceBranch, compute: Bool, input: Tensor, timestep: Tensor, text: Tensor, transformer: WanTransformer, on backend: any Backend
    ) throws(EngineError) -> Tensor {
        if !compute, let residual = residuals[branch] {
            return try transformer(input, timestep: timestep, text: text, on: backend, blocks: .reuse(residual: residual))
        }
        guard threshold != nil else { return try transformer(input, timestep: timestep, text: text, on: backend) }
        var residual: Tensor?
        let output = try withUnsafeMutablePointer(to: &residual) { pointer throws(EngineError) in
            try transformer(input, timestep: timestep, text: text, on: backend, blocks: .runKeepingResidual(pointer))
        }
        residuals[branch] = residual
        return output
    }
}
