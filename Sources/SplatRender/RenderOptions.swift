/// How to render, with gsplat 1.5.2/1.5.3 "classic" semantics as the defaults (`flashworld-model.md` §9).
public struct RenderOptions: Sendable, Equatable {
    /// Composited behind the splats: `C + T · background`. FlashWorld renders on white.
    public var background: SIMD3<Float>
    /// The SH degree to shade with; `nil` uses the cloud's own. Higher than the cloud's is clamped to it.
    public var shDegree: Int?
    /// Added to the 2D covariance diagonal: a low-pass filter so every splat covers about a pixel.
    public var eps2d: Float
    /// The most one splat may cover a pixel: 0.999 in gsplat 1.5.2/1.5.3, which FlashWorld was trained with (newer
    /// gsplat uses 0.99).
    public var maxAlpha: Float

    public init(background: SIMD3<Float> = SIMD3(1, 1, 1), shDegree: Int? = nil, eps2d: Float = 0.3, maxAlpha: Float = 0.999) {
        self.background = background
        self.shDegree = shDegree
        self.eps2d = eps2d
        self.maxAlpha = maxAlpha
    }
}

/// Fixed parts of the gsplat rasterization model.
public enum RasterizationConstants {
    /// Pixels are processed in square tiles of this side, and splats are binned per tile.
    public static let tileSize = 16
    /// A splat is skipped at a pixel where its alpha is below this (and culled where its opacity is).
    public static let alphaThreshold: Float = 1.0 / 255.0
    /// A pixel stops accumulating once its transmittance would fall to this or below.
    public static let transmittanceFloor: Float = 1e-4
    /// The bounding extent in standard deviations before the opacity-aware tightening.
    public static let maxExtent: Float = 3.33
    /// The frustum guard band: the projection Jacobian is evaluated at most this fraction of the half field of view
    /// outside the image.
    public static let frustumGuardBand: Float = 0.3
}

/// Why a render was refused.
public struct RenderError: Error, Equatable, Sendable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// A size of zero, or one too large to hold in memory.
        case invalidSize
        /// A camera that cannot project: non-finite values, focal lengths that are not positive, bad depth limits.
        case invalidCamera
        /// More splat-tile overlaps than this machine can hold.
        case tooManyIntersections
        /// A scene with nothing in it.
        case emptyScene
    }

    public var kind: Kind
    public var message: String

    public init(_ kind: Kind, _ message: String) {
        self.kind = kind
        self.message = message
    }

    public var description: String { message }
}
