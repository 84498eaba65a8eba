extension KernelSource {
    /// Fused scaled dot-product attention without an L x S matrix in memory (online softmax, float32 state).
    ///
    /// One warp per query row, the head dimension spread over the lanes (`CH` values each, so `D, DV <= 32·CH`);
    /// the block's warps share key/value tiles of `tile` keys staged in shared memory as float32. q, k, v and the
    /// additive bias are strided views (bias broadcast to [B, H, L, S] with zero strides), so the callers' permutes
    /// never materialise. The output is contiguous [B, H, L, DV].
    static let attention = #"""
        template <int CH>
        __device__ __forceinline__ void attention_rows(const void* q, View qv, const void* k, View kv, const void* v, View vv,
                                                       const void* bias, View bv, int has_bias, void* out, int dt_out, float scale, int tile) {
            extern __shared__ float smem[];
            const i64 H = qv.shape[1], L = qv.shape[2], D = qv.shape[3], S = kv.shape[2], DV = vv.shape[3];
            const i64 bh = blockIdx.y, b = bh / H, h = bh % H;
            const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, warps = blockDim.x >> 5;
            const i64 row = (i64)blockIdx.x * warps + warp;
            const bool active = row < L;
            float* ks = smem;
            float* vs = smem + (i64)tile * D;
            float qr[CH], acc[CH];
            const i64 qbase = b * qv.stride[0] + h * qv.stride[1] + (active ? row : 0) * qv.stride[2];
            #pragma unroll
            for (int c = 0; c < CH; ++c) {
                int d = c * 32 + lane;
                qr[c] = (active && d < D) ? load_f(q, qbase + d * qv.stride[3], qv.dtype) : 0.0f;
                acc[c] = 0.0f;
            }
            const i64 kbase = b * kv.stride[0] + h * kv.stride[1], vbase = b * vv.stride[0] + h * vv.stride[1];
            const i64 bbase = b * bv.stride[0] + h * bv.stride[1] + (active ? row : 0) * bv.stride[2];
            float m = -F_INF, l = 0.0f;
            for (i64 s0 = 0; s0 < S; s0 += tile) {
                const int tn = (int)min((i64)tile, S - s0);
                __syncthreads();
                for (i64 e = threadIdx.x; e < (i64)tn * D; e += blockDim.x) {
                    i64 kk = e / D, d = e % D;
                    ks[e] = load_f(k, kbase + (s0 + kk) * kv.stride[2] + d * kv.stride[3], kv.dtype);
                }
                for (i64 e = threadIdx.x; e < (i64)tn * DV; e += blockDim.x) {
                    i64 kk = e / DV, d = e % DV;
                    vs[e] = load_f(v, vbase + (s0 + kk) * vv.stride[2] + d * vv.stride[3], vv.dtype);
                }
                __syncthreads();
                if (!active) continue;
                for (int kk = 0; kk < tn; ++kk) {
                    float part = 0.0f;
                    #pragma unroll
                    for (int c = 0; c < CH; ++c) {
                        int d = c * 32 + lane;
                        if (d < D) part += qr[c] * ks[(i64)kk * D + d];
                    }
                    #pragma unroll
                    for (int o = 16; o > 0; o >>= 1) part += __shfl_xor_sync(0xffffffffu, part, o);
                    float score = part * scale;
                    if (has_bias) score += load_f(bias, bbase + (s0 + kk) * bv.stride[3], bv.dtype);
                    float mn = fmaxf(m, score);
                    if (mn == -F_INF) continue;
                    float correction = expf(m - mn), p = expf(score - mn);
                    l = l * correction + p;
                    #pragma unroll
                    for (int c = 0; c < CH; ++c) {
                        int d = c * 32 + lane;
                        if (d < DV) acc[c] = acc[c] * correction + p * vs[(i64)kk * DV + d];
                    }
                    m = mn;
                }
            }
            if (!active) return;
            const float inv = 1.0f / l;
            const i64 obase = ((b * H + h) * L + row) * DV;
            #pragma unroll
            for (int c = 0; c < CH; ++c) {
                int d = c * 32 + lane;
                if (d < DV) store_f(out, obase + d, dt_out, acc[c] * inv);
            }
        }
        #define ATTENTION_ENTRY(CH) \
            extern "C" __global__ void attention_rows_##CH(const void* q, View qv, const void* k, View kv, const void* v, View vv, \
                const void* bias, View bv, int has_bias, void* out, int dt_out, float scale, int tile) { \
                attention_rows<CH>(q, qv, k, kv, v, vv, bias, bv, has_bias, out, dt_out, scale, tile); \
            }
        ATTENTION_ENTRY(2)
        ATTENTION_ENTRY(4)
        ATTENTION_ENTRY(8)
        ATTENTION_ENTRY(16)
        ATTENTION_ENTRY(32)
        """#
}
