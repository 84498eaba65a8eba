import EngineCore

#if canImport(Glibc)
    import Glibc
#endif

/// A sampler for flow-prediction video models: its timesteps, and one update of the latents from the model's velocity
/// at each of them. Diffusers' schedulers for Wan2.2 (`UniPCMultistepScheduler`, `FlowMatchEulerDiscreteScheduler`),
/// formula for formula; the coefficients are computed in double precision, the tensors stay float32.
public protocol VideoScheduler: Sendable {
    /// The noise level at each step, then the final one (0): `steps + 1` values, descending.
    var sigmas: [Double] { get }
    /// What the transformer is given at each step (`1000·σ`, truncated to an integer for UniPC as diffusers does).
    var timesteps: [Double] { get }
    /// The latents after step `index`, given the model's velocity prediction at that step.
    mutating func step(_ velocity: Tensor, sample: Tensor, index: Int, on backend: any Backend) throws(EngineError) -> Tensor
}

/// Which sampler a video generation uses.
public enum VideoSamplerKind: String, Sendable, CaseIterable, Codable {
    /// UniPC multistep, order 2, bh2, flow prediction: the model's own scheduler (its default).
    case unipc
    /// Flow-match Euler: one velocity evaluation per step, first order.
    case euler

    public func scheduler(steps: Int, shift: Double) -> any VideoScheduler {
        switch self {
        case .unipc: UniPCScheduler(steps: steps, shift: shift)
        case .euler: FlowMatchEulerScheduler(steps: steps, shift: shift)
        }
    }
}

/// The flow-matching time shift `s·σ / (1 + (s − 1)·σ)`.
@inline(__always) func shiftedSigma(_ sigma: Double, shift: Double) -> Double { shift * sigma / (1 + (shift - 1) * sigma) }

/// Diffusers' `UniPCMultistepScheduler` as Wan2.2-TI2V-5B configures it: `use_flow_sigmas`, `flow_shift` 5,
/// `prediction_type` flow, solver order 2 with the `bh2` variant, `predict_x0`, the corrector on every step but the
/// first, `lower_order_final` and a final σ of zero (diffusers 0.37 and later, whose flow sigmas start at 1 − 1e-6).
public struct UniPCScheduler: VideoScheduler {
    public let sigmas: [Double]
    public let timesteps: [Double]
    /// The last two data predictions (x₀), newest last.
    private var dataPredictions: [Tensor] = []
    /// The sample the last predictor started from, for the next step's corrector.
    private var lastSample: Tensor?
    private var lowerOrderSteps = 0
    private var order = 1

    public init(steps: Int, shift: Double = 5, trainSteps: Int = 1000) {
        precondition(steps > 0, "UniPC needs at least one step")
        // linspace(1, 1/T, n + 1) without its last entry, shifted; the first kept just below 1 so log(1 − σ) is finite.
        var sigmas = (0..<steps).map { i -> Double in
            let base = 1 + (1 / Double(trainSteps) - 1) * Double(i) / Double(steps)
            return shiftedSigma(base, shift: shift)
        }
        if abs(sigmas[0] - 1) < 1e-6 { sigmas[0] -= 1e-6 }
        // Diffusers keeps its σ table in float32 and truncates the timesteps (computed in float64) to integers.
        timesteps = sigmas.map { ($0 * Double(trainSteps)).rounded(.towardZero) }
        self.sigmas = (sigmas + [0]).map { Double(Float($0)) }
    }

    /// λ = log(α) − log(σ) with α = 1 − σ for flow sigmas.
    private func lambda(_ sigma: Double) -> Double { log(1 - sigma) - log(sigma) }

    public mutating func step(_ velocity: Tensor, sample: Tensor, index k: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        guard k >= 0, k < timesteps.count else {
            throw EngineError(.invalidArgument, "UniPC: step \(k) is outside the schedule's \(timesteps.count) steps")
        }
        let velocity = try backend.cast(velocity, to: .float32)
        var sample = try backend.cast(sample, to: .float32)
        // Flow prediction's data estimate: x₀ = x − σ·v.
        let prediction = try backend.subtract(sample, try backend.scaled(velocity, by: Float(sigmas[k])))
        if k > 0, let last = lastSample {
            sample = try corrected(prediction, lastSample: last, index: k, order: order, on: backend)
        }
        dataPredictions.append(prediction)
        if dataPredictions.count > 2 { dataPredictions.removeFirst() }
        // Second order while two predictions exist, first order on the last step.
        order = min(2, timesteps.count - k, lowerOrderSteps + 1)
        lastSample = sample
        let next = try predicted(sample, index: k, order: order, on: backend)
        lowerOrderSteps = min(lowerOrderSteps + 1, 2)
        return next
    }

    /// The UniP (bh2) predictor from σ[k] to σ[k + 1].
    private func predicted(_ x: Tensor, index k: Int, order: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        let (sigmaT, sigmaS0) = (sigmas[k + 1], sigmas[k])
        let m0 = dataPredictions[dataPredictions.count - 1]
        let alphaT = 1 - sigmaT
        // At σ = 0, λ is +∞: h_φ₁ = B_h = −1 and the update is exactly x₀.
        guard sigmaT > 0 else { return m0 }
        let h = lambda(sigmaT) - lambda(sigmaS0)
        let hPhi1 = expm1(-h)
        var result = try backend.subtract(
            try backend.scaled(x, by: Float(sigmaT / sigmaS0)), try backend.scaled(m0, by: Float(alphaT * hPhi1)))
        if order == 2 {
            // One difference term with ρ = 1/2 (diffusers hard-codes it for order 2).
            let r = (lambda(sigmas[k - 1]) - lambda(sigmaS0)) / h
            let d1 = try backend.scaled(try backend.subtract(dataPredictions[0], m0), by: Float(1 / r))
            result = try backend.subtract(result, try backend.scaled(d1, by: Float(alphaT * hPhi1 * 0.5)))
        }
        return result
    }

    /// The UniC (bh2) corrector of the sample that arrived at σ[k], using the new data prediction `mt` there.
    private func corrected(_ mt: Tensor, lastSample: Tensor, index k: Int, order: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        let (sigmaT, sigmaS0) = (sigmas[k], sigmas[k - 1])
        let m0 = dataPredictions[dataPredictions.count - 1]
        let alphaT = 1 - sigmaT
        let h = lambda(sigmaT) - lambda(sigmaS0)
        let hh = -h
        let hPhi1 = expm1(hh), bh = hPhi1
        // b_i = φ_i·i!/B_h with φ₁ = h_φ₁/hh − 1 and φ_{i+1} = φ_i/hh − 1/(i+1)!.
        var result = try backend.subtract(
            try backend.scaled(lastSample, by: Float(sigmaT / sigmaS0)), try backend.scaled(m0, by: Float(alphaT * hPhi1)))
        let newest = try backend.subtract(mt, m0)
        if order == 1 {
            return try backend.subtract(result, try backend.scaled(newest, by: Float(alphaT * bh * 0.5)))
        }
        // Order 2: solve [[1, 1], [r, 1]]·ρ = b for the older difference D₁ and the newest one.
        let r = (lambda(sigmas[k - 2]) - lambda(sigmaS0)) / h
        let phi1 = hPhi1 / hh - 1
        let phi2 = phi1 / hh - 0.5
        let b = [phi1 / bh, 2 * phi2 / bh]
        let determinant = 1 - r
        let rho0 = (b[0] - b[1]) / determinant
        let rho1 = (b[1] - r * b[0]) / determinant
        let d1 = try backend.scaled(try backend.subtract(dataPredictions[0], m0), by: Float(1 / r))
        result = try backend.subtract(result, try backend.scaled(d1, by: Float(alphaT * bh * rho0)))
        return try backend.subtract(result, try backend.scaled(newest, by: Float(alphaT * bh * rho1)))
    }
}

/// Diffusers' `FlowMatchEulerDiscreteScheduler` with a static shift: σ from 1 to the shifted σ_min in equal steps,
/// shifted again (as diffusers does), then `x ← x + (σ_next − σ)·v`.
public struct FlowMatchEulerScheduler: VideoScheduler {
    public let sigmas: [Double]
    public let timesteps: [Double]

    public init(steps: Int, shift: Double = 5, trainSteps: Int = 1000) {
        precondition(steps > 0, "flow-match Euler needs at least one step")
        let t = Double(trainSteps)
        let sigmaMax = shiftedSigma(1, shift: shift), sigmaMin = shiftedSigma(1 / t, shift: shift)
        let points = steps == 1 ? [sigmaMax * t] : (0..<steps).map { sigmaMax * t + (sigmaMin * t - sigmaMax * t) * Double($0) / Double(steps - 1) }
        let sigmas = points.map { Double(Float(shiftedSigma($0 / t, shift: shift))) }
        timesteps = sigmas.map { Double(Float($0 * t)) }
        self.sigmas = sigmas + [0]
    }

    public mutating func step(_ velocity: Tensor, sample: Tensor, index k: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        guard k >= 0, k < timesteps.count else {
            throw EngineError(.invalidArgument, "flow-match Euler: step \(k) is outside the schedule's \(timesteps.count) steps")
        }
        let delta = Float(sigmas[k + 1] - sigmas[k])
        return try backend.add(try backend.cast(sample, to: .float32), try backend.scaled(try backend.cast(velocity, to: .float32), by: delta))
    }
}
