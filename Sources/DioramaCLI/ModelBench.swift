import ArgumentParser
import Cameras
import EngineCUDA
import EngineCore
import FlashWorld
import Foundation
import ModelLoading
import Models
import Video

/// Every FlashWorld module at full size with random weights built from the published configurations, timed per call.
struct ModelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "models",
        abstract: "Time each FlashWorld module at full size (random weights) and its peak memory, beside the reference.",
        discussion: helpText(
            """
            Builds the transformer (Wan2.2-TI2V-5B widened to 1174/1072 channels), UMT5-XXL, the Wan2.2 VAE encoder \
            and the reconstruction decoder with random weights on the device, in --precision (fp8 by default on \
            Hopper: FP8 block linears, bf16 elsewhere), all resident at once. Then times one transformer pass on \
            7,920 tokens with 512 text tokens, UMT5-XXL on 512 tokens, the VAE encoder on --frames images and the \
            reconstruction decoder on --frames frames (GPU time from CUDA events; the median of --repeat runs after \
            a warm-up), with the peak device memory while each runs. The reference's per-call times on the same GPU \
            model (FlashWorld's PyTorch code, reference-speed.md) are printed beside them.
            """))

    @OptionGroup var device: DeviceOptions

    @Option(help: "Timed runs per module after one warm-up; the median is reported.")
    var `repeat` = 3

    @Option(help: "Modules to run, comma-separated: text, transformer, vae, decoder.")
    var modules = "text,transformer,vae,decoder"

    @Option(help: "Frames (views).")
    var frames = 24

    @Option(help: "Image size, WIDTHxHEIGHT.")
    var size = ImageSize.flashWorld

    @Flag(help: "Print JSON lines.")
    var json = false

    @Flag(help: "After timing, run each module once more with every op timed alone, and print where its time goes.")
    var profile = false

    func validate() throws {
        let known: Set = ["text", "transformer", "vae", "decoder"]
        guard Set(selected).isSubset(of: known), !selected.isEmpty else { throw ValidationError("--modules takes text, transformer, vae, decoder") }
        guard `repeat` > 0, frames > 0, size.width % 32 == 0, size.height % 32 == 0 else {
            throw ValidationError("--repeat and --frames must be positive and --size multiples of 32")
        }
    }

    var selected: [String] { modules.split(separator: ",").map { String($0) } }

    /// The reference's milliseconds per call (reference-speed.md), keyed by GPU.
    static let reference: [String: [String: Double]] = [
        "H100": ["text": 74, "transformer": 305.4, "vae": 105.2, "decoder": 322.2],
        "H200": ["text": 40, "transformer": 278.6, "vae": 95.6, "decoder": 290.3],
    ]

    func run() throws {
        let backend = try device.backend()
        let precision = device.modelPrecision(for: backend)
        let gpu = backend as? CUDABackend
        let deviceName = gpu?.name ?? "CPU"
        let peer = Self.reference.first { deviceName.contains($0.key) }
        if !json { print("\(deviceName), \(precision), \(frames) frames at \(size.width)x\(size.height)") }
        var random = RandomWeights(backend: backend)
        func milliseconds(_ body: () throws -> Void) throws -> Double {
            if let gpu { return try gpu.measure(body) }
            let start = monotonicSeconds()
            try body()
            try backend.synchronize()
            return (monotonicSeconds() - start) * 1000
        }

        let (h, w) = (size.height / 16, size.width / 16)
        let vae = WanVAEConfiguration.wan22
        let build = monotonicSeconds()
        var text: UMT5Encoder?, transformer: WanTransformer?, encoder: WanVAEEncoder?, decoder: ReconstructionDecoder?
        if selected.contains("text") {
            let c = UMT5Configuration.umt5XXL
            var specs = UMT5Encoder.parameterSpecs(c)
            if !specs.contains(where: { $0.name == "shared.weight" }) { specs.append(ParameterSpec("shared.weight", shape: [c.vocabSize, c.dModel])) }
            text = try UMT5Encoder(configuration: c, weights: try random.weights(specs, as: precision.textEncoder))
            text!.activationType = precision.textEncoder
        }
        if selected.contains("transformer") {
            let c = WanTransformerConfiguration.flashWorld
            transformer = try WanTransformer(
                configuration: c,
                weights: try random.weights(WanTransformer.parameterSpecs(c), as: precision.transformer, linearType: precision.transformerBlockLinears))
            transformer!.activationType = precision.transformer
        }
        if selected.contains("vae") {
            encoder = try WanVAEEncoder(
                configuration: vae,
                weights: try ModelWeights.lastTapConvolutions(try random.weights(WanVAEEncoder.parameterSpecs(vae), as: precision.vaeEncoder), on: backend))
            encoder!.activationType = precision.vaeEncoder
        }
        if selected.contains("decoder") {
            let weights = try ModelWeights.lastTapConvolutions(
                try random.weights(ReconstructionDecoder.parameterSpecs(vae: vae, featureChannels: 1024), as: precision.decoder), on: backend)
            decoder = try ReconstructionDecoder(vae: vae, featureChannels: 1024, weights: try GaussianHead.prepared(weights, on: backend))
            decoder!.activationType = precision.decoder
        }
        try backend.synchronize()
        let resident = backend.memoryStats.active
        if !json {
            print("weights built on \(backend.device) in \(String(format: "%.1f", monotonicSeconds() - build)) s: \(gib(resident)) GiB resident")
        }

        let intrinsics = NormalizedIntrinsics(verticalFieldOfView: 60, width: size.width, height: size.height)
        let cameras = normalizedCameras(
            CameraPath.keyframes([.forward, .orbitLeft, .orbitLeft], intrinsics: intrinsics).resampled(count: frames).cameras).cameras
        var rows: [(name: String, milliseconds: Double, peak: Int)] = []
        /// A module that fails is reported and the others still run.
        func measure(_ name: String, _ body: () throws -> Void) throws {
            do {
                try body()  // warm-up: kernel loading, cuBLASLt heuristics, the allocator's first blocks
                gpu?.resetPeakMemory()
                var times: [Double] = []
                for _ in 0..<`repeat` { times.append(try milliseconds(body)) }
                rows.append((name, times.sorted()[times.count / 2], backend.memoryStats.peak))
                if profile, let gpu {
                    gpu.startOpProfile()
                    try body()
                    let ops = gpu.stopOpProfile()
                    let total = ops.map(\.milliseconds).reduce(0, +)
                    print("\(name): \(String(format: "%.1f", total)) ms in \(ops.map(\.count).reduce(0, +)) ops, timed one by one; the most expensive:")
                    for entry in ops.prefix(15) {
                        print(String(format: "  %8.2f ms %5.1f%% %5d×  ", entry.milliseconds, 100 * entry.milliseconds / max(total, 1e-9), entry.count) + entry.op)
                    }
                }
            } catch {
                printError("\(name): \(error)\n")
                backend.trimMemory()
            }
        }
        if let text {
            let ids = try backend.upload(try Tensor(int64s: (0..<512).map { Int64(($0 * 7919) % 256_000 + 5) }, shape: [1, 512]))
            let mask = try backend.upload(try Tensor(int64s: (0..<512).map { $0 < 40 ? 1 : 0 }, shape: [1, 512]))
            try measure("text") { _ = try text(ids, mask: mask, on: backend) }
        }
        if let transformer {
            let c = transformer.configuration
            let hidden = try backend.randomNormal([1, c.inChannels, frames, h, w], seed: 101)
            let context = try backend.scaled(try backend.randomNormal([1, 512, c.textDim], seed: 102), by: 0.1)
            let timestep = try backend.constant([500], shape: [1])
            try measure("transformer") { _ = try transformer(hidden, timestep: timestep, text: context, on: backend) }
        }
        if let encoder {
            let images = try backend.clamped(try backend.randomNormal([frames, 3, size.height, size.width], seed: 103), min: -1, max: 1)
            try measure("vae") { _ = try encoder(images, on: backend) }
        }
        if let decoder {
            let features = try backend.randomNormal([frames, 1024, h, w], seed: 104)
            let latents = try backend.randomNormal([frames, vae.zDim, h, w], seed: 105)
            try measure("decoder") { _ = try decoder(features: features, latents: latents, cameras: cameras, on: backend) }
        }

        let labels = [
            "text": "UMT5-XXL, 512 tokens", "transformer": "transformer pass, \(frames * h * w / 4) tokens + 512 text",
            "vae": "VAE encoder, \(frames) images", "decoder": "reconstruction decoder, \(frames) frames",
        ]
        for row in rows {
            let reference = peer?.value[row.name]
            if json {
                let ratio = reference.map { String(format: "%.3f", $0 / row.milliseconds) } ?? "null"
                print(#"{"module":"\#(row.name)","ms":\#(String(format: "%.2f", row.milliseconds)),"peak_gib":\#(gib(row.peak)),"reference_ms":\#(reference.map { "\($0)" } ?? "null"),"speedup":\#(ratio)}"#)
            } else {
                let versus = reference.map { String(format: "   reference %.1f ms (%.2fx)", $0, $0 / row.milliseconds) } ?? ""
                print("\(labels[row.name]!): \(String(format: "%.1f", row.milliseconds)) ms, peak \(gib(row.peak)) GiB\(versus)")
            }
        }
        if !json {
            print("peak device memory over all modules: \(gib(rows.map(\.peak).max() ?? 0)) GiB, every module's weights resident (reference: about 42 GiB with its fp32 UMT5)")
            if let gpu { print("linear_fp8: \(gpu.fp8Path)\nattention: \(gpu.attentionPath)") }
        }
    }

}

extension RandomWeights {
    /// A random full-size model made on `backend` by `make`, with how long it took and the memory it holds printed.
    static func build<Model>(on backend: any Backend, precision: ModelPrecision, _ make: (inout RandomWeights) throws -> Model) throws -> Model {
        let started = monotonicSeconds()
        var random = RandomWeights(backend: backend)
        let model = try make(&random)
        try backend.synchronize()
        let name = (backend as? CUDABackend)?.name ?? "CPU"
        print("\(name), \(precision): weights built in \(String(format: "%.1f", monotonicSeconds() - started)) s, \(gib(backend.memoryStats.active)) GiB resident")
        return model
    }
}

/// Random weights for benchmarks, built on the device tensor by tensor (FP8 block linears quantised as they are
/// made), so building never holds more than one float32 tensor.
struct RandomWeights {
    let backend: any Backend
    var seed: UInt64 = 1

    init(backend: any Backend) { self.backend = backend }

    /// Random weights for `specs` in `dtype`; those `linears` names (the transformer's block linears, the text
    /// encoder's linears) in `linearType` instead, FP8 with scales when that is e4m3, each made and converted alone.
    mutating func weights(
        _ specs: [ParameterSpec], as dtype: DType, linearType: DType? = nil, linears: (String) -> Bool = ModelPrecision.isBlockLinearWeight
    ) throws -> ModelWeights {
        var tensors: [String: Tensor] = [:]
        for spec in specs {
            seed += 1
            let n = spec.shape.reduce(1, *)
            let fanIn = spec.shape.count > 1 ? spec.shape.dropFirst().reduce(1, *) : 1
            var values = try backend.randomNormal([n], seed: seed)
            if spec.name.hasSuffix("lrs_mul") {
                values = try backend.constant(GaussianHead.learningRateMultipliers, shape: [n])
            } else if spec.name.hasSuffix("gs_proj.weight") {
                // As the reference initialises the head (what its benchmark renders): a zero projection.
                values = try backend.zeros([n])
            } else if spec.name.hasSuffix("gs_proj.bias") {
                values = try backend.constant(GaussianHead.initialBias, shape: [n])
            } else if spec.shape.count == 1 || spec.name.contains("gamma") || spec.name.contains("scale_shift_table") {
                values = try backend.add(try backend.full([1], value: 1), try backend.scaled(values, by: 0.05))
            } else {
                values = try backend.scaled(values, by: 1 / Float(fanIn).squareRoot())
            }
            values = try values.reshaped(spec.shape)
            let linear = linearType != nil && linears(spec.name)
            if linear && linearType == .float8E4M3 {
                let (quantized, scale) = try ModelPrecision.quantizedFP8(values, on: backend)
                tensors[spec.name] = quantized
                tensors[ModelPrecision.scaleName(spec.name)] = scale
            } else {
                tensors[spec.name] = try backend.cast(values, to: linear ? linearType! : dtype)
            }
        }
        return ModelWeights(tensors, source: "random")
    }

    /// UMT5-XXL (with the shared embedding) in the precision's text type.
    mutating func textEncoder(precision: ModelPrecision) throws -> UMT5Encoder {
        let configuration = UMT5Configuration.umt5XXL
        var specs = UMT5Encoder.parameterSpecs(configuration)
        if !specs.contains(where: { $0.name == "shared.weight" }) {
            specs.append(ParameterSpec("shared.weight", shape: [configuration.vocabSize, configuration.dModel]))
        }
        var text = try UMT5Encoder(
            configuration: configuration,
            weights: try weights(
                specs, as: precision.textEncoder, linearType: precision.textEncoderLinears, linears: ModelPrecision.isTextEncoderLinearWeight))
        text.activationType = precision.textEncoder
        return text
    }

    /// The Wan2.2 VAE encoder, its kernels cut to their last tap.
    mutating func vaeEncoder(_ vae: WanVAEConfiguration, precision: ModelPrecision) throws -> WanVAEEncoder {
        var encoder = try WanVAEEncoder(
            configuration: vae, weights: try ModelWeights.lastTapConvolutions(try weights(WanVAEEncoder.parameterSpecs(vae), as: precision.vaeEncoder), on: backend))
        encoder.activationType = precision.vaeEncoder
        return encoder
    }

    /// FlashWorld at full size (Wan2.2-TI2V-5B widened, UMT5-XXL, the Wan2.2 VAE encoder and the reconstruction
    /// decoder) with random weights in `precision`, and a byte tokenizer over UMT5's vocabulary.
    mutating func flashWorld(precision: ModelPrecision) throws -> FlashWorldModel {
        let vae = WanVAEConfiguration.wan22
        let text = try textEncoder(precision: precision)
        let transformerConfiguration = WanTransformerConfiguration.flashWorld
        var transformer = try WanTransformer(
            configuration: transformerConfiguration,
            weights: try weights(
                WanTransformer.parameterSpecs(transformerConfiguration), as: precision.transformer, linearType: precision.transformerBlockLinears))
        transformer.activationType = precision.transformer
        let encoder = try vaeEncoder(vae, precision: precision)
        let decoderWeights = try ModelWeights.lastTapConvolutions(
            try weights(ReconstructionDecoder.parameterSpecs(vae: vae, featureChannels: 1024), as: precision.decoder), on: backend)
        var decoder = try ReconstructionDecoder(vae: vae, featureChannels: 1024, weights: try GaussianHead.prepared(decoderWeights, on: backend))
        decoder.activationType = precision.decoder
        return try FlashWorldModel(
            name: "random full-size FlashWorld", tokenizer: ByteTokenizer(vocabularySize: text.configuration.vocabSize), textEncoder: text,
            transformer: transformer, vaeEncoder: encoder, reconstruction: decoder, textLength: 512)
    }

    /// Wan2.2-TI2V-5B at full size (UMT5-XXL, the transformer, the Wan2.2 VAE encoder and video decoder) with random
    /// weights in `precision`.
    mutating func wanVideo(precision: ModelPrecision) throws -> WanVideoModel {
        let vae = WanVAEConfiguration.wan22
        let text = try textEncoder(precision: precision)
        let configuration = WanTransformerConfiguration.wan22TI2V
        var transformer = try WanTransformer(
            configuration: configuration,
            weights: try weights(WanTransformer.parameterSpecs(configuration), as: precision.transformer, linearType: precision.transformerBlockLinears))
        transformer.activationType = precision.transformer
        let encoder = try vaeEncoder(vae, precision: precision)
        var decoder = try WanVAEVideoDecoder(
            configuration: vae,
            weights: try WanVAEVideoDecoder.prepared(try weights(WanVAEVideoDecoder.parameterSpecs(vae), as: precision.decoder), on: backend))
        decoder.activationType = precision.decoder
        return try WanVideoModel(
            name: "random full-size Wan2.2-TI2V-5B", tokenizer: ByteTokenizer(vocabularySize: text.configuration.vocabSize), textEncoder: text,
            transformer: transformer, vaeEncoder: encoder, vaeDecoder: decoder, textLength: 512, flowShift: 5, defaults: .wan22)
    }
}
