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

extension KernelSource {
    /// Flash attention on tensor cores for bf16 q, k, v with head dimension 128 (the Wan transformer's): FlashAttention-2's
    /// forward with `mma.sync.m16n8k16` (bf16 in, float32 accumulate). A block of 4 warps takes 64 query rows of one
    /// (batch, head); each warp keeps its 16 rows' Q fragments, scores, running max and sum and output in registers
    /// while key/value tiles of 64 pass through shared memory (K row-major, V transposed, rows padded by 16 bytes so
    /// the fragment loads hit 32 different banks). P goes from the score accumulators straight into the A fragments of
    /// the P·V product. Operands are views whose last axis is contiguous; the output is contiguous [B, H, L, 128].
    static let flashAttention = #"""
        #define FA_D 128
        #define FA_BM 64
        #define FA_BN 64
        #define FA_KS (FA_D + 8)
        #define FA_VS (FA_BN + 8)
        // bf16 tensor-core instructions exist from sm_80; older GPUs get an empty kernel the host never launches.
        #if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
        __device__ __forceinline__ void mma_bf16(float* c, const unsigned* a, unsigned b0, unsigned b1) {
            asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                         : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                         : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
        }
        // Two floats as bf16x2: `lo` in the low half (the lower column).
        __device__ __forceinline__ unsigned pack_bf16(float lo, float hi) {
            unsigned r;
            asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
            return r;
        }
        #endif
        extern "C" __global__ void __launch_bounds__(128) flash_attention_bf16_d128(
            const unsigned short* q, View qv, const unsigned short* k, View kv, const unsigned short* v, View vv,
            void* out, int dt_out, float scale_log2) {
        #if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
            __shared__ __align__(16) unsigned short ks[FA_BM * FA_KS];
            __shared__ __align__(16) unsigned short vt[FA_D * FA_VS];
            const i64 H = qv.shape[1], L = qv.shape[2], S = kv.shape[2];
            const i64 bh = blockIdx.y, b = bh / H, h = bh % H;
            const i64 q0 = (i64)blockIdx.x * FA_BM;
            const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
            const unsigned short* qb = q + b * qv.stride[0] + h * qv.stride[1];
            const unsigned short* kb = k + b * kv.stride[0] + h * kv.stride[1];
            const unsigned short* vb = v + b * vv.stride[0] + h * vv.stride[1];
            const uint4 zero = make_uint4(0, 0, 0, 0);

            // Q tile through shared memory into registers: 8 k-steps of 4 fragments.
            for (int c = tid; c < FA_BM * (FA_D / 8); c += 128) {
                int row = c / (FA_D / 8), col = (c % (FA_D / 8)) * 8;
                i64 r = q0 + row;
                uint4 val = r < L ? *(const uint4*)(qb + r * qv.stride[2] + col) : zero;
                *(uint4*)(ks + row * FA_KS + col) = val;
            }
            __syncthreads();
            unsigned qa[8][4];
            const int wr = warp * 16;
            #pragma unroll
            for (int kk = 0; kk < 8; ++kk) {
                qa[kk][0] = *(const unsigned*)(ks + (wr + g) * FA_KS + kk * 16 + t * 2);
                qa[kk][1] = *(const unsigned*)(ks + (wr + g + 8) * FA_KS + kk * 16 + t * 2);
                qa[kk][2] = *(const unsigned*)(ks + (wr + g) * FA_KS + kk * 16 + 8 + t * 2);
                qa[kk][3] = *(const unsigned*)(ks + (wr + g + 8) * FA_KS + kk * 16 + 8 + t * 2);
            }
            float o[16][4];
            #pragma unroll
            for (int n = 0; n < 16; ++n) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }
            float m0 = -F_INF, m1 = -F_INF, l0 = 0.0f, l1 = 0.0f;

            for (i64 s0 = 0; s0 < S; s0 += FA_BN) {
                __syncthreads();
                for (int c = tid; c < FA_BN * (FA_D / 8); c += 128) {
                    int row = c / (FA_D / 8), col = (c % (FA_D / 8)) * 8;
                    i64 r = s0 + row;
                    *(uint4*)(ks + row * FA_KS + col) = r < S ? *(const uint4*)(kb + r * kv.stride[2] + col) : zero;
                }
                // V goes in transposed with the key index fastest across lanes, so a warp's 2-byte stores fill 16
                // consecutive words (no bank conflicts).
                for (int c = tid; c < FA_BN * (FA_D / 8); c += 128) {
                    int row = c % FA_BN, col = (c / FA_BN) * 8;
                    i64 r = s0 + row;
                    uint4 vval = r < S ? *(const uint4*)(vb + r * vv.stride[2] + col) : zero;
                    const unsigned short* ve = (const unsigned short*)&vval;
                    #pragma unroll
                    for (int i = 0; i < 8; ++i) vt[(col + i) * FA_VS + row] = ve[i];
                }
                __syncthreads();

                float s[8][4];
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    s[j][0] = 0.0f; s[j][1] = 0.0f; s[j][2] = 0.0f; s[j][3] = 0.0f;
                    #pragma unroll
                    for (int kk = 0; kk < 8; ++kk) {
                        const unsigned short* kr = ks + (j * 8 + g) * FA_KS + kk * 16 + t * 2;
                        mma_bf16(s[j], qa[kk], *(const unsigned*)kr, *(const unsigned*)(kr + 8));
                    }
                }
                // Scale into base 2, mask keys past the end, and take each row's maximum over the quad.
                float mx0 = -F_INF, mx1 = -F_INF;
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    #pragma unroll
                    for (int e = 0; e < 4; ++e) {
                        i64 key = s0 + j * 8 + t * 2 + (e & 1);
                        s[j][e] = key < S ? s[j][e] * scale_log2 : -F_INF;
                    }
                    mx0 = fmaxf(mx0, fmaxf(s[j][0], s[j][1]));
                    mx1 = fmaxf(mx1, fmaxf(s[j][2], s[j][3]));
                }
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 1));
                mx0 = fmaxf(mx0, __shfl_xor_sync(0xffffffffu, mx0, 2));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 1));
                mx1 = fmaxf(mx1, __shfl_xor_sync(0xffffffffu, mx1, 2));
                const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
                // A row with no key yet keeps an empty state (a fully masked tile adds nothing).
                const float b0 = n0 == -F_INF ? 0.0f : n0, b1 = n1 == -F_INF ? 0.0f : n1;
                const float c0 = exp2f(m0 - b0), c1 = exp2f(m1 - b1);
                m0 = n0;
                m1 = n1;
                float sum0 = 0.0f, sum1 = 0.0f;
                #pragma unroll
                for (int j = 0; j < 8; ++j) {
                    s[j][0] = exp2f(s[j][0] - b0);
                    s[j][1] = exp2f(s[j][1] - b0);
                    s[j][2] = exp2f(s[j][2] - b1);
                    s[j][3] = exp2f(s[j][3] - b1);
                    sum0 += s[j][0] + s[j][1];
                    sum1 += s[j][2] + s[j][3];
                }
                l0 = l0 * c0 + sum0;
                l1 = l1 * c1 + sum1;
                #pragma unroll
                for (int n = 0; n < 16; ++n) { o[n][0] *= c0; o[n][1] *= c0; o[n][2] *= c1; o[n][3] *= c1; }
                // P · V: score accumulators become A fragments, V's transposed tile the B fragments.
                #pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    unsigned pa[4];
                    pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
                    pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
                    pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                    pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                    #pragma unroll
                    for (int n = 0; n < 16; ++n) {
                        const unsigned short* vr = vt + (n * 8 + g) * FA_VS + kk * 16 + t * 2;
                        mma_bf16(o[n], pa, *(const unsigned*)vr, *(const unsigned*)(vr + 8));
                    }
                }
            }
            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
            const i64 r0 = q0 + wr + g, r1 = r0 + 8;
            const i64 obase = (b * H + h) * L;
            #pragma unroll
            for (int n = 0; n < 16; ++n) {
                int col = n * 8 + t * 2;
                if (r0 < L) {
                    store_f(out, (obase + r0) * FA_D + col, dt_out, o[n][0] * i0);
                    store_f(out, (obase + r0) * FA_D + col + 1, dt_out, o[n][1] * i0);
                }
                if (r1 < L) {
                    store_f(out, (obase + r1) * FA_D + col, dt_out, o[n][2] * i1);
                    store_f(out, (obase + r1) * FA_D + col + 1, dt_out, o[n][3] * i1);
                }
            }
        #endif
        }
        """#
}
