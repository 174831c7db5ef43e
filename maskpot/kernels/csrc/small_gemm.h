/* Vector-register sizes of the build and a small dense matrix product on register tiles, shared by the edge loops
   of the fused operators (painn_message_loops.h, egnn_message.cpp). Raw pointers, no torch headers. */

#ifndef MASKPOT_SMALL_GEMM_H
#define MASKPOT_SMALL_GEMM_H

#include <cstdint>

#include "wide_vectors.h"

MASKPOT_WIDE_VECTORS_BEGIN

namespace maskpot {

// The widest vector registers the build targets (it is built with -march=native on the machine that runs it), for
// the register tiles below through GCC's vector extensions: AVX-512 (32 registers of 64 bytes) where the CPU has
// it, else AVX2 (16 of 32 bytes): 256-bit code on an AVX-512 CPU lost to torch's BLAS (MKL uses the wider registers).
#if defined(__AVX512F__)
constexpr int VECTOR_BYTES = 64, VECTOR_REGISTERS = 32;
#else
constexpr int VECTOR_BYTES = 32, VECTOR_REGISTERS = 16;
#endif
template <typename T> constexpr int64_t LANES = VECTOR_BYTES / sizeof(T);

// One register tile of small_gemm: o (ROWS rows `ldo` apart, NV vectors) = x (ROWS rows `lda` apart, K) x b (K rows
// `ldb` apart, NV vectors). Each load of b feeds ROWS FMAs.
template <typename T, int ROWS, int NV>
MASKPOT_INLINE void gemm_tile(const T *__restrict__ x, int64_t lda, const T *__restrict__ b, int64_t ldb, int64_t K,
                              T *__restrict__ o, int64_t ldo)
{
  typedef T V __attribute__((vector_size(VECTOR_BYTES)));
  constexpr int64_t L = LANES<T>;
  V acc[ROWS][NV] = {};
  for (int64_t k = 0; k < K; ++k) {
    V bk[NV];
    for (int w = 0; w < NV; ++w) __builtin_memcpy(&bk[w], b + k * ldb + w * L, sizeof(V));
    for (int q = 0; q < ROWS; ++q) {
      const T y = x[q * lda + k];
      for (int w = 0; w < NV; ++w) acc[q][w] += y * bk[w];
    }
  }
  for (int q = 0; q < ROWS; ++q)
    for (int w = 0; w < NV; ++w) __builtin_memcpy(o + q * ldo + w * L, &acc[q][w], sizeof(V));
}

// out (M, N; rows `ldo` apart) = a (M, K; rows `lda` apart) x b (K, N), contiguous, N a multiple of LANES<T>
// (callers pad): the products of one block of edges (PaiNN's rbf_cut gradients gf (B, 3F) x W (3F, num_rbf),
// EGNN's edge MLP, B x F by F x F). The blocks are small, where a BLAS call per block costs more than its
// arithmetic, hence by hand: panels of two vectors of columns (one vector for an odd last one) in register tiles
// of 6 or 12 rows, the fastest of 4-16 rows in a benchmark of these shapes with 256- and 512-bit vectors on an
// AVX-512 CPU.
template <typename T>
void small_gemm(const T *__restrict__ a, int64_t lda, const T *__restrict__ b, int64_t M, int64_t K, int64_t N,
                T *__restrict__ out, int64_t ldo)
{
  constexpr int64_t L = LANES<T>;
  constexpr int ROWS_2 = 6, ROWS_1 = VECTOR_REGISTERS == 32 ? 12 : 6;
  for (int64_t n = 0; n < N;) {
    int64_t m = 0;
    if (N - n >= 2 * L) {
      for (; m + ROWS_2 <= M; m += ROWS_2)
        gemm_tile<T, ROWS_2, 2>(a + m * lda, lda, b + n, N, K, out + m * ldo + n, ldo);
      for (; m < M; ++m) gemm_tile<T, 1, 2>(a + m * lda, lda, b + n, N, K, out + m * ldo + n, ldo);
      n += 2 * L;
    } else {
      for (; m + ROWS_1 <= M; m += ROWS_1)
        gemm_tile<T, ROWS_1, 1>(a + m * lda, lda, b + n, N, K, out + m * ldo + n, ldo);
      for (; m < M; ++m) gemm_tile<T, 1, 1>(a + m * lda, lda, b + n, N, K, out + m * ldo + n, ldo);
      n += L;
    }
  }
}

}    // namespace maskpot

MASKPOT_WIDE_VECTORS_END

#endif
