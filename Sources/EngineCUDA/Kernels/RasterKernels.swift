extension KernelSource {
    /// The Gaussian rasterizer with gsplat 1.5.2/1.5.3 "classic" semantics, the same stages as the CPU renderer
    /// (`Sources/SplatRender`): project every Gaussian into every view of a batch, count the 16x16 tiles each
    /// touches, emit one `view | tile | depth` key per overlap, sort the keys (a stable LSD radix sort over the bits in
    /// use), find each tile's run, and blend each tile front to back with one thread per pixel.
    ///
    /// Gaussians arrive as rows of float32: position 3, opacity 1 (activated), scale 3 (linear), rotation 4 (w, x, y,
    /// z), then the SH coefficients of RGB (coefficient-major); FlashWorld's head layout is this with degree 2, 38
    /// values a row. Colours use SH up to `degree` (0-3) of the row's coefficients. A view is 24 floats: the world-to-camera
    /// rotation by rows (9), the translation (3), fx, fy, cx, cy, near, far, and the camera centre (3).
    static let raster = #"""
        #define RT_TILE 16
        #define RT_VIEW 24
        #define RT_ALPHA_MIN (1.0f / 255.0f)
        #define RT_T_MIN 1e-4f
        #define RT_EXTENT 3.33f
        #define RT_GUARD 0.3f

        // One splat as the rasterizer reads it: centre, conic, opacity, colour, depth and its pixel box.
        struct RasterSplat { float x, y, a, b, c, o, r, g, bl, z; int rx, ry; };

        __device__ __forceinline__ bool raster_project_one(const float* gs, const float* view, int width, int height, float eps2d,
                                                           int degree, RasterSplat& s) {
            const float px = gs[0], py = gs[1], pz = gs[2];
            const float* R = view;
            // Summed left to right, as gsplat (and the CPU renderer) do.
            const float mx = ((R[0] * px + R[1] * py) + R[2] * pz) + view[9];
            const float my = ((R[3] * px + R[4] * py) + R[5] * pz) + view[10];
            const float mz = ((R[6] * px + R[7] * py) + R[8] * pz) + view[11];
            const float fx = view[12], fy = view[13], cx = view[14], cy = view[15];
            if (!(mz >= view[16] && mz <= view[17])) return false;
            const float opacity = gs[3];
            if (!(opacity >= RT_ALPHA_MIN)) return false;
            float qw = gs[7], qx = gs[8], qy = gs[9], qz = gs[10];
            float qn = sqrtf(qw * qw + qx * qx + qy * qy + qz * qz);
            if (qn > 0.0f && isfinite(qn)) { qw /= qn; qx /= qn; qy /= qn; qz /= qn; } else { qw = 1.0f; qx = 0.0f; qy = 0.0f; qz = 0.0f; }
            const float least = 1.17549435e-38f;
            const float sx = fmaxf(gs[4], least), sy = fmaxf(gs[5], least), sz = fmaxf(gs[6], least);
            // Columns of R(q)·diag(s).
            float m0[3] = {sx * (1 - 2 * (qy * qy + qz * qz)), sx * (2 * (qx * qy + qw * qz)), sx * (2 * (qx * qz - qw * qy))};
            float m1[3] = {sy * (2 * (qx * qy - qw * qz)), sy * (1 - 2 * (qx * qx + qz * qz)), sy * (2 * (qy * qz + qw * qx))};
            float m2[3] = {sz * (2 * (qx * qz + qw * qy)), sz * (2 * (qy * qz - qw * qx)), sz * (1 - 2 * (qx * qx + qy * qy))};
            float c0[3], c1[3], c2[3];
            for (int k = 0; k < 3; ++k) {
                c0[k] = R[3 * k] * m0[0] + R[3 * k + 1] * m0[1] + R[3 * k + 2] * m0[2];
                c1[k] = R[3 * k] * m1[0] + R[3 * k + 1] * m1[1] + R[3 * k + 2] * m1[2];
                c2[k] = R[3 * k] * m2[0] + R[3 * k + 1] * m2[1] + R[3 * k + 2] * m2[2];
            }
            const float s00 = c0[0] * c0[0] + c1[0] * c1[0] + c2[0] * c2[0];
            const float s01 = c0[0] * c0[1] + c1[0] * c1[1] + c2[0] * c2[1];
            const float s02 = c0[0] * c0[2] + c1[0] * c1[2] + c2[0] * c2[2];
            const float s11 = c0[1] * c0[1] + c1[1] * c1[1] + c2[1] * c2[1];
            const float s12 = c0[1] * c0[2] + c1[1] * c1[2] + c2[1] * c2[2];
            const float s22 = c0[2] * c0[2] + c1[2] * c1[2] + c2[2] * c2[2];
            // EWA Jacobian at the centre clamped into the guard band around the frustum.
            const float w = (float)width, h = (float)height;
            const float guardX = RT_GUARD * 0.5f * w / fx, guardY = RT_GUARD * 0.5f * h / fy;
            const float limXPos = (w - cx) / fx + guardX, limXNeg = cx / fx + guardX;
            const float limYPos = (h - cy) / fy + guardY, limYNeg = cy / fy + guardY;
            const float rz = 1.0f / mz, rz2 = rz * rz;
            const float tx = mz * fminf(limXPos, fmaxf(-limXNeg, mx * rz));
            const float ty = mz * fminf(limYPos, fmaxf(-limYNeg, my * rz));
            const float j00 = fx * rz, j02 = -fx * tx * rz2, j11 = fy * rz, j12 = -fy * ty * rz2;
            const float a0 = j00 * s00 + j02 * s02, a1 = j00 * s01 + j02 * s12, a2 = j00 * s02 + j02 * s22;
            const float b1 = j11 * s11 + j12 * s12, b2 = j11 * s12 + j12 * s22;
            float cov00 = a0 * j00 + a2 * j02;
            const float cov01 = a1 * j11 + a2 * j12;
            float cov11 = b1 * j11 + b2 * j12;
            cov00 += eps2d;
            cov11 += eps2d;
            const float det = cov00 * cov11 - cov01 * cov01;
            if (!(det > 0.0f)) return false;
            const float inv = 1.0f / det;
            const float meanX = fx * mx * rz + cx, meanY = fy * my * rz + cy;
            const float extent = fminf(RT_EXTENT, sqrtf(2.0f * logf(opacity / RT_ALPHA_MIN)));
            const float radX = fminf(ceilf(extent * sqrtf(cov00)), 1073741824.0f), radY = fminf(ceilf(extent * sqrtf(cov11)), 1073741824.0f);
            if (!(isfinite(meanX) && isfinite(meanY) && isfinite(radX) && isfinite(radY))) return false;
            if (!(radX > 0.0f || radY > 0.0f)) return false;
            if (!(meanX + radX > 0.0f && meanX - radX < w && meanY + radY > 0.0f && meanY - radY < h)) return false;
            // SH degree 2 seen from the camera centre.
            float dx = px - view[18], dy = py - view[19], dz = pz - view[20];
            const float norm = sqrtf(dx * dx + dy * dy + dz * dz);
            if (norm > 0.0f) { dx /= norm; dy /= norm; dz /= norm; } else { dx = 0.0f; dy = 0.0f; dz = 1.0f; }
            // The CPU renderer's SphericalHarmonics.color, term for term.
            const float* sh = gs + 11;
            float rgb[3];
            const float z2 = dz * dz, t0 = -1.092548430592079f * dz;
            const float cc = dx * dx - dy * dy, ss = 2.0f * dx * dy;
            const float t1 = -2.285228997322329f * z2 + 0.4570457994644658f, t2 = 1.445305721320277f * dz;
            const float cc3 = dx * cc - dy * ss, ss3 = dx * ss + dy * cc;
            for (int ch = 0; ch < 3; ++ch) {
                float v = 0.2820947917738781f * sh[ch];
                if (degree >= 1) v += 0.48860251190292f * (-dy * sh[3 + ch] + dz * sh[6 + ch] - dx * sh[9 + ch]);
                if (degree >= 2) {
                    v += 0.5462742152960395f * ss * sh[12 + ch] + t0 * dy * sh[15 + ch];
                    v += (0.9461746957575601f * z2 - 0.3153915652525201f) * sh[18 + ch];
                    v += t0 * dx * sh[21 + ch] + 0.5462742152960395f * cc * sh[24 + ch];
                }
                if (degree >= 3) {
                    v += -0.5900435899266435f * ss3 * sh[27 + ch] + t2 * ss * sh[30 + ch] + t1 * dy * sh[33 + ch];
                    v += dz * (1.865881662950577f * z2 - 1.119528997770346f) * sh[36 + ch];
                    v += t1 * dx * sh[39 + ch] + t2 * cc * sh[42 + ch] - 0.5900435899266435f * cc3 * sh[45 + ch];
                }
                rgb[ch] = v + 0.5f;
            }
            if (!(isfinite(rgb[0]) && isfinite(rgb[1]) && isfinite(rgb[2]))) return false;
            s.x = meanX; s.y = meanY;
            s.a = cov11 * inv; s.b = -cov01 * inv; s.c = cov00 * inv;
            s.o = opacity;
            s.r = fmaxf(rgb[0], 0.0f); s.g = fmaxf(rgb[1], 0.0f); s.bl = fmaxf(rgb[2], 0.0f);
            s.z = mz;
            s.rx = (int)radX; s.ry = (int)radY;
            return true;
        }

        __device__ __forceinline__ void raster_tile_rect(const RasterSplat& s, int tilesWide, int tilesHigh, int& x0, int& y0, int& x1, int& y1) {
            const float mx = s.x / RT_TILE, my = s.y / RT_TILE, rx = (float)s.rx / RT_TILE, ry = (float)s.ry / RT_TILE;
            x0 = (int)fminf(fmaxf(floorf(mx - rx), 0.0f), (float)tilesWide);
            y0 = (int)fminf(fmaxf(floorf(my - ry), 0.0f), (float)tilesHigh);
            x1 = (int)fminf(fmaxf(ceilf(mx + rx), 0.0f), (float)tilesWide);
            y1 = (int)fminf(fmaxf(ceilf(my + ry), 0.0f), (float)tilesHigh);
        }

        // Stage 1: every (view, Gaussian) of the batch: its splat record and how many tiles it touches.
        extern "C" __global__ void raster_project(const float* gaussians, i64 n, int stride, int degree, const float* views, int nviews,
                                                  int width, int height, float eps2d, RasterSplat* splats, unsigned* counts) {
            const int tilesWide = (width + RT_TILE - 1) / RT_TILE, tilesHigh = (height + RT_TILE - 1) / RT_TILE;
            GRID_STRIDE(i, n * nviews) {
                const i64 g = i % n, v = i / n;
                RasterSplat s;
                unsigned count = 0;
                if (raster_project_one(gaussians + g * stride, views + v * RT_VIEW, width, height, eps2d, degree, s)) {
                    int x0, y0, x1, y1;
                    raster_tile_rect(s, tilesWide, tilesHigh, x0, y0, x1, y1);
                    if (x1 > x0 && y1 > y0) count = (unsigned)((x1 - x0) * (y1 - y0));
                } else {
                    s.rx = 0; s.ry = 0;
                }
                splats[i] = s;
                counts[i] = count;
            }
        }

        // Stage 2: one key per overlap, `view << (tileBits + 32) | tile << 32 | depth bits` (depths are positive, so
        // their bits order as the values), the splat's batch index as the value.
        extern "C" __global__ void raster_keys(const RasterSplat* splats, const unsigned* counts, const unsigned* offsets, i64 total,
                                               i64 n, int width, int height, int tileBits, u64* keys, unsigned* values) {
            const int tilesWide = (width + RT_TILE - 1) / RT_TILE, tilesHigh = (height + RT_TILE - 1) / RT_TILE;
            GRID_STRIDE(i, total) {
                if (counts[i] == 0) continue;
                const RasterSplat s = splats[i];
                int x0, y0, x1, y1;
                raster_tile_rect(s, tilesWide, tilesHigh, x0, y0, x1, y1);
                const u64 view = (u64)(i / n);
                unsigned at = offsets[i];
                const u64 depth = (u64)__float_as_uint(s.z);
                for (int ty = y0; ty < y1; ++ty)
                    for (int tx = x0; tx < x1; ++tx) {
                        keys[at] = (view << (tileBits + 32)) | ((u64)(ty * tilesWide + tx) << 32) | depth;
                        values[at] = (unsigned)i;
                        ++at;
                    }
            }
        }

        // Exclusive scan of unsigned counts, in three kernels: per-block scans (1024 per block) with the block totals,
        // a scan of the totals (one block, looping), and the totals added back.
        // Inclusive scan of `part` by a block of 1024 threads (Hillis-Steele).
        __device__ __forceinline__ void block_scan_1024(unsigned* part, int t) {
            __syncthreads();
            for (int step = 1; step < 1024; step <<= 1) {
                unsigned add = t >= step ? part[t - step] : 0u;
                __syncthreads();
                part[t] += add;
                __syncthreads();
            }
        }
        extern "C" __global__ void scan_blocks(const unsigned* in, unsigned* out, unsigned* sums, i64 n) {
            __shared__ unsigned part[1024];
            const i64 base = (i64)blockIdx.x * 1024;
            const int t = threadIdx.x;
            unsigned v = base + t < n ? in[base + t] : 0u;
            part[t] = v;
            block_scan_1024(part, t);
            if (base + t < n) out[base + t] = part[t] - v;
            if (t == 1023) sums[blockIdx.x] = part[1023];
        }
        extern "C" __global__ void scan_totals(unsigned* sums, i64 blocks, unsigned* total) {
            __shared__ unsigned part[1024];
            __shared__ unsigned carry;
            const int t = threadIdx.x;
            if (t == 0) carry = 0;
            __syncthreads();
            for (i64 base = 0; base < blocks; base += 1024) {
                unsigned v = base + t < blocks ? sums[base + t] : 0u;
                part[t] = v;
                block_scan_1024(part, t);
                if (base + t < blocks) sums[base + t] = carry + part[t] - v;
                __syncthreads();
                if (t == 1023) carry += part[1023];
                __syncthreads();
            }
            if (t == 0) *total = carry;
        }
        extern "C" __global__ void scan_add(unsigned* out, const unsigned* sums, i64 n) {
            GRID_STRIDE(i, n) out[i] += sums[i / 1024];
        }

        // Stable LSD radix sort, 8 bits a pass. Blocks take runs of RS_ITEMS keys; the histogram is laid out digit-major
        // (digit * blocks + block) so its exclusive scan is every block's first slot for every digit.
        #define RS_THREADS 256
        #define RS_ROUNDS 16
        #define RS_ITEMS (RS_THREADS * RS_ROUNDS)
        extern "C" __global__ void radix_histogram(const u64* keys, i64 n, int shift, unsigned* histogram, i64 blocks) {
            __shared__ unsigned bins[256];
            bins[threadIdx.x] = 0;
            __syncthreads();
            const i64 base = (i64)blockIdx.x * RS_ITEMS;
            for (int r = 0; r < RS_ROUNDS; ++r) {
                i64 i = base + r * RS_THREADS + threadIdx.x;
                if (i < n) atomicAdd(&bins[(keys[i] >> shift) & 0xFF], 1u);
            }
            __syncthreads();
            histogram[(i64)threadIdx.x * blocks + blockIdx.x] = bins[threadIdx.x];
        }
        extern "C" __global__ void radix_scatter(const u64* keys, const unsigned* values, i64 n, int shift, const unsigned* offsets, i64 blocks,
                                                 u64* keysOut, unsigned* valuesOut) {
            __shared__ unsigned next[256];
            __shared__ unsigned warpCounts[RS_THREADS / 32][256];
            const int t = threadIdx.x, warp = t >> 5, lane = t & 31;
            next[t] = offsets[(i64)t * blocks + blockIdx.x];
            const i64 base = (i64)blockIdx.x * RS_ITEMS;
            for (int r = 0; r < RS_ROUNDS; ++r) {
                for (int w = 0; w < RS_THREADS / 32; ++w) warpCounts[w][t] = 0;
                __syncthreads();
                const i64 i = base + r * RS_THREADS + t;
                const bool live = i < n;
                const u64 key = live ? keys[i] : 0;
                const unsigned digit = live ? (unsigned)((key >> shift) & 0xFF) : 256u;
                // Lanes with the same digit, and this lane's rank among them (lane order is index order).
                const unsigned peers = __match_any_sync(0xffffffffu, digit);
                const unsigned rank = __popc(peers & ((1u << lane) - 1u));
                if (live && rank == 0) warpCounts[warp][digit] = __popc(peers);
                __syncthreads();
                if (live) {
                    unsigned before = 0;
                    for (int w = 0; w < warp; ++w) before += warpCounts[w][digit];
                    const unsigned at = next[digit] + before + rank;
                    keysOut[at] = key;
                    valuesOut[at] = values[i];
                }
                __syncthreads();
                unsigned add = 0;
                for (int w = 0; w < RS_THREADS / 32; ++w) add += warpCounts[w][t];
                next[t] += add;
                __syncthreads();
            }
        }

        // Stage 4: each (view, tile)'s run of sorted keys, as [start, end).
        extern "C" __global__ void raster_ranges(const u64* keys, i64 total, int tileBits, unsigned* ranges) {
            GRID_STRIDE(i, total) {
                const u64 bin = keys[i] >> 32;
                if (i == 0 || (keys[i - 1] >> 32) != bin) ranges[2 * bin] = (unsigned)i;
                if (i == total - 1 || (keys[i + 1] >> 32) != bin) ranges[2 * bin + 1] = (unsigned)(i + 1);
            }
        }

        // Stage 5: one block per (tile, view), one thread per pixel, splats staged through shared memory in depth order.
        // mode 0 writes RGB with the background; mode 1 writes FlashWorld's renders, clamp(2·RGB − 1, −1, 1).
        extern "C" __global__ void __launch_bounds__(256) raster_tiles(
            const RasterSplat* splats, const unsigned* values, const unsigned* ranges, int width, int height, int tileBits,
            float bgR, float bgG, float bgB, float maxAlpha, int mode, void* rgbOut, int dt_out, float* alphaOut, float* depthOut, i64 viewOffset) {
            __shared__ RasterSplat batch[256];
            const int tilesWide = (width + RT_TILE - 1) / RT_TILE;
            const int tile = blockIdx.x, view = blockIdx.y;
            const int tx0 = (tile % tilesWide) * RT_TILE, ty0 = (tile / tilesWide) * RT_TILE;
            const int col = tx0 + (threadIdx.x % RT_TILE), row = ty0 + (threadIdx.x / RT_TILE);
            const bool inside = col < width && row < height;
            const u64 bin = ((u64)view << tileBits) | (u64)tile;
            const unsigned start = ranges[2 * bin], end = ranges[2 * bin + 1];
            float T = 1.0f, cr = 0.0f, cg = 0.0f, cb = 0.0f, cz = 0.0f;
            bool done = !inside;
            const float pxc = (float)col + 0.5f, pyc = (float)row + 0.5f;
            for (unsigned b0 = start; b0 < end; b0 += 256) {
                if (__syncthreads_count(done) == 256) break;
                if (b0 + threadIdx.x < end) batch[threadIdx.x] = splats[values[b0 + threadIdx.x]];
                __syncthreads();
                const int m = (int)min(256u, end - b0);
                for (int k = 0; k < m && !done; ++k) {
                    const RasterSplat s = batch[k];
                    // Only pixels in the splat's opacity-aware box, as the CPU renderer.
                    const float rx = (float)s.rx, ry = (float)s.ry;
                    if ((float)col < ceilf(s.x - rx - 0.5f) || (float)col > floorf(s.x + rx - 0.5f)) continue;
                    if ((float)row < ceilf(s.y - ry - 0.5f) || (float)row > floorf(s.y + ry - 0.5f)) continue;
                    const float dx = s.x - pxc, dy = s.y - pyc;
                    const float sigma = (0.5f * s.a * dx * dx + 0.5f * s.c * dy * dy) + s.b * dx * dy;
                    if (sigma < 0.0f) continue;
                    const float alpha = fminf(maxAlpha, s.o * expf(-sigma));
                    if (alpha < RT_ALPHA_MIN) continue;
                    const float next = T * (1.0f - alpha);
                    if (next <= RT_T_MIN) { done = true; break; }
                    const float v = alpha * T;
                    cr += s.r * v; cg += s.g * v; cb += s.bl * v; cz += s.z * v;
                    T = next;
                }
            }
            if (!inside) return;
            const i64 plane = (i64)width * height, pixel = (i64)row * width + col, v = viewOffset + view;
            float rgb[3] = {cr + T * bgR, cg + T * bgG, cb + T * bgB};
            for (int ch = 0; ch < 3; ++ch) {
                float value = mode == 1 ? fminf(fmaxf(rgb[ch] * 2.0f - 1.0f, -1.0f), 1.0f) : rgb[ch];
                store_f(rgbOut, (v * 3 + ch) * plane + pixel, dt_out, value);
            }
            if (alphaOut) alphaOut[v * plane + pixel] = 1.0f - T;
            if (depthOut) depthOut[v * plane + pixel] = cz;
        }
        """#
}
