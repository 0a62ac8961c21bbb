/* tuneforge's CPU kernels: float32, row-major, contiguous (rope's rows at any strides); threads from
 * OpenMP (torch's own runtime).
 *
 * LoRA with dropout, without materialising the dropped input: the mask is drawn, applied and
 * multiplied in one pass, and the backward pass draws it again instead of storing it.
 *
 * Masks: element e (flat index into a row-major (N, in) tensor) is kept when 16-bit lane e of the
 * SplitMix64 stream started at `seed` is at least `threshold` (of 65536); lane e is bits
 * 16*(e%4) .. 16*(e%4)+15 of the stream's output number e/4. threshold 0 keeps everything. The
 * stream is counter-based, so every thread draws its own part of a mask and the result does not
 * depend on the thread count. r, the LoRA rank, a multiple of 8.
 *
 * SwiGLU, silu(g) * u, RMSNorm and rotary position embeddings: forward and backward each in one pass
 * (eager torch makes three to six passes forward and more backward).
 *
 * Causal attention over the samples packed in a row, forward and backward (at the end). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#define GAMMA 0x9e3779b97f4a7c15ULL
#define SEG 256  /* row elements handled at once: a multiple of 8 */
#define COLS 64  /* columns per task in lora_down_grad: a multiple of 8, small for load balance */
#define RB 4     /* rows handled at once, sharing each load of A */
#define TILE 4096 /* elements per task in masked_copy */

typedef float v8 __attribute__((vector_size(32)));

static inline v8 load8(const float *p) { v8 v; memcpy(&v, p, sizeof v); return v; }
static inline void store8(float *p, v8 v) { memcpy(p, &v, sizeof v); }

static inline uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The mask lanes of flat elements start .. start+len-1 (len <= SEG). */
static void draw_lanes(uint16_t *lanes, int64_t start, int64_t len, uint64_t seed) {
    uint64_t draws[SEG / 4 + 2];
    int64_t first = start / 4, off = start % 4, count = (off + len + 3) / 4;
    for (int64_t d = 0; d < count; d++) draws[d] = mix64(seed + (uint64_t)(first + d + 1) * GAMMA);
    memcpy(lanes, (const uint16_t *)draws + off, len * sizeof(uint16_t)); /* little-endian lanes */
}

/* dst[0..len) = keep ⊙ src[0..len), src holding flat elements start.. (len <= SEG). */
static void masked_segment(const float *src, float *dst, int64_t start, int64_t len, uint64_t seed,
                           uint16_t threshold) {
    if (threshold == 0) {
        memcpy(dst, src, len * sizeof(float));
        return;
    }
    uint16_t lanes[SEG];
    draw_lanes(lanes, start, len, seed);
    for (int64_t j = 0; j < len; j++) dst[j] = lanes[j] >= threshold ? src[j] : 0.0f;
}

/* dst = keep ⊙ src, or dst += keep ⊙ src when `accumulate`; n elements. */
void masked_copy(const float *src, float *dst, int64_t n, uint64_t seed, uint32_t threshold, int accumulate) {
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < n; t += TILE) {
        float kept[SEG];
        for (int64_t s = t; s < t + TILE && s < n; s += SEG) {
            int64_t len = n - s < SEG ? n - s : SEG;
            masked_segment(src + s, kept, s, len, seed, (uint16_t)threshold);
            if (accumulate)
                for (int64_t j = 0; j < len; j++) dst[s + j] += kept[j];
            else
                memcpy(dst + s, kept, len * sizeof(float));
        }
    }
}

/* low[q] += m[q] (rows × len, row stride SEG) times at[0..len) (len × r), for r columns kb .. kb+8*vecs. */
static inline void down_block(const float *m, int rows, int64_t len, const float *at, int64_t r, int64_t kb, int vecs,
                              float *low) {
    v8 acc[RB][2] = {{{0}}};
    for (int64_t j = 0; j < len; j++) {
        const float *a = at + j * r + kb;
        v8 a0 = load8(a), a1 = vecs == 2 ? load8(a + 8) : a0;
        for (int q = 0; q < rows; q++) {
            float s = m[q * SEG + j];
            acc[q][0] += s * a0;
            if (vecs == 2) acc[q][1] += s * a1;
        }
    }
    for (int q = 0; q < rows; q++)
        for (int v = 0; v < vecs; v++) {
            float *o = low + q * r + kb + 8 * v;
            store8(o, load8(o) + acc[q][v]);
        }
}

/* low (n, r) = (keep ⊙ x) A^T; x (n, in), at = A^T (in, r). */
void lora_down(const float *x, const float *at, float *low, int64_t n, int64_t in, int64_t r, uint64_t seed,
               uint32_t threshold) {
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += RB) {
        float m[RB * SEG];
        int rows = n - i0 < RB ? (int)(n - i0) : RB;
        memset(low + i0 * r, 0, rows * r * sizeof(float));
        for (int64_t j0 = 0; j0 < in; j0 += SEG) {
            int64_t len = in - j0 < SEG ? in - j0 : SEG;
            for (int q = 0; q < rows; q++)
                masked_segment(x + (i0 + q) * in + j0, m + q * SEG, (i0 + q) * in + j0, len, seed, (uint16_t)threshold);
            for (int64_t kb = 0; kb < r; kb += 16) {
                int vecs = r - kb >= 16 ? 2 : 1;
                if (rows == RB && vecs == 2) /* the common case, with constants the compiler unrolls */
                    down_block(m, RB, len, at + j0 * r, r, kb, 2, low + i0 * r);
                else
                    down_block(m, rows, len, at + j0 * r, r, kb, vecs, low + i0 * r);
            }
        }
    }
}

/* grad_a (r, in) = grad_low^T (keep ⊙ x); grad_low (n, r). Tasks own column ranges: no reduction. */
void lora_down_grad(const float *grad_low, const float *x, float *grad_a, int64_t n, int64_t in, int64_t r,
                    uint64_t seed, uint32_t threshold) {
    memset(grad_a, 0, r * in * sizeof(float));
#pragma omp parallel for schedule(static)
    for (int64_t j0 = 0; j0 < in; j0 += COLS) {
        int64_t len = in - j0 < COLS ? in - j0 : COLS;
        float m[RB * COLS];
        for (int64_t i0 = 0; i0 < n; i0 += RB) {
            int rows = n - i0 < RB ? (int)(n - i0) : RB;
            for (int q = 0; q < rows; q++)
                masked_segment(x + (i0 + q) * in + j0, m + q * COLS, (i0 + q) * in + j0, len, seed,
                               (uint16_t)threshold);
            for (int64_t k = 0; k < r; k++) {
                float *g = grad_a + k * in + j0;
                float c[RB];
                for (int q = 0; q < RB; q++) c[q] = q < rows ? grad_low[(i0 + q) * r + k] : 0.0f;
                int64_t j = 0;
                if (rows == RB)
                    for (; j + 8 <= len; j += 8)
                        store8(g + j, load8(g + j) + c[0] * load8(m + j) + c[1] * load8(m + COLS + j) +
                                          c[2] * load8(m + 2 * COLS + j) + c[3] * load8(m + 3 * COLS + j));
                for (; j < len; j++)
                    for (int q = 0; q < rows; q++) g[j] += c[q] * m[q * COLS + j];
            }
        }
    }
}

/* grad_x (n, in) += keep ⊙ (grad_low A); A (r, in). */
void lora_up_input_grad(const float *grad_low, const float *a, float *grad_x, int64_t n, int64_t in, int64_t r,
                        uint64_t seed, uint32_t threshold) {
#pragma omp parallel for schedule(static)
    for (int64_t i0 = 0; i0 < n; i0 += RB) {
        int rows = n - i0 < RB ? (int)(n - i0) : RB;
        float t[RB * SEG];
        uint16_t lanes[SEG];
        for (int64_t j0 = 0; j0 < in; j0 += SEG) {
            int64_t len = in - j0 < SEG ? in - j0 : SEG, j = 0;
            if (rows == RB)
                for (; j + 8 <= len; j += 8) {
                    v8 acc[RB] = {{0}};
                    for (int64_t k = 0; k < r; k++) {
                        v8 ak = load8(a + k * in + j0 + j);
                        for (int q = 0; q < RB; q++) acc[q] += grad_low[(i0 + q) * r + k] * ak;
                    }
                    for (int q = 0; q < RB; q++) store8(t + q * SEG + j, acc[q]);
                }
            for (; j < len; j++)
                for (int q = 0; q < rows; q++) {
                    float s = 0.0f;
                    for (int64_t k = 0; k < r; k++) s += grad_low[(i0 + q) * r + k] * a[k * in + j0 + j];
                    t[q * SEG + j] = s;
                }
            for (int q = 0; q < rows; q++) {
                float *gx = grad_x + (i0 + q) * in + j0;
                const float *tq = t + q * SEG;
                if (threshold == 0) {
                    for (int64_t jj = 0; jj < len; jj++) gx[jj] += tq[jj];
                    continue;
                }
                draw_lanes(lanes, (i0 + q) * in + j0, len, seed);
                for (int64_t jj = 0; jj < len; jj++) gx[jj] += lanes[jj] >= threshold ? tq[jj] : 0.0f;
            }
        }
    }
}

/* e^x, |relative error| < 2e-7; x clamped to [-87, 88] so the result stays finite and normal
 * (enough for the sigmoid below, whose NaN inputs still come out NaN through the factor g). */
static inline float exp_clamped(float x) {
    x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
    float n = __builtin_rintf(x * 1.44269504088896341f); /* x = n ln2 + r, |r| <= ln2 / 2 */
    float r = x - n * 0.693359375f + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f; /* Cephes expf polynomial */
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)n + 127) << 23; /* 2^n */
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

/* h = silu(g) * u = g * sigmoid(g) * u; n elements. */
void swiglu_forward(const float *g, const float *u, float *h, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) h[i] = g[i] / (1.0f + exp_clamped(-g[i])) * u[i];
}

/* dg = dh * u * silu'(g), du = dh * silu(g), with silu'(g) = s + silu(g) (1 - s), s = sigmoid(g). */
void swiglu_backward(const float *dh, const float *g, const float *u, float *dg, float *du, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + exp_clamped(-g[i]));
        float silu = g[i] * s;
        du[i] = dh[i] * silu;
        dg[i] = dh[i] * u[i] * (s + silu * (1.0f - s));
    }
}

/* RMSNorm of rows: y = w ⊙ x r, r = 1 / sqrt(mean(x²) + eps) per row of c; x, y (n, c); r (n) is
 * kept for backward. Sums of squares in 8 float lanes, as torch's vectorised mean adds them. */
void rmsnorm_forward(const float *x, const float *w, float *y, float *r, int64_t n, int64_t c, float eps) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) {
        const float *xi = x + i * c;
        float *yi = y + i * c;
        v8 acc = {0};
        int64_t j = 0;
        for (; j + 8 <= c; j += 8) acc += load8(xi + j) * load8(xi + j);
        float ss = 0.0f;
        for (int q = 0; q < 8; q++) ss += acc[q];
        for (; j < c; j++) ss += xi[j] * xi[j];
        float ri = 1.0f / __builtin_sqrtf(ss / (float)c + eps);
        r[i] = ri;
        for (j = 0; j < c; j++) yi[j] = w[j] * (xi[j] * ri);
    }
}

#define NORM_ROWS 64 /* rows per task in rmsnorm_backward: each task sums its own part of dw */

/* dx = r (g - x̂ mean(g ⊙ x̂)), g = w ⊙ dy, x̂ = x r; and, unless dw is NULL, dw = Σ_rows dy ⊙ x̂, summed
 * per block of NORM_ROWS rows into part ((n + NORM_ROWS - 1) / NORM_ROWS, c), then over the blocks in
 * order: the same sums whatever the thread count. */
void rmsnorm_backward(const float *dy, const float *x, const float *w, const float *r, float *dx, float *dw,
                      float *part, int64_t n, int64_t c) {
    int64_t blocks = (n + NORM_ROWS - 1) / NORM_ROWS;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < blocks; b++) {
        float *pb = dw ? part + b * c : 0;
        if (pb) memset(pb, 0, c * sizeof(float));
        for (int64_t i = b * NORM_ROWS; i < n && i < (b + 1) * NORM_ROWS; i++) {
            const float *dyi = dy + i * c, *xi = x + i * c;
            float *dxi = dx + i * c, ri = r[i];
            v8 acc = {0};
            int64_t j = 0;
            for (; j + 8 <= c; j += 8) acc += load8(w + j) * load8(dyi + j) * load8(xi + j);
            float dot = 0.0f;
            for (int q = 0; q < 8; q++) dot += acc[q];
            for (; j < c; j++) dot += w[j] * dyi[j] * xi[j];
            float m = dot * ri / (float)c; /* mean(g ⊙ x̂) */
            for (j = 0; j < c; j++) dxi[j] = ri * (w[j] * dyi[j] - xi[j] * ri * m);
            if (pb)
                for (j = 0; j < c; j++) pb[j] += dyi[j] * (xi[j] * ri);
        }
    }
    if (!dw) return;
    memset(dw, 0, c * sizeof(float)); /* a few thousand additions: not worth a second parallel region */
    for (int64_t b = 0; b < blocks; b++)
        for (int64_t j = 0; j < c; j++) dw[j] += part[b * c + j];
}

/* Rotary position embedding of one row of d floats (d even), x to o: forward, o = x ⊙ cos + rotate_half(x) ⊙ sin
 * with rotate_half(x) = (-x₂, x₁); `transpose`, its transpose (for gradients): o = x ⊙ cos + (x₂ ⊙ sin₂, -x₁ ⊙ sin₁). */
static inline void rope_row(const float *x, float *o, const float *c, const float *s, int64_t half, int transpose) {
    int64_t j = 0;
    for (; j + 8 <= half; j += 8) {
        v8 lo = load8(x + j), hi = load8(x + j + half), cl = load8(c + j), ch = load8(c + j + half);
        v8 sl = load8(s + j), sh = load8(s + j + half);
        store8(o + j, transpose ? lo * cl + hi * sh : lo * cl - hi * sl);
        store8(o + j + half, transpose ? hi * ch - lo * sl : hi * ch + lo * sh);
    }
    for (; j < half; j++) {
        float lo = x[j], hi = x[j + half];
        o[j] = transpose ? lo * c[j] + hi * s[j + half] : lo * c[j] - hi * s[j];
        o[j + half] = transpose ? hi * c[j + half] - lo * s[j] : hi * c[j + half] + lo * s[j + half];
    }
}

/* RoPE of the query and the key together, one parallel region for both: q (bs, hq, t, d) and k (bs, hk, t, d)
 * are read at element strides qs[0..2] and ks[0..2] for their batch, head and position dimensions (rows
 * contiguous) and written to q_out, k_out at strides qs[3..5], ks[3..5]; cos, sin (bs or 1, t, d)
 * contiguous, cs_b their batch stride (0: one table for every batch row). Tasks own (batch, position)
 * pairs: one cos/sin row, every head. */
void rope(const float *q, float *q_out, int64_t hq, const int64_t *qs, const float *k, float *k_out, int64_t hk,
          const int64_t *ks, const float *cos, const float *sin, int64_t cs_b, int64_t bs, int64_t t, int64_t d,
          int transpose) {
#pragma omp parallel for schedule(static)
    for (int64_t bt = 0; bt < bs * t; bt++) {
        int64_t b = bt / t, p = bt % t;
        const float *c = cos + b * cs_b + p * d, *s = sin + b * cs_b + p * d;
        for (int64_t h = 0; h < hq; h++)
            rope_row(q + b * qs[0] + h * qs[1] + p * qs[2], q_out + b * qs[3] + h * qs[4] + p * qs[5], c, s, d / 2,
                     transpose);
        for (int64_t h = 0; h < hk; h++)
            rope_row(k + b * ks[0] + h * ks[1] + p * ks[2], k_out + b * ks[3] + h * ks[4] + p * ks[5], c, s, d / 2,
                     transpose);
    }
}

/* Causal attention over packed samples, forward and backward, float32, heads of width d.
 *
 * A row of T tokens holds samples [starts[s], starts[s+1]); each attends causally within itself.
 * q (T, hq heads), k and v (T, hkv heads), each head d contiguous floats, at the given row and head
 * strides (no copies of transposed or sliced projections); query head h reads kv head h / (hq / hkv).
 * A task is one sample, one query head and one block of QB query rows: its scores against every key up
 * to the block's diagonal fit in the core's cache, so the softmax is exact in one pass (no running
 * rescale) and never leaves the cache, and the blocks above the diagonal are never computed. The
 * products run on `gemm`, a Fortran sgemm (MKL's, from libtorch), single-threaded inside each task.
 * Tasks go longest first to the threads. Backward recomputes the scores from the saved log-sum-exp;
 * each thread adds its dk and dv into its own part (dk_parts[thread]), summed by the caller. */

#define QB 64 /* query rows per task */

typedef void (*sgemm_fn)(const char *, const char *, const int *, const int *, const int *, const float *,
                         const float *, const int *, const float *, const int *, const float *, float *, const int *);

/* Row-major C (m x n, ldc) = alpha op(A) op(B) + beta C through a column-major sgemm: C^T = op(B)^T op(A)^T. */
static void gemm_rm(sgemm_fn gemm, char ta, char tb, int m, int n, int k, float alpha, const float *a, int lda,
                    const float *b, int ldb, float beta, float *c, int ldc) {
    gemm(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

typedef struct { int64_t start, len, h, row0; } task_t;

static int longest_first(const void *a, const void *b) {
    const task_t *x = a, *y = b;
    int64_t ex = x->row0 + (x->len - x->row0 < QB ? x->len - x->row0 : QB);
    int64_t ey = y->row0 + (y->len - y->row0 < QB ? y->len - y->row0 : QB);
    return ex < ey ? 1 : (ex > ey ? -1 : 0);
}

/* The tasks, longest first; their count, and the longest sample's length (the scratch rows' width). */
static task_t *make_tasks(const int64_t *starts, int64_t nseg, int64_t hq, int64_t *count, int64_t *longest) {
    int64_t n = 0;
    *longest = 1;
    for (int64_t s = 0; s < nseg; s++) {
        n += hq * ((starts[s + 1] - starts[s] + QB - 1) / QB);
        *longest = starts[s + 1] - starts[s] > *longest ? starts[s + 1] - starts[s] : *longest;
    }
    task_t *tasks = malloc(sizeof(task_t) * (n ? n : 1));
    if (!tasks) return NULL;
    int64_t i = 0;
    for (int64_t s = 0; s < nseg; s++)
        for (int64_t h = 0; h < hq; h++)
            for (int64_t r = 0; r < starts[s + 1] - starts[s]; r += QB)
                tasks[i++] = (task_t){starts[s], starts[s + 1] - starts[s], h, r};
    qsort(tasks, n, sizeof(task_t), longest_first);
    *count = n;
    return tasks;
}

static inline int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

/* scores (rows x e, ld e) of queries row0.. of a sample against its keys 0..e-1, scaled */
static void scores(sgemm_fn gemm, const float *q, const float *k, int64_t q_row, int64_t k_row, int64_t d,
                   int64_t rows, int64_t e, float scale, float *s) {
    gemm_rm(gemm, 'N', 'T', (int)rows, (int)e, (int)d, scale, q, (int)q_row, k, (int)k_row, 0.0f, s, (int)e);
}

/* o: (T, hq, d) contiguous; lse: (hq, T). Returns 0, or -1 when out of memory. */
int attention_forward(void *gemm_ptr, const float *q, const float *k, const float *v, float *o, float *lse,
                      const int64_t *starts, int64_t nseg, int64_t T, int64_t hq, int64_t hkv, int64_t d,
                      int64_t q_row, int64_t q_head, int64_t k_row, int64_t k_head, int64_t v_row, int64_t v_head,
                      float scale, int threads) {
    sgemm_fn gemm = (sgemm_fn)gemm_ptr;
    int64_t ntasks, longest, group = hq / hkv;
    task_t *tasks = make_tasks(starts, nseg, hq, &ntasks, &longest);
    if (!tasks) return -1;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *s = malloc(sizeof(float) * QB * longest);
        if (!s) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            if (!s) continue;
            task_t tk = tasks[t];
            int64_t rows = tk.len - tk.row0 < QB ? tk.len - tk.row0 : QB, e = tk.row0 + rows;
            int64_t first = tk.start + tk.row0, g = tk.h / group;
            scores(gemm, q + first * q_row + tk.h * q_head, k + tk.start * k_row + g * k_head, q_row, k_row, d, rows, e,
                   scale, s);
            float inv[QB];
            for (int64_t r = 0; r < rows; r++) {
                float *row = s + r * e, m = -INFINITY, sum = 0.0f;
                int64_t n = tk.row0 + r + 1; /* keys 0 .. the query's own position */
#pragma omp simd reduction(max : m)
                for (int64_t j = 0; j < n; j++) m = row[j] > m ? row[j] : m;
#pragma omp simd reduction(+ : sum)
                for (int64_t j = 0; j < n; j++) {
                    row[j] = exp_clamped(row[j] - m);
                    sum += row[j];
                }
                for (int64_t j = n; j < e; j++) row[j] = 0.0f;
                inv[r] = 1.0f / sum;
                lse[tk.h * T + first + r] = m + logf(sum);
            }
            float *ob = o + (first * hq + tk.h) * d; /* the unnormalised product, then each row over its sum */
            gemm_rm(gemm, 'N', 'N', (int)rows, (int)d, (int)e, 1.0f, s, (int)e, v + tk.start * v_row + g * v_head,
                    (int)v_row, 0.0f, ob, (int)(hq * d));
            for (int64_t r = 0; r < rows; r++)
#pragma omp simd
                for (int64_t c = 0; c < d; c++) ob[r * hq * d + c] *= inv[r];
        }
        free(s);
    }
    free(tasks);
    return failed ? -1 : 0;
}

/* dout, o, dq: (T, hq, d) contiguous; dk_parts, dv_parts: (threads, T, hkv, d) contiguous, zeroed. */
int attention_backward(void *gemm_ptr, const float *q, const float *k, const float *v, const float *o,
                       const float *dout, const float *lse, float *dq, float *dk_parts, float *dv_parts,
                       const int64_t *starts, int64_t nseg, int64_t T, int64_t hq, int64_t hkv, int64_t d,
                       int64_t q_row, int64_t q_head, int64_t k_row, int64_t k_head, int64_t v_row, int64_t v_head,
                       float scale, int threads) {
    sgemm_fn gemm = (sgemm_fn)gemm_ptr;
    int64_t ntasks, longest, group = hq / hkv, o_row = hq * d, kv_row = hkv * d;
    task_t *tasks = make_tasks(starts, nseg, hq, &ntasks, &longest);
    if (!tasks) return -1;
    int failed = 0;
#pragma omp parallel num_threads(threads)
    {
        float *p = malloc(sizeof(float) * QB * longest);
        float *dp = malloc(sizeof(float) * QB * longest);
        float *dk = dk_parts + thread_id() * T * kv_row, *dv = dv_parts + thread_id() * T * kv_row;
        if (!p || !dp) failed = 1;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < ntasks; t++) {
            if (!p || !dp) continue;
            task_t tk = tasks[t];
            int64_t rows = tk.len - tk.row0 < QB ? tk.len - tk.row0 : QB, e = tk.row0 + rows;
            int64_t first = tk.start + tk.row0, g = tk.h / group;
            const float *qb = q + first * q_row + tk.h * q_head, *kb = k + tk.start * k_row + g * k_head;
            const float *vb = v + tk.start * v_row + g * v_head, *dob = dout + (first * hq + tk.h) * d;
            const float *ob = o + (first * hq + tk.h) * d;
            scores(gemm, qb, kb, q_row, k_row, d, rows, e, scale, p);
            gemm_rm(gemm, 'N', 'T', (int)rows, (int)e, (int)d, 1.0f, dob, (int)o_row, vb, (int)v_row, 0.0f, dp, (int)e);
            for (int64_t r = 0; r < rows; r++) {
                float *pr = p + r * e, *dpr = dp + r * e, l = lse[tk.h * T + first + r], delta = 0.0f;
                int64_t n = tk.row0 + r + 1;
#pragma omp simd reduction(+ : delta)
                for (int64_t c = 0; c < d; c++) delta += dob[r * o_row + c] * ob[r * o_row + c];
#pragma omp simd
                for (int64_t j = 0; j < n; j++) {
                    pr[j] = exp_clamped(pr[j] - l);
                    dpr[j] = pr[j] * (dpr[j] - delta);
                }
                for (int64_t j = n; j < e; j++) pr[j] = dpr[j] = 0.0f;
            }
            gemm_rm(gemm, 'N', 'N', (int)rows, (int)d, (int)e, scale, dp, (int)e, kb, (int)k_row, 0.0f,
                    dq + (first * hq + tk.h) * d, (int)o_row);
            gemm_rm(gemm, 'T', 'N', (int)e, (int)d, (int)rows, scale, dp, (int)e, qb, (int)q_row, 1.0f,
                    dk + tk.start * kv_row + g * d, (int)kv_row);
            gemm_rm(gemm, 'T', 'N', (int)e, (int)d, (int)rows, 1.0f, p, (int)e, dob, (int)o_row, 1.0f,
                    dv + tk.start * kv_row + g * d, (int)kv_row);
        }
        free(p);
        free(dp);
    }
    free(tasks);
    return failed ? -1 : 0;
}
