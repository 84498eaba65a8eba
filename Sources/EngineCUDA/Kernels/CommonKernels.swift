/// CUDA C++ for the op table, compiled at run time by NVRTC (once per GPU architecture, then cached on disk).
///
/// Conventions every kernel follows:
/// - Element types travel as a run-time code (`DT_*`, the order of `CUDADType.code`); kernels load any storage type
///   as float, compute in float32 (double for reductions, as the CPU oracle does) and store rounding to nearest even
///   (FP8 saturating), bit-exact with the CPU backend's conversions.
/// - A strided operand is a `View` (shape, strides in elements, rank, dtype) next to its base pointer, which already
///   includes the tensor's offset; broadcast axes have stride 0. Outputs are contiguous unless a kernel says so.
/// - Grids are 1D grid-stride loops over 64-bit element counts, so any size launches with a bounded grid.
enum KernelSource {
    static let common = #"""
        typedef unsigned long long u64;
        typedef long long i64;
        #define DT_F32 0
        #define DT_F16 1
        #define DT_BF16 2
        #define DT_E4M3 3
        #define DT_E5M2 4
        #define DT_I32 5
        #define DT_I64 6
        #define DT_BOOL 7
        #define MAXR 8
        #define F_INF __int_as_float(0x7f800000)
        #define F_NAN __int_as_float(0x7fc00000)

        // `magic` and `shift` divide by each axis's size with a multiply-high and a shift (Granlund-Montgomery, as
        // the host's `FastDivider` computes them); `fast` says every size fits them. 64-bit division costs tens of
        // instructions per axis per element and made permutes, concats and up-sampling compute-bound.
        struct View { i64 shape[MAXR]; i64 stride[MAXR]; int rank; int dtype; unsigned magic[MAXR]; unsigned shift[MAXR]; int fast; };

        __device__ __forceinline__ i64 view_offset(const View& v, i64 linear) {
            i64 off = 0;
            if (v.fast && linear < 0x80000000LL) {
                unsigned rest = (unsigned)linear;
                for (int d = v.rank - 1; d >= 0; --d) {
                    unsigned q = (__umulhi(rest, v.magic[d]) + rest) >> v.shift[d];
                    off += (i64)(rest - q * (unsigned)v.shape[d]) * v.stride[d];
                    rest = q;
                }
                return off;
            }
            for (int d = v.rank - 1; d >= 0; --d) {
                i64 s = v.shape[d];
                i64 idx = linear % s;
                linear /= s;
                off += idx * v.stride[d];
            }
            return off;
        }

        __device__ __forceinline__ float bf16_to_f(unsigned short h) { return __uint_as_float(((unsigned)h) << 16); }
        __device__ __forceinline__ unsigned short f_to_bf16(float f) {
            unsigned u = __float_as_uint(f);
            if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7FC0;
            u += 0x7FFFu + ((u >> 16) & 1u);
            return (unsigned short)(u >> 16);
        }
        __device__ __forceinline__ float f16_to_f(unsigned short h) {
            float f;
            asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
            return f;
        }
        __device__ __forceinline__ unsigned short f_to_f16(float f) {
            unsigned short h;
            asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
            return h;
        }
        // FP8 with saturation and round-to-nearest-even, subnormals included: the CPU's Float8Format.encode.
        __device__ __forceinline__ unsigned char f_to_fp8(float v, int mbits, int bias, float maxf, unsigned maxbits, unsigned char nanbits) {
            if (v != v) return nanbits;
            unsigned char sign = (__float_as_uint(v) & 0x80000000u) ? 0x80 : 0;
            float mag = fminf(fabsf(v), maxf);
            int minexp = 1 - bias;
            int e = minexp;
            if (mag != 0.0f) {
                int ex;
                frexpf(mag, &ex);
                e = max(ex - 1, minexp);
            }
            float quantum = ldexpf(1.0f, e - mbits);
            int m = (int)rintf(mag / quantum);
            if (m >= (2 << mbits)) { m >>= 1; e += 1; }
            if (m < (1 << mbits)) return sign | (unsigned char)m;
            unsigned bits = ((unsigned)(e + bias) << mbits) | (unsigned)(m - (1 << mbits));
            return sign | (unsigned char)min(bits, maxbits);
        }
        __device__ __forceinline__ float fp8_to_f(unsigned char b, int mbits, int bias, bool e4m3) {
            bool neg = (b & 0x80) != 0;
            unsigned rest = b & 0x7f;
            int e = (int)(rest >> mbits);
            int m = (int)(rest & ((1u << mbits) - 1));
            float v;
            if (e4m3 && rest == 0x7f) v = F_NAN;
            else if (!e4m3 && e == 31) v = m == 0 ? F_INF : F_NAN;
            else if (e == 0) v = (float)m * ldexpf(1.0f, 1 - bias - mbits);
            else v = ldexpf(1.0f + (float)m / (float)(1 << mbits), e - bias);
            return neg ? -v : v;
        }

        __device__ __forceinline__ float load_f(const void* p, i64 i, int dt) {
            switch (dt) {
            case DT_F32: return ((const float*)p)[i];
            case DT_F16: return f16_to_f(((const unsigned short*)p)[i]);
            case DT_BF16: return bf16_to_f(((const unsigned short*)p)[i]);
            case DT_E4M3: return fp8_to_f(((const unsigned char*)p)[i], 3, 7, true);
            case DT_E5M2: return fp8_to_f(((const unsigned char*)p)[i], 2, 15, false);
            case DT_I32: return (float)((const int*)p)[i];
            case DT_I64: return (float)((const i64*)p)[i];
            default: return ((const unsigned char*)p)[i] ? 1.0f : 0.0f;
            }
        }
        __device__ __forceinline__ void store_f(void* p, i64 i, int dt, float v) {
            switch (dt) {
            case DT_F32: ((float*)p)[i] = v; break;
            case DT_F16: ((unsigned short*)p)[i] = f_to_f16(v); break;
            case DT_BF16: ((unsigned short*)p)[i] = f_to_bf16(v); break;
            case DT_E4M3: ((unsigned char*)p)[i] = f_to_fp8(v, 3, 7, 448.0f, 0x7Eu, 0x7F); break;
            case DT_E5M2: ((unsigned char*)p)[i] = f_to_fp8(v, 2, 15, 57344.0f, 0x7Bu, 0x7E); break;
            case DT_I32: {
                i64 w = (v == v && fabsf(v) < 9.2e18f) ? (i64)v : 0;
                ((int*)p)[i] = (int)max(min(w, (i64)2147483647), (i64)(-2147483647 - 1));
                break;
            }
            case DT_I64: ((i64*)p)[i] = (v == v && fabsf(v) < 9.2e18f) ? (i64)v : 0; break;
            default: ((unsigned char*)p)[i] = v != 0.0f ? 1 : 0; break;
            }
        }
        __device__ __forceinline__ bool is_int(int dt) { return dt == DT_I32 || dt == DT_I64 || dt == DT_BOOL; }
        __device__ __forceinline__ i64 load_i(const void* p, i64 i, int dt) {
            switch (dt) {
            case DT_I32: return ((const int*)p)[i];
            case DT_I64: return ((const i64*)p)[i];
            case DT_BOOL: return ((const unsigned char*)p)[i] ? 1 : 0;
            default: { float v = load_f(p, i, dt); return (v == v && fabsf(v) < 9.2e18f) ? (i64)v : 0; }
            }
        }
        __device__ __forceinline__ void store_i(void* p, i64 i, int dt, i64 v) {
            switch (dt) {
            case DT_I32: ((int*)p)[i] = (int)v; break;
            case DT_I64: ((i64*)p)[i] = v; break;
            case DT_BOOL: ((unsigned char*)p)[i] = v != 0 ? 1 : 0; break;
            default: store_f(p, i, dt, (float)v); break;
            }
        }

        #define GRID_STRIDE(i, n) for (i64 i = (i64)blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += (i64)gridDim.x * blockDim.x)

        extern "C" __global__ void fill(void* out, int dt, i64 n, float value) {
            GRID_STRIDE(i, n) store_f(out, i, dt, value);
        }

        // Same-type copy between two views of one shape (the source may broadcast with stride 0). (Four elements a
        // thread a round, loads before stores, measured 12-22% slower on the decoder's permutes and concats.)
        extern "C" __global__ void copy_view(const void* src, View sv, void* dst, View dv, i64 n, int bytes) {
            GRID_STRIDE(i, n) {
                i64 s = view_offset(sv, i), d = view_offset(dv, i);
                switch (bytes) {
                case 1: ((unsigned char*)dst)[d] = ((const unsigned char*)src)[s]; break;
                case 2: ((unsigned short*)dst)[d] = ((const unsigned short*)src)[s]; break;
                case 4: ((unsigned*)dst)[d] = ((const unsigned*)src)[s]; break;
                default: ((u64*)dst)[d] = ((const u64*)src)[s]; break;
                }
            }
        }

        // Contiguous output of another element type; integers to integers never pass through float.
        extern "C" __global__ void cast_view(const void* src, View sv, void* dst, int dt_out, i64 n) {
            bool ints = is_int(sv.dtype) && is_int(dt_out);
            GRID_STRIDE(i, n) {
                i64 s = view_offset(sv, i);
                if (ints) store_i(dst, i, dt_out, load_i(src, s, sv.dtype));
                else store_f(dst, i, dt_out, load_f(src, s, sv.dtype));
            }
        }

        #define U_SILU 0
        #define U_GELU_TANH 1
        #define U_SIGMOID 2
        #define U_SCALE 3
        #define U_EXP 4
        #define U_SQRT 5
        #define U_ABS 6
        #define U_CLAMP 7
        #define U_LOG 8
        __device__ __forceinline__ float unary_op(int op, float x, float a, float b) {
            switch (op) {
            case U_SILU: return x / (1.0f + expf(-x));
            case U_GELU_TANH: return 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x)));
            case U_SIGMOID: return 1.0f / (1.0f + expf(-x));
            case U_SCALE: return x * a;
            case U_EXP: return expf(x);
            case U_SQRT: return sqrtf(x);
            case U_ABS: return fabsf(x);
            case U_LOG: return logf(x);
            default: return x != x ? x : fminf(fmaxf(x, a), b);  // U_CLAMP
            }
        }
        extern "C" __global__ void unary(const void* src, View sv, void* dst, int dt_out, i64 n, int op, float a, float b) {
            GRID_STRIDE(i, n) store_f(dst, i, dt_out, unary_op(op, load_f(src, view_offset(sv, i), sv.dtype), a, b));
        }

        // Contiguous bf16 in and out, eight values (16 bytes) a thread: the same arithmetic and rounding as `unary`,
        // without per-element index math and with full-width memory transactions.
        __device__ __forceinline__ unsigned unary_pair(int op, unsigned w, float a, float b) {
            float lo = bf16_to_f((unsigned short)(w & 0xffffu)), hi = bf16_to_f((unsigned short)(w >> 16));
            return (unsigned)f_to_bf16(unary_op(op, lo, a, b)) | ((unsigned)f_to_bf16(unary_op(op, hi, a, b)) << 16);
        }
        extern "C" __global__ void unary_bf16x8(const uint4* src, uint4* dst, i64 n8, int op, float a, float b) {
            GRID_STRIDE(i, n8) {
                uint4 v = src[i];
                v.x = unary_pair(op, v.x, a, b); v.y = unary_pair(op, v.y, a, b);
                v.z = unary_pair(op, v.z, a, b); v.w = unary_pair(op, v.w, a, b);
                dst[i] = v;
            }
        }

        #define B_ADD 0
        #define B_SUB 1
        #define B_MUL 2
        #define B_DIV 3
        __device__ __forceinline__ float binary_op(int op, float x, float y) {
            return op == B_ADD ? x + y : op == B_SUB ? x - y : op == B_MUL ? x * y : x / y;
        }
        __device__ __forceinline__ unsigned binary_pair(int op, unsigned p, unsigned q) {
            float r0 = binary_op(op, bf16_to_f((unsigned short)(p & 0xffffu)), bf16_to_f((unsigned short)(q & 0xffffu)));
            float r1 = binary_op(op, bf16_to_f((unsigned short)(p >> 16)), bf16_to_f((unsigned short)(q >> 16)));
            return (unsigned)f_to_bf16(r0) | ((unsigned)f_to_bf16(r1) << 16);
        }
        // Two contiguous bf16 operands of one shape (no broadcasting), eight values a thread.
        extern "C" __global__ void binary_bf16x8(const uint4* a, const uint4* b, uint4* dst, i64 n8, int op) {
            GRID_STRIDE(i, n8) {
                uint4 x = a[i], y = b[i], r;
                r.x = binary_pair(op, x.x, y.x); r.y = binary_pair(op, x.y, y.y);
                r.z = binary_pair(op, x.z, y.z); r.w = binary_pair(op, x.w, y.w);
                dst[i] = r;
            }
        }
        extern "C" __global__ void binary(const void* a, View av, const void* b, View bv, void* dst, int dt_out, i64 n, int op) {
            GRID_STRIDE(i, n) {
                float x = load_f(a, view_offset(av, i), av.dtype), y = load_f(b, view_offset(bv, i), bv.dtype);
                store_f(dst, i, dt_out, binary_op(op, x, y));
            }
        }

        // One block per row: a warp tree, then the warps' results in a fixed order (deterministic). `Op` combines two
        // values (sum or max) and `identity` is its neutral element.
        struct SumOp { template <typename T> __device__ __forceinline__ T operator()(T a, T b) const { return a + b; } };
        struct MaxOp { __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); } };
        template <typename T, typename Op>
        __device__ __forceinline__ T block_reduce(T v, T* scratch, T identity, Op op) {
            for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
            int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
            __syncthreads();
            if (lane == 0) scratch[warp] = v;
            __syncthreads();
            T total = identity;
            for (int w = 0; w < (int)(blockDim.x >> 5); ++w) total = op(total, scratch[w]);
            return total;
        }
        __device__ __forceinline__ float block_sum(float v, float* scratch) { return block_reduce(v, scratch, 0.0f, SumOp()); }
        __device__ __forceinline__ float block_max(float v, float* scratch) { return block_reduce(v, scratch, -F_INF, MaxOp()); }
        __device__ __forceinline__ double block_sum_d(double v, double* scratch) { return block_reduce(v, scratch, 0.0, SumOp()); }

        // A row's mean and 1/sqrt(variance + eps), two passes (a one-pass E[x²] − E[x]² loses offset rows).
        __device__ __forceinline__ void row_moments(const void* x, int dt, i64 base, int width, float eps, float* scratch, float& mean, float& inv) {
            float s = 0.0f;
            for (int i = threadIdx.x; i < width; i += blockDim.x) s += load_f(x, base + i, dt);
            mean = block_sum(s, scratch) / (float)width;
            float v = 0.0f;
            for (int i = threadIdx.x; i < width; i += blockDim.x) { float d = load_f(x, base + i, dt) - mean; v += d * d; }
            inv = 1.0f / sqrtf(block_sum(v, scratch) / (float)width + eps);
        }

        // Two-pass layer norm over rows of `width` (contiguous input), optional affine parameters.
        extern "C" __global__ void layer_norm(const void* x, int dt, const void* w, int wdt, const void* b, int bdt, void* out, int dt_out,
                                              i64 rows, int width, float eps, int has_w, int has_b) {
            __shared__ float scratch[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width;
                float mean, inv;
                row_moments(x, dt, base, width, eps, scratch, mean, inv);
                for (int i = threadIdx.x; i < width; i += blockDim.x) {
                    float y = (load_f(x, base + i, dt) - mean) * inv;
                    if (has_w) y *= load_f(w, i, wdt);
                    if (has_b) y += load_f(b, i, bdt);
                    store_f(out, base + i, dt_out, y);
                }
            }
        }

        // T5's norm: x / sqrt(mean(x^2) + eps) * w.
        extern "C" __global__ void rms_norm(const void* x, int dt, const void* w, int wdt, void* out, int dt_out, i64 rows, int width, float eps) {
            __shared__ float scratch[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width;
                float s = 0.0f;
                for (int i = threadIdx.x; i < width; i += blockDim.x) { float v = load_f(x, base + i, dt); s += v * v; }
                float inv = 1.0f / sqrtf(block_sum(s, scratch) / (float)width + eps);
                for (int i = threadIdx.x; i < width; i += blockDim.x)
                    store_f(out, base + i, dt_out, load_f(w, i, wdt) * (load_f(x, base + i, dt) * inv));
            }
        }

        extern "C" __global__ void softmax_rows(const void* x, int dt, void* out, int dt_out, i64 rows, int width) {
            __shared__ float scratch[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width;
                float m = -F_INF;
                for (int i = threadIdx.x; i < width; i += blockDim.x) m = fmaxf(m, load_f(x, base + i, dt));
                m = block_max(m, scratch);
                float s = 0.0f;
                for (int i = threadIdx.x; i < width; i += blockDim.x) s += expf(load_f(x, base + i, dt) - m);
                float total = block_sum(s, scratch);
                for (int i = threadIdx.x; i < width; i += blockDim.x) store_f(out, base + i, dt_out, expf(load_f(x, base + i, dt) - m) / total);
            }
        }

        #define R_SUM 0
        #define R_MEAN 1
        #define R_MAX 2
        #define R_VAR 3
        // Rows of `width` reduced to one value each; sums in double like the CPU oracle.
        extern "C" __global__ void reduce_rows(const void* x, int dt, void* out, int dt_out, i64 rows, i64 width, int kind) {
            __shared__ double dscratch[32];
            __shared__ float fscratch[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width;
                float result;
                if (kind == R_MAX) {
                    float m = -F_INF;
                    bool nan = false;
                    for (i64 i = threadIdx.x; i < width; i += blockDim.x) { float v = load_f(x, base + i, dt); if (v != v) nan = true; m = fmaxf(m, v); }
                    m = block_max(m, fscratch);
                    float anyNan = block_sum(nan ? 1.0f : 0.0f, fscratch);
                    result = anyNan > 0.0f ? F_NAN : m;
                } else {
                    double s = 0.0;
                    for (i64 i = threadIdx.x; i < width; i += blockDim.x) s += (double)load_f(x, base + i, dt);
                    s = block_sum_d(s, dscratch);
                    double n = (double)(width > 0 ? width : 1);
                    if (kind == R_SUM) result = (float)s;
                    else if (kind == R_MEAN) result = (float)(s / n);
                    else {
                        double mean = s / n, v = 0.0;
                        for (i64 i = threadIdx.x; i < width; i += blockDim.x) { double d = (double)load_f(x, base + i, dt) - mean; v += d * d; }
                        result = (float)(block_sum_d(v, dscratch) / n);
                    }
                }
                if (threadIdx.x == 0) store_f(out, row, dt_out, result);
            }
        }

        // reduce_rows for many short rows: one thread per row, same arithmetic (double sums).
        extern "C" __global__ void reduce_rows_narrow(const void* x, int dt, void* out, int dt_out, i64 rows, i64 width, int kind) {
            for (i64 row = blockIdx.x * (i64)blockDim.x + threadIdx.x; row < rows; row += (i64)gridDim.x * blockDim.x) {
                i64 base = row * width;
                float result;
                if (kind == R_MAX) {
                    float m = -F_INF;
                    bool nan = false;
                    for (i64 i = 0; i < width; i++) { float v = load_f(x, base + i, dt); if (v != v) nan = true; m = fmaxf(m, v); }
                    result = nan ? F_NAN : m;
                } else {
                    double s = 0.0;
                    for (i64 i = 0; i < width; i++) s += (double)load_f(x, base + i, dt);
                    double n = (double)(width > 0 ? width : 1);
                    if (kind == R_SUM) result = (float)s;
                    else if (kind == R_MEAN) result = (float)(s / n);
                    else {
                        double mean = s / n, v = 0.0;
                        for (i64 i = 0; i < width; i++) { double d = (double)load_f(x, base + i, dt) - mean; v += d * d; }
                        result = (float)(v / n);
                    }
                }
                store_f(out, row, dt_out, result);
            }
        }

        // The Wan VAE norm over axis 1 of [b, c, spatial]: x / max(|x|, eps) * sqrt(c) * gamma (+ beta), then SiLU when
        // `silu` is set. A block takes 64 neighbouring pixels of one image (two a lane, so a warp reads 128 bytes of a
        // channel row at once) and spreads the channels over its 8 warps; a thread per pixel walking every channel
        // left most of the GPU idle on the decoder's small, wide maps. The second pass re-reads the slice from L2.
        // `paired`: bf16 in and out, an even spatial size and 4-byte aligned pointers (two pixels in one word).
        __device__ __forceinline__ float norm_out(float v, float inv, float scale, const void* g, int gdt, const void* beta, int bdt,
                                                  int has_beta, int silu, int c) {
            float y = v * inv * scale * load_f(g, c, gdt);
            if (has_beta) y += load_f(beta, c, bdt);
            return silu ? y / (1.0f + expf(-y)) : y;
        }
        extern "C" __global__ void channel_rms_norm(const void* x, int dt, const void* g, int gdt, const void* beta, int bdt, void* out, int dt_out,
                                                    i64 batches, int channels, i64 spatial, float eps, int has_beta, int silu, int paired) {
            __shared__ float partial[8][64];
            __shared__ float inverse[64];
            const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
            const float scale = sqrtf((float)channels);
            const i64 tiles = (spatial + 63) / 64;
            for (i64 t = blockIdx.x; t < batches * tiles; t += gridDim.x) {
                const i64 b = t / tiles, p = (t % tiles) * 64 + 2 * lane;
                const bool live0 = p < spatial, live1 = p + 1 < spatial;
                const i64 base = b * channels * spatial + p;
                float s0 = 0.0f, s1 = 0.0f;
                if (paired) {
                    if (live0) for (int c = warp; c < channels; c += 8) {
                        unsigned w = *(const unsigned*)((const unsigned short*)x + base + (i64)c * spatial);
                        float v0 = bf16_to_f((unsigned short)(w & 0xffffu)), v1 = bf16_to_f((unsigned short)(w >> 16));
                        s0 += v0 * v0; s1 += v1 * v1;
                    }
                } else {
                    for (int c = warp; c < channels; c += 8) {
                        i64 k = base + (i64)c * spatial;
                        if (live0) { float v = load_f(x, k, dt); s0 += v * v; }
                        if (live1) { float v = load_f(x, k + 1, dt); s1 += v * v; }
                    }
                }
                partial[warp][2 * lane] = s0;
                partial[warp][2 * lane + 1] = s1;
                __syncthreads();
                if (threadIdx.x < 64) {
                    float total = 0.0f;
                    for (int w = 0; w < 8; ++w) total += partial[w][threadIdx.x];
                    inverse[threadIdx.x] = 1.0f / fmaxf(sqrtf(total), eps);
                }
                __syncthreads();
                const float inv0 = inverse[2 * lane], inv1 = inverse[2 * lane + 1];
                if (paired) {
                    if (live0) for (int c = warp; c < channels; c += 8) {
                        i64 k = base + (i64)c * spatial;
                        unsigned w = *(const unsigned*)((const unsigned short*)x + k);
                        float y0 = norm_out(bf16_to_f((unsigned short)(w & 0xffffu)), inv0, scale, g, gdt, beta, bdt, has_beta, silu, c);
                        float y1 = norm_out(bf16_to_f((unsigned short)(w >> 16)), inv1, scale, g, gdt, beta, bdt, has_beta, silu, c);
                        *(unsigned*)((unsigned short*)out + k) = (unsigned)f_to_bf16(y0) | ((unsigned)f_to_bf16(y1) << 16);
                    }
                } else {
                    for (int c = warp; c < channels; c += 8) {
                        i64 k = base + (i64)c * spatial;
                        if (live0) store_f(out, k, dt_out, norm_out(load_f(x, k, dt), inv0, scale, g, gdt, beta, bdt, has_beta, silu, c));
                        if (live1) store_f(out, k + 1, dt_out, norm_out(load_f(x, k + 1, dt), inv1, scale, g, gdt, beta, bdt, has_beta, silu, c));
                    }
                }
                __syncthreads();
            }
        }

        // Interleaved-pair rotary embedding on x [b, l, h, d] (any strides), cos/sin [l, d/2]; contiguous output.
        extern "C" __global__ void rope_interleaved(const void* x, View xv, const void* cs, const void* sn, int cdt, void* out, int dt_out) {
            i64 B = xv.shape[0], L = xv.shape[1], H = xv.shape[2], D = xv.shape[3], half = D / 2;
            GRID_STRIDE(i, B * L * H * half) {
                i64 pair = i % half, rest = i / half;
                i64 h = rest % H; rest /= H;
                i64 t = rest % L, b = rest / L;
                i64 base = b * xv.stride[0] + t * xv.stride[1] + h * xv.stride[2];
                float x0 = load_f(x, base + 2 * pair * xv.stride[3], xv.dtype), x1 = load_f(x, base + (2 * pair + 1) * xv.stride[3], xv.dtype);
                float c = load_f(cs, t * half + pair, cdt), s = load_f(sn, t * half + pair, cdt);
                i64 o = ((b * L + t) * H + h) * D + 2 * pair;
                store_f(out, o, dt_out, x0 * c - x1 * s);
                store_f(out, o + 1, dt_out, x0 * s + x1 * c);
            }
        }

        extern "C" __global__ void timestep_embedding(const void* t, int tdt, float* out, int n, int dim, int flip, float shift) {
            int half = dim / 2;
            GRID_STRIDE(i, (i64)n * dim) {
                int row = (int)(i / dim), col = (int)(i % dim);
                float v = 0.0f;
                if (col < 2 * half) {
                    int k = col < half ? col : col - half;
                    bool first = col < half;
                    float freq = expf(-logf(10000.0f) * (float)k / ((float)half - shift));
                    float angle = load_f(t, row, tdt) * freq;
                    bool useCos = flip ? first : !first;
                    v = useCos ? cosf(angle) : sinf(angle);
                }
                out[i] = v;
            }
        }

        // Rows of a weight table picked by ids; ids out of range give zero rows.
        extern "C" __global__ void embedding(const void* w, i64 vocab, i64 width, const void* ids, int idt, void* out, i64 rows, int bytes) {
            GRID_STRIDE(i, rows * width) {
                i64 r = i / width, c = i % width;
                i64 id = load_i(ids, r, idt);
                bool ok = id >= 0 && id < vocab;
                i64 s = id * width + c;
                switch (bytes) {
                case 1: ((unsigned char*)out)[i] = ok ? ((const unsigned char*)w)[s] : 0; break;
                case 2: ((unsigned short*)out)[i] = ok ? ((const unsigned short*)w)[s] : 0; break;
                case 4: ((unsigned*)out)[i] = ok ? ((const unsigned*)w)[s] : 0; break;
                default: ((u64*)out)[i] = ok ? ((const u64*)w)[s] : 0; break;
                }
            }
        }

        // 2x2 average pooling (floor) over the last two axes of a contiguous [outer, h, w].
        extern "C" __global__ void avg_pool2x2(const void* x, int dt, void* out, int dt_out, i64 outer, i64 h, i64 w) {
            i64 oh = h / 2, ow = w / 2;
            GRID_STRIDE(i, outer * oh * ow) {
                i64 c = i % ow, r = (i / ow) % oh, o = i / (ow * oh);
                i64 base = o * h * w + 2 * r * w + 2 * c;
                float s = load_f(x, base, dt) + load_f(x, base + 1, dt) + load_f(x, base + w, dt) + load_f(x, base + w + 1, dt);
                store_f(out, i, dt_out, s * 0.25f);
            }
        }

        // Philox-4x32-10 and Box-Muller, element pair by pair: the CPU backend's stream of numbers.
        __device__ __forceinline__ void philox(u64 counter, u64 key, unsigned r[4]) {
            unsigned c0 = (unsigned)counter, c1 = (unsigned)(counter >> 32), c2 = 0, c3 = 0;
            unsigned k0 = (unsigned)key, k1 = (unsigned)(key >> 32);
            for (int round = 0; round < 10; ++round) {
                u64 p0 = 0xD2511F53ull * (u64)c0, p1 = 0xCD9E8D57ull * (u64)c2;
                unsigned n0 = (unsigned)(p1 >> 32) ^ c1 ^ k0, n1 = (unsigned)p1;
                unsigned n2 = (unsigned)(p0 >> 32) ^ c3 ^ k1, n3 = (unsigned)p0;
                c0 = n0; c1 = n1; c2 = n2; c3 = n3;
                k0 += 0x9E3779B9u; k1 += 0xBB67AE85u;
            }
            r[0] = c0; r[1] = c1; r[2] = c2; r[3] = c3;
        }
        extern "C" __global__ void random_normal(float* out, i64 n, u64 seed) {
            GRID_STRIDE(pair, (n + 1) / 2) {
                unsigned r[4];
                philox((u64)pair, seed, r);
                float u1 = ((float)(r[0] >> 8) + 1.0f) / 16777216.0f;
                float u2 = (float)(r[1] >> 8) / 16777216.0f;
                float radius = sqrtf(-2.0f * logf(u1));
                float angle = 6.2831854820251465f * u2;
                out[2 * pair] = radius * cosf(angle);
                if (2 * pair + 1 < n) out[2 * pair + 1] = radius * sinf(angle);
            }
        }

        // Fused adaptive norm: layer_norm(x) * (1 + scale[g]) + shift[g], one block per row, rows in `groups` equal runs.
        extern "C" __global__ void modulated_layer_norm(const void* x, int dt, const void* shift, const void* scale, int mdt, void* out,
                                                        i64 rows, int width, i64 rows_per_group, float eps) {
            __shared__ float scratch[32];
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width, mbase = (row / rows_per_group) * width;
                float mean, inv;
                row_moments(x, dt, base, width, eps, scratch, mean, inv);
                for (int i = threadIdx.x; i < width; i += blockDim.x) {
                    float y = (load_f(x, base + i, dt) - mean) * inv;
                    y = y * (load_f(scale, mbase + i, mdt) + 1.0f) + load_f(shift, mbase + i, mdt);
                    store_f(out, base + i, dt, y);
                }
            }
        }

        // Fused q/k path: RMS norm over the row (all heads) with its weight, then interleaved RoPE per head.
        extern "C" __global__ void rms_norm_rope(const void* x, int dt, const void* w, int wdt, const void* cs, const void* sn, int cdt,
                                                 void* out, i64 rows, int width, int head_dim, i64 tokens, float eps) {
            __shared__ float scratch[32];
            const int half = head_dim / 2;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                i64 base = row * width, t = row % tokens;
                float s = 0.0f;
                for (int i = threadIdx.x; i < width; i += blockDim.x) { float v = load_f(x, base + i, dt); s += v * v; }
                float inv = 1.0f / sqrtf(block_sum(s, scratch) / (float)width + eps);
                for (int pair = threadIdx.x; pair < width / 2; pair += blockDim.x) {
                    int i = 2 * pair, p = pair % half;
                    float x0 = load_f(w, i, wdt) * (load_f(x, base + i, dt) * inv);
                    float x1 = load_f(w, i + 1, wdt) * (load_f(x, base + i + 1, dt) * inv);
                    float c = load_f(cs, t * half + p, cdt), sv = load_f(sn, t * half + p, cdt);
                    store_f(out, base + i, dt, x0 * c - x1 * sv);
                    store_f(out, base + i + 1, dt, x0 * sv + x1 * c);
                }
            }
        }

        // Fused gated residual x + y * gate over broadcast views; output in x's type.
        extern "C" __global__ void gated_residual(const void* x, View xv, const void* y, View yv, const void* g, View gv, void* out, i64 n) {
            GRID_STRIDE(i, n) {
                float r = load_f(x, view_offset(xv, i), xv.dtype) + load_f(y, view_offset(yv, i), yv.dtype) * load_f(g, view_offset(gv, i), gv.dtype);
                store_f(out, i, xv.dtype, r);
            }
        }

        // Eight bf16 values of a 16-byte word as floats, and back (round to nearest even).
        __device__ __forceinline__ void unpack8(uint4 w, float* v) {
            unsigned u[4] = {w.x, w.y, w.z, w.w};
            for (int k = 0; k < 4; ++k) { v[2 * k] = bf16_to_f((unsigned short)(u[k] & 0xffffu)); v[2 * k + 1] = bf16_to_f((unsigned short)(u[k] >> 16)); }
        }
        __device__ __forceinline__ uint4 pack8(const float* v) {
            unsigned u[4];
            for (int k = 0; k < 4; ++k) u[k] = (unsigned)f_to_bf16(v[2 * k]) | ((unsigned)f_to_bf16(v[2 * k + 1]) << 16);
            return make_uint4(u[0], u[1], u[2], u[3]);
        }

        // The gated residual on contiguous bf16 x, y, out [groups, rows, width] with the gate [groups, 1, width] (any
        // float type), eight values a thread: the transformer's shape, without per-element index math.
        extern "C" __global__ void gated_residual_bf16x8(const uint4* x, const uint4* y, const void* g, int gdt, uint4* out, i64 n8, int width,
                                                         i64 group_size) {
            GRID_STRIDE(i, n8) {
                i64 e = i * 8, col = e % width, gbase = (e / group_size) * width + col;
                float a[8], b[8], r[8];
                unpack8(x[i], a);
                unpack8(y[i], b);
                for (int k = 0; k < 8; ++k) r[k] = a[k] + b[k] * load_f(g, gbase + k, gdt);
                out[i] = pack8(r);
            }
        }

        // Rows of bf16 held in registers, eight values per 16-byte word and at most ROW_WORDS words a thread (blocks of
        // 128 threads: rows up to 4,096 wide), so a row is read from memory once instead of three times.
        #define ROW_WORDS 4
        __device__ __forceinline__ int load_row(const uint4* row, int words, float (*v)[8]) {
            int held = 0;
            for (int k = 0; k < ROW_WORDS; ++k) {
                int w = threadIdx.x + k * blockDim.x;
                if (w < words) { unpack8(row[w], v[k]); held = k + 1; }
            }
            return held;
        }

        // A held row's mean and 1/sqrt(variance + eps), two passes as `row_moments`; and its 1/sqrt(mean(x²) + eps).
        __device__ __forceinline__ void held_moments(float (*v)[8], int held, int width, float eps, float* scratch, float& mean, float& inv) {
            float s = 0.0f;
            for (int k = 0; k < held; ++k) for (int j = 0; j < 8; ++j) s += v[k][j];
            mean = block_sum(s, scratch) / (float)width;
            float q = 0.0f;
            for (int k = 0; k < held; ++k) for (int j = 0; j < 8; ++j) { float d = v[k][j] - mean; q += d * d; }
            inv = 1.0f / sqrtf(block_sum(q, scratch) / (float)width + eps);
        }
        __device__ __forceinline__ float held_inverse_rms(float (*v)[8], int held, int width, float eps, float* scratch) {
            float s = 0.0f;
            for (int k = 0; k < held; ++k) for (int j = 0; j < 8; ++j) s += v[k][j] * v[k][j];
            return 1.0f / sqrtf(block_sum(s, scratch) / (float)width + eps);
        }

        // modulated_layer_norm on bf16 rows whose width is a multiple of 8 (same two-pass moments as the generic kernel).
        extern "C" __global__ void modulated_layer_norm_bf16x8(const uint4* x, const void* shift, const void* scale, int mdt, uint4* out,
                                                               i64 rows, int width, i64 rows_per_group, float eps) {
            __shared__ float scratch[32];
            const int words = width / 8;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float v[ROW_WORDS][8];
                const int held = load_row(x + row * words, words, v);
                float mean, inv;
                held_moments(v, held, width, eps, scratch, mean, inv);
                const i64 mbase = (row / rows_per_group) * width;
                for (int k = 0; k < held; ++k) {
                    const int w = threadIdx.x + k * blockDim.x;  // below words for every k < held
                    float r[8];
                    for (int j = 0; j < 8; ++j) {
                        i64 c = mbase + (i64)w * 8 + j;
                        r[j] = (v[k][j] - mean) * inv * (load_f(scale, c, mdt) + 1.0f) + load_f(shift, c, mdt);
                    }
                    out[row * words + w] = pack8(r);
                }
            }
        }

        // layer_norm and rms_norm (T5's) on bf16 rows whose width is a multiple of 8, same arithmetic as the generic kernels.
        extern "C" __global__ void layer_norm_bf16x8(const uint4* x, const void* w, int wdt, const void* b, int bdt, uint4* out, i64 rows, int width,
                                                     float eps, int has_w, int has_b) {
            __shared__ float scratch[32];
            const int words = width / 8;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float v[ROW_WORDS][8];
                const int held = load_row(x + row * words, words, v);
                float mean, inv;
                held_moments(v, held, width, eps, scratch, mean, inv);
                for (int k = 0; k < held; ++k) {
                    const int word = threadIdx.x + k * blockDim.x;
                    float r[8];
                    for (int j = 0; j < 8; ++j) {
                        float y = (v[k][j] - mean) * inv;
                        if (has_w) y *= load_f(w, word * 8 + j, wdt);
                        if (has_b) y += load_f(b, word * 8 + j, bdt);
                        r[j] = y;
                    }
                    out[row * words + word] = pack8(r);
                }
            }
        }
        extern "C" __global__ void rms_norm_bf16x8(const uint4* x, const void* w, int wdt, uint4* out, i64 rows, int width, float eps) {
            __shared__ float scratch[32];
            const int words = width / 8;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float v[ROW_WORDS][8];
                const int held = load_row(x + row * words, words, v);
                const float inv = held_inverse_rms(v, held, width, eps, scratch);
                for (int k = 0; k < held; ++k) {
                    const int word = threadIdx.x + k * blockDim.x;
                    float r[8];
                    for (int j = 0; j < 8; ++j) r[j] = load_f(w, word * 8 + j, wdt) * (v[k][j] * inv);
                    out[row * words + word] = pack8(r);
                }
            }
        }

        // rms_norm_rope on bf16 rows whose head size is a multiple of 8 (a word holds four whole pairs of one head).
        extern "C" __global__ void rms_norm_rope_bf16x8(const uint4* x, const void* w, int wdt, const void* cs, const void* sn, int cdt, uint4* out,
                                                        i64 rows, int width, int head_dim, i64 tokens, float eps) {
            __shared__ float scratch[32];
            const int words = width / 8, half = head_dim / 2;
            for (i64 row = blockIdx.x; row < rows; row += gridDim.x) {
                float v[ROW_WORDS][8];
                const int held = load_row(x + row * words, words, v);
                const float inv = held_inverse_rms(v, held, width, eps, scratch);
                const i64 t = row % tokens;
                for (int k = 0; k < held; ++k) {
                    const int word = threadIdx.x + k * blockDim.x;
                    float r[8];
                    for (int j = 0; j < 8; j += 2) {
                        int i = word * 8 + j, p = (i / 2) % half;
                        float x0 = load_f(w, i, wdt) * (v[k][j] * inv), x1 = load_f(w, i + 1, wdt) * (v[k][j + 1] * inv);
                        float c = load_f(cs, t * half + p, cdt), sv = load_f(sn, t * half + p, cdt);
                        r[j] = x0 * c - x1 * sv;
                        r[j + 1] = x0 * sv + x1 * c;
                    }
                    out[row * words + word] = pack8(r);
                }
            }
        }

        // FP8 activation quantisation (FlashWorld's FP8DynamicLinear): amax of the bf16-rounded input, then with
        // s = bf16(448/amax): e4m3(clamp(bf16(bf16(x) * s))) and the dequantisation factor 1/s for the epilogue.
        extern "C" __global__ void amax_bf16(const void* x, int dt, i64 n, unsigned* out) {
            float m = 0.0f;
            GRID_STRIDE(i, n) m = fmaxf(m, fabsf(bf16_to_f(f_to_bf16(load_f(x, i, dt)))));
            for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            // Non-negative floats order as their bit patterns.
            if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
        }
        extern "C" __global__ void quantize_fp8(const void* x, int dt, i64 n, const float* amax, unsigned char* q, float* inverse) {
            // quant.py's scale on a bf16 activation is itself bf16.
            float s = bf16_to_f(f_to_bf16(448.0f / fmaxf(*amax, 1e-12f)));
            if (blockIdx.x == 0 && threadIdx.x == 0) *inverse = 1.0f / s;
            GRID_STRIDE(i, n) {
                float v = bf16_to_f(f_to_bf16(load_f(x, i, dt)));
                float p = fminf(fmaxf(bf16_to_f(f_to_bf16(v * s)), -448.0f), 448.0f);
                q[i] = f_to_fp8(p, 3, 7, 448.0f, 0x7Eu, 0x7F);
            }
        }

        // The same two kernels on contiguous bf16, eight values (16 bytes) a thread: a bf16 value is its own rounding.
        extern "C" __global__ void amax_bf16x8(const uint4* x, i64 n8, unsigned* out) {
            float m = 0.0f, v[8];
            GRID_STRIDE(i, n8) {
                unpack8(x[i], v);
                for (int k = 0; k < 8; ++k) m = fmaxf(m, fabsf(v[k]));
            }
            for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_xor_sync(0xffffffffu, m, o));
            if ((threadIdx.x & 31) == 0) atomicMax(out, __float_as_uint(m));
        }
        extern "C" __global__ void quantize_fp8_bf16x8(const uint4* x, i64 n8, const float* amax, uint2* q, float* inverse) {
            float s = bf16_to_f(f_to_bf16(448.0f / fmaxf(*amax, 1e-12f)));
            if (blockIdx.x == 0 && threadIdx.x == 0) *inverse = 1.0f / s;
            float v[8];
            GRID_STRIDE(i, n8) {
                unpack8(x[i], v);
                unsigned lo = 0, hi = 0;
                for (int k = 0; k < 8; ++k) {
                    float p = fminf(fmaxf(bf16_to_f(f_to_bf16(v[k] * s)), -448.0f), 448.0f);
                    unsigned b = f_to_fp8(p, 3, 7, 448.0f, 0x7Eu, 0x7F);
                    if (k < 4) lo |= b << (8 * k); else hi |= b << (8 * (k - 4));
                }
                q[i] = make_uint2(lo, hi);
            }
        }

        // Columns for a convolution as a matrix product: col[n][c*kh*kw + i*kw + j][oy*ow + ox] = x[n][c][oy*sh - ph + i][ox*sw - pw + j].
        extern "C" __global__ void im2col(const void* x, void* col, int bytes, i64 batch, i64 C, i64 H, i64 W, int kh, int kw, int sh, int sw,
                                          int ph, int pw, i64 OH, i64 OW) {
            i64 K = C * kh * kw, P = OH * OW;
            GRID_STRIDE(i, batch * K * P) {
                i64 p = i % P, k = (i / P) % K, n = i / (P * K);
                i64 ox = p % OW, oy = p / OW;
                int j = (int)(k % kw), ii = (int)((k / kw) % kh);
                i64 c = k / (kw * kh);
                i64 y = oy * sh - ph + ii, xx = ox * sw - pw + j;
                bool inside = y >= 0 && y < H && xx >= 0 && xx < W;
                i64 s = ((n * C + c) * H + y) * W + xx;
                switch (bytes) {
                case 1: ((unsigned char*)col)[i] = inside ? ((const unsigned char*)x)[s] : 0; break;
                case 2: ((unsigned short*)col)[i] = inside ? ((const unsigned short*)x)[s] : 0; break;
                default: ((unsigned*)col)[i] = inside ? ((const unsigned*)x)[s] : 0; break;
                }
            }
        }
        """#
}
