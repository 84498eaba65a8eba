/// Data-parallel helpers shared by every CPU-bound layer (formats, renderer, tensor engine).
import Dispatch

#if canImport(Glibc)
    import Glibc
#endif

/// Runs `body(i)` for `i` in `0..<count` across the machine's cores and returns when all are done.
@inline(__always)
public func parallelFor(_ count: Int, _ body: (Int) -> Void) {
    if count <= 1 {
        if count == 1 { body(0) }
        return
    }
    withoutActuallyEscaping(body) { body in
        let box = UncheckedSendable(body)
        DispatchQueue.concurrentPerform(iterations: count) { box.value($0) }
    }
}

/// How many workers to split CPU-bound work into.
public let activeProcessorCount: Int = {
    #if canImport(Glibc)
        return max(1, Int(sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    #else
        return 4
    #endif
}()

/// Splits `0..<count` into at most `parts` contiguous ranges of at least `minimum` items.
public func ranges(of count: Int, parts: Int, minimum: Int = 1) -> [Range<Int>] {
    let n = max(1, min(parts, count / max(1, minimum)))
    return (0..<n).map { k in (count * k / n)..<(count * (k + 1) / n) }
}

/// Carries a value the compiler cannot prove `Sendable` into concurrent work whose safety the call site ensures
/// (disjoint ranges of one buffer, or read-only data).
public struct UncheckedSendable<T>: @unchecked Sendable {
    public let value: T
    public init(_ value: T) { self.value = value }
}
