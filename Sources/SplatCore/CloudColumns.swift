/// Raw pointers to a cloud's columns, for bulk readers and kernels that fill or scan millions of Gaussians; valid only
/// inside `GaussianCloud.withColumns`.
public struct CloudColumns: @unchecked Sendable {
    public let count: Int
    public let shStride: Int
    public let positions: UnsafeMutablePointer<Float>
    public let logScales: UnsafeMutablePointer<Float>
    public let rotations: UnsafeMutablePointer<Float>
    public let logitOpacities: UnsafeMutablePointer<Float>
    public let sh: UnsafeMutablePointer<Float>
}

extension GaussianCloud {
    /// Runs `body` with pointers to every column (typed errors pass through).
    public mutating func withColumns<R, E: Error>(_ body: (CloudColumns) throws(E) -> R) throws(E) -> R {
        let (n, stride) = (count, shStride)
        let result: Result<R, E> = positions.withUnsafeMutableBufferPointer { p in
            logScales.withUnsafeMutableBufferPointer { s in
                rotations.withUnsafeMutableBufferPointer { r in
                    logitOpacities.withUnsafeMutableBufferPointer { o in
                        sh.withUnsafeMutableBufferPointer { h in
                            // An empty array may have no storage; a dangling-free dummy keeps the pointers non-nil.
                            var dummy: Float = 0
                            return withUnsafeMutablePointer(to: &dummy) { d in
                                let columns = CloudColumns(
                                    count: n, shStride: stride, positions: p.baseAddress ?? d,
                                    logScales: s.baseAddress ?? d, rotations: r.baseAddress ?? d,
                                    logitOpacities: o.baseAddress ?? d, sh: h.baseAddress ?? d)
                                return Result { () throws(E) in try body(columns) }
                            }
                        }
                    }
                }
            }
        }
        return try result.get()
    }
}

/// Read-only pointers to a cloud's columns, for kernels that only scan them (no copy-on-write copy is made); valid
/// only inside `GaussianCloud.withReadOnlyColumns`.
public struct ReadOnlyCloudColumns: @unchecked Sendable {
    public let count: Int
    public let shStride: Int
    public let positions: UnsafePointer<Float>
    public let logScales: UnsafePointer<Float>
    public let rotations: UnsafePointer<Float>
    public let logitOpacities: UnsafePointer<Float>
    public let sh: UnsafePointer<Float>
}

extension GaussianCloud {
    /// Runs `body` with read-only pointers to every column.
    public func withReadOnlyColumns<R>(_ body: (ReadOnlyCloudColumns) -> R) -> R {
        let (n, stride) = (count, shStride)
        return positions.withUnsafeBufferPointer { p in
            logScales.withUnsafeBufferPointer { s in
                rotations.withUnsafeBufferPointer { r in
                    logitOpacities.withUnsafeBufferPointer { o in
                        sh.withUnsafeBufferPointer { h in
                            var dummy: Float = 0
                            return withUnsafePointer(to: &dummy) { d in
                                body(
                                    ReadOnlyCloudColumns(
                                        count: n, shStride: stride, positions: p.baseAddress ?? d,
                                        logScales: s.baseAddress ?? d, rotations: r.baseAddress ?? d,
                                        logitOpacities: o.baseAddress ?? d, sh: h.baseAddress ?? d))
                            }
                        }
                    }
                }
            }
        }
    }
}
