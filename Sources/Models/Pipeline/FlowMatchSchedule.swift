/// FlashWorld's four-step flow-matching schedule (`flashworld-model.md` §6): indices 0, 250, 500, 750 of the 1000-step
/// schedule with static shift 3, giving σ = 1, 0.9, 0.75, 0.5 and timesteps 1000·σ.
public enum FlowMatchSchedule {
    public static let trainSteps = 1000
    public static let shift = 3.0
    public static let stepIndices = [0, 250, 500, 750]

    /// σ for schedule index `i`: the base `(1000 − i)/1000`, shifted by `3s / (1 + 2s)`.
    public static func sigma(index i: Int) -> Double {
        let s = Double(trainSteps - i) / Double(trainSteps)
        return shift * s / (1 + (shift - 1) * s)
    }

    public static var sigmas: [Double] { stepIndices.map { sigma(index: $0) } }
    public static var timesteps: [Double] { sigmas.map { 1000 * $0 } }

    /// The step counts a generation may ask for: FlashWorld's 4, or 2 at indices 0 and 500 (σ = 1, 0.75), the
    /// faster mode users ask for. The model was distilled for 4, so 2 is quicker, not as good.
    public static let supportedStepCounts = [2, 4]

    public static func stepIndices(steps: Int) -> [Int] { steps == 2 ? [0, 500] : stepIndices }
    public static func sigmas(steps: Int) -> [Double] { stepIndices(steps: steps).map { sigma(index: $0) } }
}
