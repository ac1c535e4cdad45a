/* Dot products of stored frame vectors with a query's phrases, read straight from the records.
 *
 * The second stage of a search multiplies every candidate's frame and clip vectors (float16, or
 * int8 with one float16 scale per vector, inside fixed-size records) by the few (1-10) phrase
 * vectors of one query. Through torch that is a float16 -> float32 copy, a small matrix product
 * and a scatter per group of records, and at MSR-VTT sizes the per-call overheads and the float32
 * copy cost more than the arithmetic. Here each vector is converted in registers and multiplied
 * by every phrase in one pass; the values are those of hanet.index.storage.values.stored_values (float16
 * exactly widened; int8 widened then times its widened scale, in float32), accumulated in float32
 * (in another order than a BLAS would: results differ from torch's in the last bits).
 *
 * Loaded with ctypes by hanet/index/native/__init__.py, which compiles this file on first use and
 * falls back to torch when it cannot. No Python API: plain pointers and sizes.
 */
#include <stddef.h>
#include <stdint.h>

int hanet_dots_abi(void) { return 3; }

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define HANET_TARGET __attribute__((target("avx2,fma,f16c")))
#define HANET_MAX_F 4096  /* vectors per record and field */

HANET_TARGET static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* eight stored values as float32: float16 widened, or int8 widened times the vector's scale */
HANET_TARGET static inline __m256 load8(const void *v, int64_t t, int is_int8, __m256 scale) {
    if (is_int8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)((const int8_t *)v + t));
        return _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b)), scale);
    }
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((const uint16_t *)v + t)));
}

HANET_TARGET static inline float load1(const void *v, int64_t t, int is_int8, float scale) {
    if (is_int8) return (float)((const int8_t *)v)[t] * scale;
    return _cvtsh_ss(((const uint16_t *)v)[t]);
}

/* r[j] = <vector, P[j]> for C (1-4) phrases, with U independent accumulators per phrase (a
 * chain of dependent FMAs waits on each one's latency). C, U and INT8 are constants where this
 * is inlined. On the project's machine this runs at the rate of the float16 conversions and
 * loads; blocking several vectors per phrase load measured no faster. */
HANET_TARGET static inline __attribute__((always_inline)) void dots_cu(
        const void *v, const int INT8, const float scale, const float *P, const int64_t d,
        const int C, const int U, float *r) {
    const __m256 s = _mm256_set1_ps(scale);
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0;
    int64_t t = 0;
    if (U == 2) {
        for (; t + 16 <= d; t += 16) {
            const __m256 x = load8(v, t, INT8, s), y = load8(v, t + 8, INT8, s);
            a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + t), a0);
            b0 = _mm256_fmadd_ps(y, _mm256_loadu_ps(P + t + 8), b0);
            if (C > 1) {
                a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + d + t), a1);
                b1 = _mm256_fmadd_ps(y, _mm256_loadu_ps(P + d + t + 8), b1);
            }
        }
    }
    for (; t + 8 <= d; t += 8) {
        const __m256 x = load8(v, t, INT8, s);
        a0 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + t), a0);
        if (C > 1) a1 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + d + t), a1);
        if (C > 2) a2 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + 2 * d + t), a2);
        if (C > 3) a3 = _mm256_fmadd_ps(x, _mm256_loadu_ps(P + 3 * d + t), a3);
    }
    r[0] = hsum(_mm256_add_ps(a0, b0));
    if (C > 1) r[1] = hsum(_mm256_add_ps(a1, b1));
    if (C > 2) r[2] = hsum(a2);
    if (C > 3) r[3] = hsum(a3);
    for (; t < d; t++) {
        const float x = load1(v, t, INT8, scale);
        for (int j = 0; j < C; j++) r[j] += x * P[j * d + t];
    }
}

/* out[j] = <vector, P[j]> for the c (1-4) phrases P[0..c), d values each */
HANET_TARGET static void vec_dots(const void *v, int is_int8, float scale, const float *P, int64_t d,
                                  int64_t c, float *out) {
    if (is_int8) {
        switch (c) {
            case 1: dots_cu(v, 1, scale, P, d, 1, 2, out); break;
            case 2: dots_cu(v, 1, scale, P, d, 2, 2, out); break;
            case 3: dots_cu(v, 1, scale, P, d, 3, 1, out); break;
            default: dots_cu(v, 1, scale, P, d, 4, 1, out); break;
        }
    } else {
        switch (c) {
            case 1: dots_cu(v, 0, scale, P, d, 1, 2, out); break;
            case 2: dots_cu(v, 0, scale, P, d, 2, 2, out); break;
            case 3: dots_cu(v, 0, scale, P, d, 3, 1, out); break;
            default: dots_cu(v, 0, scale, P, d, 4, 1, out); break;
        }
    }
}

/* the CPU runs AVX2, FMA and F16C (and the OS saves their registers: __builtin_cpu_supports checks) */
int hanet_dots_supported(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
}

/* One field of the records and the phrases its vectors are multiplied by. */
typedef struct {
    int64_t offset;        /* bytes from a record's start to the field: F vectors of d values, contiguous */
    int64_t scale_offset;  /* int8 values: bytes to their F float16 scales; else unused */
    int64_t is_int8;       /* 0: float16 values; 1: int8 values times their scale */
    int64_t F, d;          /* vectors per record, values per vector */
    int64_t k;             /* phrases */
    int64_t n;             /* rows of out */
    const float *P;        /* k x d float32, contiguous */
    float *out;            /* n x F x k float32, contiguous */
} hanet_field;

/* For m records and each field:
 *   out[(pos[i] * F + f) * k + j] = <vector f of record i, P[j]>,
 * record i at recs + i * stride, or with rows (not NULL) at recs + rows[i] * stride, one of the
 * nrec records there (a read-only map of a whole segment: nothing is copied out of it first).
 * Returns 0; -1 (nothing written) when a position is outside a field's n rows, -3 when a row is
 * outside [0, nrec), -2 for a field of more than HANET_MAX_F vectors.
 * Only after hanet_dots_supported() said yes. */
HANET_TARGET int hanet_group_dots(const char *recs, int64_t m, int64_t stride, const int64_t *pos,
                                  const hanet_field *fields, int64_t nf, const int64_t *rows, int64_t nrec) {
    for (int64_t q = 0; q < nf; q++) {
        if (fields[q].F > HANET_MAX_F || fields[q].F < 0) return -2;
        for (int64_t i = 0; i < m; i++)
            if (pos[i] < 0 || pos[i] >= fields[q].n) return -1;
    }
    if (rows)
        for (int64_t i = 0; i < m; i++)
            if (rows[i] < 0 || rows[i] >= nrec) return -3;
    for (int64_t i = 0; i < m; i++) {
        const char *rec = recs + (rows ? rows[i] : i) * stride;
        for (int64_t q = 0; q < nf; q++) {
            const hanet_field *fd = &fields[q];
            const int64_t F = fd->F, d = fd->d, k = fd->k, width = fd->is_int8 ? 1 : 2;
            float scales[HANET_MAX_F];
            float *o = fd->out + pos[i] * F * k;
            if (fd->is_int8) {
                const uint16_t *sc = (const uint16_t *)(rec + fd->scale_offset);
                for (int64_t f = 0; f < F; f++) scales[f] = _cvtsh_ss(sc[f]);
            }
            for (int64_t f = 0; f < F; f++) {
                const void *v = rec + fd->offset + f * d * width;
                const float scale = fd->is_int8 ? scales[f] : 1.0f;
                for (int64_t j = 0; j < k; j += 4)
                    vec_dots(v, (int)fd->is_int8, scale, fd->P + j * d, d, k - j < 4 ? k - j : 4, o + f * k + j);
            }
        }
    }
    return 0;
}
#else
int hanet_dots_supported(void) { return 0; }
#endif
