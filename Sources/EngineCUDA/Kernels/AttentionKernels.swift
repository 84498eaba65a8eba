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
    /// forward with `mma.sync.m16n8k16` (bf16 in, float32 accumulate). A block of 8 warps takes 128 query rows of one
    /// (batch, head); each warp keeps its 16 rows' Q fragments, scores, running max and sum and output in registers.
    /// Key and value tiles of 64 rows arrive by `cp.async` into one buffer each, the value tile's copy overlapping the
    /// Q·Kᵀ product and the next key tile's the softmax and P·V; fragments come out of shared memory by `ldmatrix`
    /// (`.trans` for V), rows padded by 16 bytes so the eight rows of each 8x8 matrix hit distinct banks. P goes from
    /// the score accumulators straight into the A fragments of the P·V product. Operands are views whose last axis is
    /// contiguous with 16-byte aligned rows; the bf16 output is a view too, so it can land in [B, L, H, 128] directly.
    static let flashAttention = #"""
        #define FA_D 128
        #define FA_BM 128
        #define FA_BN 64
        #define FA_RS (FA_D + 8)
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
        __device__ __forceinline__ unsigned shared_address(const void* p) { return (unsigned)__cvta_generic_to_shared(p); }
        // 16 bytes global -> shared without passing through registers; a row past the end is zero-filled.
        __device__ __forceinline__ void copy16_async(unsigned dst, const void* src, bool valid) {
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;" :: "r"(dst), "l"(src), "r"(valid ? 16 : 0));
        }
        __device__ __forceinline__ void copies_commit() { asm volatile("cp.async.commit_group;"); }
        template <int N> __device__ __forceinline__ void copies_wait() { asm volatile("cp.async.wait_group %0;" :: "n"(N)); }
        __device__ __forceinline__ void ldmatrix4(unsigned* r, unsigned address) {
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
        }
        __device__ __forceinline__ void ldmatrix4_trans(unsigned* r, unsigned address) {
            asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];"
                         : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3]) : "r"(address));
        }
        // `rows` rows of 128 bf16 from a strided source into shared memory (row stride FA_RS), 256 threads.
        __device__ __forceinline__ void load_tile_async(unsigned short* dst, const unsigned short* src, i64 row_stride, i64 first,
                                                        i64 count, int rows, int tid) {
            for (int c = tid; c < rows * (FA_D / 8); c += 256) {
                int row = c >> 4, col = (c & 15) * 8;
                bool valid = first + row < count;
                copy16_async(shared_address(dst + row * FA_RS + col), valid ? src + (first + row) * row_stride + col : src, valid);
            }
        }
        #endif
        extern "C" __global__ void __launch_bounds__(256) flash_attention_bf16_d128(
            const unsigned short* q, View qv, const unsigned short* k, View kv, const unsigned short* v, View vv,
            void* out, View ov, float scale_log2) {
        #if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
            // The Q tile first, then the key tile (rows 0..63) and the value tile (rows 64..127).
            __shared__ __align__(128) unsigned short tiles[FA_BM * FA_RS];
            unsigned short* ks = tiles;
            unsigned short* vs = tiles + FA_BN * FA_RS;
            const i64 H = qv.shape[1], L = qv.shape[2], S = kv.shape[2];
            const i64 bh = blockIdx.y, b = bh / H, h = bh % H;
            const i64 q0 = (i64)blockIdx.x * FA_BM;
            const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
            const unsigned short* qb = q + b * qv.stride[0] + h * qv.stride[1];
            const unsigned short* kb = k + b * kv.stride[0] + h * kv.stride[1];
            const unsigned short* vb = v + b * vv.stride[0] + h * vv.stride[1];
            const int wr = warp * 16;

            load_tile_async(tiles, qb + q0 * qv.stride[2], qv.stride[2], 0, L - q0, FA_BM, tid);
            copies_commit();
            copies_wait<0>();
            __syncthreads();
            unsigned qa[8][4];
            #pragma unroll
            for (int kk = 0; kk < 8; ++kk)
                ldmatrix4(qa[kk], shared_address(tiles + (wr + (lane & 15)) * FA_RS + kk * 16 + (lane >> 4) * 8));
            __syncthreads();
            load_tile_async(ks, kb, kv.stride[2], 0, S, FA_BN, tid);
            copies_commit();

            float o[16][4];
            #pragma unroll
            for (int n = 0; n < 16; ++n) { o[n][0] = 0.0f; o[n][1] = 0.0f; o[n][2] = 0.0f; o[n][3] = 0.0f; }
            float m0 = -F_INF, m1 = -F_INF, l0 = 0.0f, l1 = 0.0f;
            // Per-lane ldmatrix offsets: K as B of Q·Kᵀ (two key blocks of 8 per x4), V transposed as B of P·V.
            const int k_row = (lane & 7) + ((lane >> 4) << 3), k_col = ((lane >> 3) & 1) * 8;
            const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_col = (lane >> 4) * 8;

            for (i64 s0 = 0; s0 < S; s0 += FA_BN) {
                load_tile_async(vs, vb, vv.stride[2], s0, S, FA_BN, tid);
                copies_commit();
                copies_wait<1>();
                __syncthreads();

                float s[8][4];
                #pragma unroll
                for (int j = 0; j < 8; ++j) { s[j][0] = 0.0f; s[j][1] = 0.0f; s[j][2] = 0.0f; s[j][3] = 0.0f; }
                #pragma unroll
                for (int kk = 0; kk < 8; ++kk) {
                    #pragma unroll
                    for (int j = 0; j < 8; j += 2) {
                        unsigned kf[4];
                        ldmatrix4(kf, shared_address(ks + (j * 8 + k_row) * FA_RS + kk * 16 + k_col));
                        mma_bf16(s[j], qa[kk], kf[0], kf[1]);
                        mma_bf16(s[j + 1], qa[kk], kf[2], kf[3]);
                    }
                }
                copies_wait<0>();
                __syncthreads();
                if (s0 + FA_BN < S) {
                    load_tile_async(ks, kb, kv.stride[2], s0 + FA_BN, S, FA_BN, tid);
                    copies_commit();
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
                // P · V: score accumulators become A fragments, V's tile (transposed by ldmatrix) the B fragments.
                #pragma unroll
                for (int kk = 0; kk < 4; ++kk) {
                    unsigned pa[4];
                    pa[0] = pack_bf16(s[2 * kk][0], s[2 * kk][1]);
                    pa[1] = pack_bf16(s[2 * kk][2], s[2 * kk][3]);
                    pa[2] = pack_bf16(s[2 * kk + 1][0], s[2 * kk + 1][1]);
                    pa[3] = pack_bf16(s[2 * kk + 1][2], s[2 * kk + 1][3]);
                    #pragma unroll
                    for (int n = 0; n < 16; n += 2) {
                        unsigned vf[4];
                        ldmatrix4_trans(vf, shared_address(vs + (kk * 16 + v_row) * FA_RS + n * 8 + v_col));
                        mma_bf16(o[n], pa, vf[0], vf[1]);
                        mma_bf16(o[n + 1], pa, vf[2], vf[3]);
                    }
                }
                // Every warp is done with this value tile before the next one lands on it.
                __syncthreads();
            }
            l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
            l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
            l1 += __shfl_xor_sync(0xffffffffu, l1, 2);
            const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
            const i64 r0 = q0 + wr + g, r1 = r0 + 8;
            const i64 obase = b * ov.stride[0] + h * ov.stride[1];
            #pragma unroll
            for (int n = 0; n < 16; ++n) {
                int col = n * 8 + t * 2;
                if (r0 < L) *(unsigned*)((unsigned short*)out + obase + r0 * ov.stride[2] + col) = pack_bf16(o[n][0] * i0, o[n][1] * i0);
                if (r1 < L) *(unsigned*)((unsigned short*)out + obase + r1 * ov.stride[2] + col) = pack_bf16(o[n][2] * i1, o[n][3] * i1);
            }
        #endif
        }
        """#
}
