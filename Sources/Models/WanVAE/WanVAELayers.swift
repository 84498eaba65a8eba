import EngineCore
import ModelLoading

/// The building blocks the Wan VAE's encoder, decoder and FlashWorld's reconstruction decoder share, for single frames:
/// causal 3D convolutions reduced to their last temporal tap (`flashworld-model.md` §3.1), residual blocks
/// (RMS norm, SiLU, convolution, twice, plus a 1x1 shortcut when the width changes) and the single-head attention block.
struct WanVAELayers {
    let weights: ModelWeights

    /// A causal convolution reduced to 2D: its weight's last temporal tap (1x1x1 and 2D weights as they are).
    func convolution(_ name: String, _ x: Tensor, padding: Int, on backend: any Backend) throws(EngineError) -> Tensor {
        var weight = weights["\(name).weight"]
        if weight.rank == 5 {
            let taps = weight.shape[2]
            weight = try backend.contiguous(try weight.narrowed(2, start: taps - 1, length: 1))
            weight = try weight.reshaped([weight.shape[0], weight.shape[1], weight.shape[3], weight.shape[4]])
        }
        return try backend.run(.conv2d(stride: [1], padding: [padding]), [x, weight, weights["\(name).bias"]])[0]
    }

    func residualBlock(_ name: String, _ x: Tensor, on backend: any Backend) throws(EngineError) -> Tensor {
        let shortcut = weights.optional("\(name).conv_shortcut.weight") == nil ? x : try convolution("\(name).conv_shortcut", x, padding: 0, on: backend)
        var h = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [x, weights["\(name).norm1.gamma"]])[0]
        h = try convolution("\(name).conv1", h, padding: 1, on: backend)
        h = try backend.run(.channelRMSNormSiLU(eps: 1e-12), [h, weights["\(name).norm2.gamma"]])[0]
        h = try convolution("\(name).conv2", h, padding: 1, on: backend)
        return try backend.add(h, shortcut)
    }

    /// Single-head self-attention over the pixels, with a 1x1 qkv and output projection, plus the input.
    func attentionBlock(_ name: String, _ x: Tensor, on backend: any Backend) throws(EngineError) -> Tensor {
        let (b, ch, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let normed = try backend.run(.channelRMSNorm(eps: 1e-12), [x, weights["\(name).norm.gamma"]])[0]
        let qkv = try backend.run(.conv2d(stride: [1], padding: [0]), [normed, weights["\(name).to_qkv.weight"], weights["\(name).to_qkv.bias"]])[0]
        // [b, 3c, h·w] → [b, 1, h·w, 3c], then q, k, v along the channels.
        let tokens = try backend.permuted(try qkv.reshaped([b, 1, 3 * ch, h * wd]), [0, 1, 3, 2])
        let parts = try backend.split(tokens, sizes: [ch, ch, ch], axis: 3)
        let attended = try backend.attention(parts[0], parts[1], parts[2])
        let image = try backend.permuted(try attended.reshaped([b, h * wd, ch]), [0, 2, 1]).reshaped([b, ch, h, wd])
        let projected = try backend.run(.conv2d(stride: [1], padding: [0]), [image, weights["\(name).proj.weight"], weights["\(name).proj.bias"]])[0]
        return try backend.add(projected, x)
    }
}

extension WanVAELayers {
    /// `DupUp3D` over frames `[t, c, h, w]`: each channel repeated, regrouped as (out, time, row, column) factors,
    /// the time factor spread into frames and the row and column factors over a 2x larger image. On a first chunk
    /// (one latent frame; or each image of a batch of single frames) only the last time factor is kept, as diffusers
    /// drops the frames before it.
    /// `x + duplicatedUp(shortcut, …)` in one elementwise add: when each output channel's source channel is an
    /// affine function of its (out, time, row, column) factors, which it is whenever the repeat count is a power of
    /// two no larger than the factors' product (the Wan decoders' every case), DupUp3D is a strided view of the
    /// shortcut (stride 0 along the factors the repeat swallows), read by the add as it goes, with no repeated copy
    /// and no permuted copy. Other shapes take `duplicatedUp`.
    static func addingDuplicatedUp(
        _ x: Tensor, _ shortcut: Tensor, to outChannels: Int, temporal: Bool, firstChunk: Bool, on backend: any Backend
    ) throws(EngineError) -> Tensor {
        let (t, ch, h, w) = (shortcut.shape[0], shortcut.shape[1], shortcut.shape[2], shortcut.shape[3])
        let ft = temporal ? 2 : 1
        let product = outChannels * ft * 4
        let repeats = ch > 0 && product % ch == 0 ? product / ch : 0
        let kept = firstChunk && ft > 1 ? 1 : ft
        guard repeats > 0, repeats.nonzeroBitCount == 1, repeats <= 4 * ft, shortcut.isContiguous, x.shape == [t * kept, outChannels, 2 * h, 2 * w]
        else {
            return try backend.add(x, try duplicatedUp(shortcut, to: outChannels, temporal: temporal, firstChunk: firstChunk, on: backend))
        }
        // Source channel = ((o·ft + k)·2 + row)·2 + column, over the repeat count: each factor's place value over the
        // repeats where it is at least that, else 0 (the lower factors together stay below the repeat count).
        func channels(_ place: Int) -> Int { place >= repeats ? place / repeats : 0 }
        let c = shortcut.strides[1]
        let view = Tensor(
            storage: shortcut.storage, dtype: shortcut.dtype, shape: [t, kept, outChannels, h, 2, w, 2],
            strides: [shortcut.strides[0], channels(4) * c, channels(4 * ft) * c, shortcut.strides[2], channels(2) * c, shortcut.strides[3], channels(1) * c],
            offset: shortcut.offset + channels(4) * (ft - kept) * c)
        return try backend.add(try x.reshaped([t, kept, outChannels, h, 2, w, 2]), view).reshaped(x.shape)
    }

    static func duplicatedUp(_ x: Tensor, to outChannels: Int, temporal: Bool, firstChunk: Bool, on backend: any Backend) throws(EngineError) -> Tensor {
        let (t, ch, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let ft = temporal ? 2 : 1, fs = 2
        let repeats = outChannels * ft * fs * fs / ch
        let copies = try x.reshaped([t, ch, 1, h, w])
        var repeated = try backend.concat(Array(repeating: copies, count: repeats), axis: 2).reshaped([t, outChannels, ft, fs, fs, h, w])
        var kept = ft
        if firstChunk && ft > 1 {
            repeated = try repeated.narrowed(2, start: ft - 1, length: 1)
            kept = 1
        }
        return try backend.permuted(repeated, [0, 2, 1, 5, 3, 6, 4]).reshaped([t * kept, outChannels, h * fs, w * fs])
    }
}

/// Builds the VAE's parameter lists: a convolution is a weight and a bias, a residual block two norms, two 3x3x3
/// convolutions and a 1x1x1 shortcut when the width changes.
struct WanVAESpecs {
    var list: [ParameterSpec] = []

    mutating func convolution(_ name: String, _ o: Int, _ i: Int, _ kernel: [Int]) {
        list.append(ParameterSpec("\(name).weight", shape: [o, i] + kernel))
        list.append(ParameterSpec("\(name).bias", shape: [o]))
    }

    mutating func residual(_ name: String, _ i: Int, _ o: Int) {
        list.append(ParameterSpec("\(name).norm1.gamma", shape: [i, 1, 1, 1]))
        convolution("\(name).conv1", o, i, [3, 3, 3])
        list.append(ParameterSpec("\(name).norm2.gamma", shape: [o, 1, 1, 1]))
        convolution("\(name).conv2", o, o, [3, 3, 3])
        if i != o { convolution("\(name).conv_shortcut", o, i, [1, 1, 1]) }
    }
}
