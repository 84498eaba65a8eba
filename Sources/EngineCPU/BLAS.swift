import Parallelism

#if canImport(Glibc)
    import Glibc
#endif

/// Single-precision matrix products: OpenBLAS from Debian when it can be loaded (dlopen, so the binary runs where it
/// is absent), otherwise Diorama's own blocked kernel.
enum BLAS {
    typealias SGEMM = @convention(c) (
        Int32, Int32, Int32, Int32, Int32, Int32, Float, UnsafePointer<Float>?, Int32, UnsafePointer<Float>?, Int32,
        Float, UnsafeMutablePointer<Float>?, Int32
    ) -> Void

    /// `cblas_sgemm` from the first library that loads, or nil.
    static let sgemm: SGEMM? = {
        if let disabled = getenv("DIORAMA_NO_BLAS"), String(cString: disabled) == "1" { return nil }
        for name in ["libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3"] {
            guard let handle = dlopen(name, RTLD_NOW | RTLD_LOCAL), let symbol = dlsym(handle, "cblas_sgemm") else {
                continue
            }
            return unsafeBitCast(symbol, to: SGEMM.self)
        }
        return nil
    }()

    static var libraryDescription: String { sgemm == nil ? "built-in kernel (no BLAS library found)" : "OpenBLAS (cblas_sgemm)" }

    static let rowMajor: Int32 = 101
    static let noTrans: Int32 = 111
    static let trans: Int32 = 112

    /// `C[m, n] = A · B (+ C if accumulate)`, row-major; `A` is `[m, k]` (or `[k, m]` when `transposeA`), `B` is
    /// `[k, n]` (or `[n, k]` when `transposeB`).
    static func multiply(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, transposeA: Bool = false, b: UnsafePointer<Float>,
        transposeB: Bool = false, ldb: Int? = nil, c: UnsafeMutablePointer<Float>, ldc: Int? = nil, accumulate: Bool = false
    ) {
        let ldb = ldb ?? (transposeB ? k : n), ldc = ldc ?? n
        guard m > 0 && n > 0 else { return }
        guard k > 0 else {
            if !accumulate { for i in 0..<m { (c + i * ldc).update(repeating: 0, count: n) } }
            return
        }
        if let sgemm {
            sgemm(
                rowMajor, transposeA ? trans : noTrans, transposeB ? trans : noTrans, Int32(m), Int32(n), Int32(k), 1, a,
                Int32(transposeA ? m : k), b, Int32(ldb), accumulate ? 1 : 0, c, Int32(ldc))
            return
        }
        fallbackMultiply(
            m: m, n: n, k: k, a: a, transposeA: transposeA, b: b, transposeB: transposeB, ldb: ldb, c: c, ldc: ldc,
            accumulate: accumulate)
    }

    /// Row blocks in parallel; B packed to `[k, n]` first so the inner loop runs along contiguous rows.
    static func fallbackMultiply(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, transposeA: Bool, b: UnsafePointer<Float>, transposeB: Bool,
        ldb: Int, c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool
    ) {
        func run(_ bRows: UnsafePointer<Float>, _ rowStride: Int) {
            let shared = UncheckedSendable((a, bRows, c))
            let blocks = ranges(of: m, parts: activeProcessorCount * 4)
            parallelFor(blocks.count) { block in
                let (a, b, c) = shared.value
                for i in blocks[block] {
                    let row = c + i * ldc
                    if !accumulate { row.update(repeating: 0, count: n) }
                    for p in 0..<k {
                        let scale = transposeA ? a[p * m + i] : a[i * k + p]
                        if scale == 0 { continue }
                        let bRow = b + p * rowStride
                        for j in 0..<n { row[j] += scale * bRow[j] }
                    }
                }
            }
        }
        if transposeB {
            var packed = [Float](repeating: 0, count: k * n)
            for j in 0..<n { for p in 0..<k { packed[p * n + j] = b[j * ldb + p] } }
            packed.withUnsafeBufferPointer { run($0.baseAddress!, n) }
        } else {
            run(b, ldb)
        }
    }
}
