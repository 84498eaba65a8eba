import EngineCPU
import EngineCheck
import EngineCore
import Testing

@testable import Models

/// A tiny Wan2.2-style `AutoencoderKLWan` saved by diffusers (`tools/models/make_vae_fixtures.py`), single frames.
struct WanVAEParityTests {
    func load() throws -> (WanVAEConfiguration, [String: Tensor], [String: Tensor]) {
        let configuration = try readConfiguration(WanVAEConfiguration.self, at: ModelFixtures.path("vae-tiny/config.json"))
        return (configuration, try ModelFixtures.tensors("vae-tiny/inputs.safetensors"), try ModelFixtures.tensors("vae-tiny/outputs.safetensors"))
    }

    /// Drops the time axis of a single-frame `[b, c, 1, h, w]` tensor.
    func frame(_ t: Tensor) throws -> Tensor { try t.reshaped([t.shape[0], t.shape[1], t.shape[3], t.shape[4]]) }

    @Test func encoderMatchesDiffusers() throws {
        let (configuration, inputs, expected) = try load()
        let weights = try ModelWeights.load(
            WanVAEEncoder.parameterSpecs(configuration), from: ModelFixtures.path("vae-tiny/diffusion_pytorch_model.safetensors"), strict: false)
        let encoder = try WanVAEEncoder(configuration: configuration, weights: weights)
        let (mean, logvar) = try encoder(try frame(inputs["image"]!), on: CPUBackend.shared)
        let meanError = relativeError(mean, try frame(expected["posterior_mean"]!))
        let logvarError = relativeError(logvar, try frame(expected["posterior_logvar"]!))
        #expect(meanError < 1e-4, "mean: relative error \(meanError)")
        #expect(logvarError < 1e-4, "logvar: relative error \(logvarError)")
    }

    @Test func decoderMatchesDiffusers() throws {
        let (configuration, inputs, expected) = try load()
        let weights = try ModelWeights.load(
            WanVAEDecoder.parameterSpecs(configuration), from: ModelFixtures.path("vae-tiny/diffusion_pytorch_model.safetensors"), strict: false)
        let decoder = try WanVAEDecoder(configuration: configuration, weights: weights)
        let image = try decoder(try frame(inputs["latent"]!), on: CPUBackend.shared)
        // The config says clip_output false, which FlashWorld's vendored VAE honours; diffusers 0.42.1 ignores it and
        // always clamps, so compare with its unclamped output (and the clamp separately).
        #expect(configuration.clipOutput == false)
        let error = relativeError(image, try frame(expected["decode_sample_unclamped"]!))
        #expect(error < 1e-4, "relative error \(error)")
        var clamped = configuration
        clamped.clipOutput = true
        let clampedImage = try WanVAEDecoder(configuration: clamped, weights: weights)(try frame(inputs["latent"]!), on: CPUBackend.shared)
        #expect(relativeError(clampedImage, try frame(expected["decode_sample"]!)) < 1e-4)
    }
}

/// DupUp3D added to the decoder's activations as one add over a strided view of the shortcut gives exactly what the
/// repeated-and-permuted copy gives, for every repeat count the view takes and the ones it does not.
struct DuplicatedUpTests {
    @Test(arguments: [(8, 8), (8, 4), (8, 16), (4, 16), (6, 6)])
    func theStridedViewEqualsTheCopies(_ channels: Int, _ out: Int) throws {
        let cpu = CPUBackend.shared
        for temporal in [false, true] {
            for first in [true, false] {
                let (t, h, w) = (2, 3, 5)
                let shortcut = try cpu.run(.randomNormal(shape: [t, channels, h, w], seed: 7), [])[0]
                let kept = temporal && !first ? 2 : 1
                let x = try cpu.run(.randomNormal(shape: [t * kept, out, 2 * h, 2 * w], seed: 8), [])[0]
                let copied = try cpu.add(x, try WanVAELayers.duplicatedUp(shortcut, to: out, temporal: temporal, firstChunk: first, on: cpu))
                let viewed = try WanVAELayers.addingDuplicatedUp(x, shortcut, to: out, temporal: temporal, firstChunk: first, on: cpu)
                #expect(viewed.shape == copied.shape && viewed.floats() == copied.floats(), "\(channels) → \(out), temporal \(temporal), first \(first)")
            }
        }
    }
}
