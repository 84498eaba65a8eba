/// Conversions between float32 and the narrow float formats, bit-exact with PyTorch: round to nearest even, NaN kept
/// as NaN, and saturation for FP8 (values beyond the largest finite become it, as FlashWorld's FP8 path clamps before
/// casting).

/// bfloat16: the top half of a float32.
public struct BFloat16: Sendable, Hashable {
    public var bitPattern: UInt16

    public init(bitPattern: UInt16) { self.bitPattern = bitPattern }

    /// Rounds to nearest, ties to even; NaN becomes PyTorch's canonical 0x7FC0.
    @inlinable public init(_ value: Float) {
        let bits = value.bitPattern
        if value.isNaN {
            bitPattern = 0x7FC0
            return
        }
        let rounding = UInt32(0x7FFF) + ((bits >> 16) & 1)
        bitPattern = UInt16(truncatingIfNeeded: (bits &+ rounding) >> 16)
    }

    @inlinable public var float: Float { Float(bitPattern: UInt32(bitPattern) << 16) }
}

/// The FP8 formats: `exponentBits` + `mantissaBits` + sign, with their largest finite value and NaN encoding.
public enum Float8Format: Sendable {
    case e4m3
    case e5m2

    @inlinable var mantissaBits: Int { self == .e4m3 ? 3 : 2 }
    @inlinable var exponentBias: Int { self == .e4m3 ? 7 : 15 }
    public var largestFinite: Float { self == .e4m3 ? 448 : 57344 }
    /// The byte of the largest finite magnitude.
    @inlinable var largestFiniteBits: UInt8 { self == .e4m3 ? 0x7E : 0x7B }
    @inlinable var nanBits: UInt8 { self == .e4m3 ? 0x7F : 0x7E }

    /// Encodes `value`, saturating at ±largestFinite, rounding to nearest even (subnormals included).
    @inlinable public func encode(_ value: Float) -> UInt8 {
        if value.isNaN { return nanBits }
        let sign: UInt8 = value.sign == .minus ? 0x80 : 0
        let magnitude = min(abs(value), largestFinite)
        // The quantum at this magnitude: 2^(e - mantissaBits), floored at the subnormal step.
        let minExponent = 1 - exponentBias
        let exponent = magnitude == 0 ? minExponent : max(Int(magnitude.exponent), minExponent)
        let quantum = Float(sign: .plus, exponent: exponent - mantissaBits, significand: 1)
        let steps = (magnitude / quantum).rounded(.toNearestOrEven)
        // `steps` counts quanta: subnormal (below 2^mantissaBits) or 1.m × 2^mantissaBits, which may carry into the
        // next binade.
        var e = exponent
        var m = Int(steps)
        if m >= 2 << mantissaBits {
            m >>= 1
            e += 1
        }
        if m < 1 << mantissaBits { return sign | UInt8(m) }  // subnormal (or zero)
        let biased = e + exponentBias
        let bits = UInt8(biased << mantissaBits) | UInt8(m - (1 << mantissaBits))
        return sign | min(bits, largestFiniteBits)
    }

    @inlinable public func decode(_ byte: UInt8) -> Float {
        let negative = byte & 0x80 != 0
        let rest = byte & 0x7F
        let e = Int(rest >> UInt8(mantissaBits))
        let m = Int(rest & UInt8((1 << mantissaBits) - 1))
        let value: Float
        if self == .e4m3 && rest == 0x7F {
            value = .nan
        } else if self == .e5m2 && e == 31 {
            value = m == 0 ? .infinity : .nan
        } else if e == 0 {
            value = Float(m) * Float(sign: .plus, exponent: 1 - exponentBias - mantissaBits, significand: 1)
        } else {
            value = Float(sign: .plus, exponent: e - exponentBias, significand: 1 + Float(m) / Float(1 << mantissaBits))
        }
        return negative ? -value : value
    }
}
