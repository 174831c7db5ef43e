/* The edge loops of maskpot::painn_message (see painn_message.cpp for what they compute and why they are
   hand-written), on raw pointers so that they compile without torch's headers. */

#ifndef MASKPOT_PAINN_MESSAGE_LOOPS_H
#define MASKPOT_PAINN_MESSAGE_LOOPS_H

#include <algorithm>
#include <cstdint>
#include <vector>

#include "small_gemm.h"
#include "wide_vectors.h"

MASKPOT_WIDE_VECTORS_BEGIN

namespace maskpot {

// Channels per chunk: four vectors. The filter of one chunk is 3 groups x 4 vector accumulators held in registers,
// twelve independent FMA chains: enough to keep two FMA units with a latency of 4 cycles busy (one vector's three
// chains cannot).
template <typename T> constexpr int64_t CHUNK = 4 * LANES<T>;

// The inputs of one call: E edges (i receives from j), F channels per group, R radial functions. Rows of
// s_phi (3F), v (3 rows of F), rbf_cut (R) and unit (3) are strided; within a row values are contiguous.
template <typename T> struct Edges {
  int64_t E, F, R;
  const int64_t *i, *j;
  const T *phi;
  int64_t phi_stride;
  const T *v;    // unused when first
  int64_t v_stride0, v_stride1;
  const T *w;     // filter weight W (3F, R), contiguous
  const T *wt;    // W transposed, (R, 3F), contiguous
  const T *rbf;
  int64_t rbf_stride;
  const T *unit;
  int64_t unit_stride;
};

// The filter of edge e for channels c0..c0+len of the three groups: fs, fvv, fvs = (W rbf)[g*F + c0 + k] (fvv
// only when VV: the first layer's forward does not need it). wt is W transposed, (R, 3F) contiguous, so that the
// loop over channels is unit-stride. A whole chunk (len = CHUNK) runs on vector registers, a shorter last one on
// plain loops; both sum over r in order.
template <typename T, bool VV>
MASKPOT_INLINE void filter_chunk(const T *__restrict__ wt, const T *__restrict__ rbf, int64_t R, int64_t F,
                                 int64_t c0, int64_t len, T *__restrict__ fs, T *__restrict__ fvv,
                                 T *__restrict__ fvs)
{
  if (len == CHUNK<T>) {
    typedef T V __attribute__((vector_size(VECTOR_BYTES)));
    constexpr int64_t L = LANES<T>, NV = CHUNK<T> / LANES<T>;
    V as[NV] = {}, avv[NV] = {}, avs[NV] = {};
    for (int64_t r = 0; r < R; ++r) {
      const T b = rbf[r];
      const T *w = wt + r * 3 * F + c0;
      for (int64_t q = 0; q < NV; ++q) {
        V x;
        __builtin_memcpy(&x, w + q * L, sizeof(V));
        as[q] += b * x;
        if (VV) {
          __builtin_memcpy(&x, w + F + q * L, sizeof(V));
          avv[q] += b * x;
        }
        __builtin_memcpy(&x, w + 2 * F + q * L, sizeof(V));
        avs[q] += b * x;
      }
    }
    for (int64_t q = 0; q < NV; ++q) {
      __builtin_memcpy(fs + q * L, &as[q], sizeof(V));
      if (VV) __builtin_memcpy(fvv + q * L, &avv[q], sizeof(V));
      __builtin_memcpy(fvs + q * L, &avs[q], sizeof(V));
    }
    return;
  }
  for (int64_t k = 0; k < len; ++k) fs[k] = fvv[k] = fvs[k] = T(0);
  for (int64_t r = 0; r < R; ++r) {
    const T b = rbf[r];
    const T *w = wt + r * 3 * F + c0;
    for (int64_t k = 0; k < len; ++k) {
      fs[k] += b * w[k];
      if (VV) fvv[k] += b * w[F + k];
      fvs[k] += b * w[2 * F + k];
    }
  }
}

// Edges whose filters are computed together: two where the registers hold both edges' accumulators (AVX-512:
// 2 x 12 of 32), so that each load of W feeds two FMAs (one edge's filter is bound by those loads), else one.
constexpr int64_t FILTER_EDGES = VECTOR_REGISTERS == 32 ? 2 : 1;

// The filters of n <= FILTER_EDGES edges (radial features rbf[q]) for channels c0..c0+len, into filt: edge q's
// fs, fvv, fvs at filt + q * 3 * CHUNK + (0, 1, 2) * CHUNK. The same sums, in the same order, as filter_chunk.
template <typename T, bool VV>
MASKPOT_INLINE void filter_chunks(const T *__restrict__ wt, const T *const *rbf, int64_t n, int64_t R, int64_t F,
                                  int64_t c0, int64_t len, T *__restrict__ filt)
{
  constexpr int64_t C = CHUNK<T>;
  if (n == 2 && len == C) {
    typedef T V __attribute__((vector_size(VECTOR_BYTES)));
    constexpr int64_t L = LANES<T>, NV = C / LANES<T>;
    V acc[2][3][NV] = {};
    for (int64_t r = 0; r < R; ++r) {
      const T b0 = rbf[0][r], b1 = rbf[1][r];
      const T *w = wt + r * 3 * F + c0;
      for (int64_t q = 0; q < NV; ++q)
        for (int grp = 0; grp < 3; ++grp) {
          if (!VV && grp == 1) continue;
          V x;
          __builtin_memcpy(&x, w + grp * F + q * L, sizeof(V));
          acc[0][grp][q] += b0 * x;
          acc[1][grp][q] += b1 * x;
        }
    }
    for (int64_t e = 0; e < 2; ++e)
      for (int grp = 0; grp < 3; ++grp)
        for (int64_t q = 0; q < NV; ++q)
          if (VV || grp != 1) __builtin_memcpy(filt + e * 3 * C + grp * C + q * L, &acc[e][grp][q], sizeof(V));
    return;
  }
  for (int64_t e = 0; e < n; ++e) {
    T *f = filt + e * 3 * C;
    filter_chunk<T, VV>(wt, rbf[e], R, F, c0, len, f, f + C, f + 2 * C);
  }
}

// The edges e_begin..e_end-1 with their filters, in groups of up to FILTER_EDGES edges computed together: for each
// group (first edge e0, n edges), begin(e0, n); then for each chunk of channels c0..c0+len and each edge e of the
// group in order, visit(e, q = e - e0, c0, len, f) with f the edge's filter for that chunk (fs, fvv, fvs at f,
// f + CHUNK, f + 2 * CHUNK; fvv only when VV); then end(e0, n). With STEP = 2 the items are the pairs of
// edges of pair_forward_edges and pair_backward_edges: item k's filter is that of edge 2k.
template <typename T, bool VV, int64_t STEP = 1, typename Begin, typename Visit, typename End>
MASKPOT_INLINE void filtered_edges(const Edges<T> &g, int64_t e_begin, int64_t e_end, int64_t F, int64_t R,
                                   Begin &&begin, Visit &&visit, End &&end)
{
  constexpr int64_t C = CHUNK<T>;
  T filt[FILTER_EDGES * 3 * C];
  for (int64_t e0 = e_begin; e0 < e_end; e0 += FILTER_EDGES) {
    const int64_t n = std::min(FILTER_EDGES, e_end - e0);
    const T *rbf[FILTER_EDGES];
    for (int64_t q = 0; q < n; ++q) rbf[q] = g.rbf + (e0 + q) * STEP * g.rbf_stride;
    begin(e0, n);
    for (int64_t c0 = 0; c0 < F; c0 += C) {
      const int64_t len = std::min(C, F - c0);
      filter_chunks<T, VV>(g.wt, rbf, n, R, F, c0, len, filt);
      for (int64_t q = 0; q < n; ++q) visit(e0 + q, q, c0, len, filt + q * 3 * C);
    }
    end(e0, n);
  }
}

// One edge's message for one chunk of channels (receiver rows os, ov; sender rows p = s_phi[j], vj = v[j]; unit
// vector u), from that chunk's filter fs, fvv, fvs.
template <typename T, bool FIRST>
MASKPOT_INLINE void forward_chunk(const T *__restrict__ fs, const T *__restrict__ fvv, const T *__restrict__ fvs,
                                  const T *u, const T *__restrict__ p, const T *__restrict__ vj, int64_t vs1,
                                  T *__restrict__ os, T *__restrict__ ov, int64_t F, int64_t c0, int64_t len)
{
  const T u0 = u[0], u1 = u[1], u2 = u[2];
  for (int64_t k = 0; k < len; ++k) {
    const int64_t c = c0 + k;
    os[c] += p[c] * fs[k];
    const T xvs = p[2 * F + c] * fvs[k];
    if (FIRST) {
      ov[c] += u0 * xvs;
      ov[F + c] += u1 * xvs;
      ov[2 * F + c] += u2 * xvs;
    } else {
      const T xvv = p[F + c] * fvv[k];
      ov[c] += u0 * xvs + vj[c] * xvv;
      ov[F + c] += u1 * xvs + vj[vs1 + c] * xvv;
      ov[2 * F + c] += u2 * xvs + vj[2 * vs1 + c] * xvv;
    }
  }
}

// ds (n_local, F) and dv (n_local, 3, F), contiguous and zeroed: += the messages of edges e_begin..e_end-1.
// FK, RK: F and R as compile-time constants (0: g.F and g.R at run time); with FK, v's rows are F apart (as
// painn_message's vector_view makes them).
template <typename T, bool FIRST, int64_t FK = 0, int64_t RK = 0>
MASKPOT_OUTLINE void forward_edges(const Edges<T> &g, int64_t e_begin, int64_t e_end, T *ds, T *dv)
{
  const int64_t F = FK ? FK : g.F, R = RK ? RK : g.R, vs1 = FK ? FK : g.v_stride1;
  constexpr int64_t C = CHUNK<T>;
  const auto none = [](int64_t, int64_t) {};
  filtered_edges<T, !FIRST>(g, e_begin, e_end, F, R, none, [&](int64_t e, int64_t, int64_t c0, int64_t len, const T *f) {
    const int64_t a = g.i[e], b = g.j[e];
    const T *vj = FIRST ? nullptr : g.v + b * g.v_stride0;
    forward_chunk<T, FIRST>(f, f + C, f + 2 * C, g.unit + e * g.unit_stride, g.phi + b * g.phi_stride, vj, vs1,
                            ds + a * F, dv + a * 3 * F, F, c0, len);
  }, none);
}

// Backward of one chunk of edge e's channels, from that chunk's filter fs, fvv, fvs: accumulates g_phi[j], g_v[j]
// (scatters by j) and lane-wise partial sums of the gradient of the edge's unit vector (gu, 3 x CHUNK), and
// writes (ADD: adds to) the chunk of the filter's output gradient gf (3F; turned into the rbf gradient by the
// block GEMM; the two directions of a pair add theirs, their filter being one).
template <typename T, bool FIRST, bool ADD = false>
MASKPOT_INLINE void backward_chunk(const T *__restrict__ fs, const T *__restrict__ fvv, const T *__restrict__ fvs,
                                   const T *u, const T *__restrict__ p, const T *__restrict__ vj, int64_t vs1,
                                   const T *__restrict__ gs, const T *__restrict__ gv, T *__restrict__ gp,
                                   T *__restrict__ gvj, T *__restrict__ gu, T *__restrict__ gf, int64_t F,
                                   int64_t c0, int64_t len)
{
  const T u0 = u[0], u1 = u[1], u2 = u[2];
  // gu holds 3 x CHUNK partial sums (lane k of the unit-vector gradient), so that this loop has no scalar
  // reduction and vectorises without reassociating floating-point sums
  for (int64_t k = 0; k < len; ++k) {
    const int64_t c = c0 + k;
    const T g0 = gv[c], g1 = gv[F + c], g2 = gv[2 * F + c];
    const T xvs = p[2 * F + c] * fvs[k];
    gu[k] += xvs * g0;
    gu[CHUNK<T> + k] += xvs * g1;
    gu[2 * CHUNK<T> + k] += xvs * g2;
    const T g_xs = gs[c];
    const T g_xvs = u0 * g0 + u1 * g1 + u2 * g2;
    gp[c] += g_xs * fs[k];
    gp[2 * F + c] += g_xvs * fvs[k];
    gf[c] = (ADD ? gf[c] : T(0)) + g_xs * p[c];
    gf[2 * F + c] = (ADD ? gf[2 * F + c] : T(0)) + g_xvs * p[2 * F + c];
    if (FIRST) {
      if (!ADD) gf[F + c] = T(0);
    } else {
      const T v0 = vj[c], v1 = vj[vs1 + c], v2 = vj[2 * vs1 + c];
      const T g_xvv = v0 * g0 + v1 * g1 + v2 * g2;
      const T xvv = p[F + c] * fvv[k];
      gvj[c] += xvv * g0;
      gvj[F + c] += xvv * g1;
      gvj[2 * F + c] += xvv * g2;
      gp[F + c] += g_xvv * fvv[k];
      gf[F + c] = (ADD ? gf[F + c] : T(0)) + g_xvv * p[F + c];
    }
  }
}

template <typename T, int BYTES> struct Vector {
  typedef T type __attribute__((vector_size(BYTES)));
};

// The sum of the lanes of x, halves added pairwise down to one lane (in registers: a tree through memory stalls on
// store forwarding).
template <typename T, int BYTES> MASKPOT_INLINE T vector_sum(typename Vector<T, BYTES>::type x)
{
  if constexpr (BYTES == sizeof(T)) {
    return x[0];
  } else {
    typename Vector<T, BYTES / 2>::type lo, hi;
    __builtin_memcpy(&lo, &x, BYTES / 2);
    __builtin_memcpy(&hi, reinterpret_cast<const char *>(&x) + BYTES / 2, BYTES / 2);
    return vector_sum<T, BYTES / 2>(lo + hi);
  }
}

// The sum of the CHUNK lane-wise partial sums x: its vectors added in order, then the lanes of that pairwise. A
// fixed order, and log2(LANES) register steps instead of a chain of CHUNK dependent additions per edge.
template <typename T> MASKPOT_INLINE T lane_sum(const T *__restrict__ x)
{
  typedef typename Vector<T, VECTOR_BYTES>::type V;
  V acc, y;
  __builtin_memcpy(&acc, x, sizeof(V));
  for (int64_t q = 1; q < CHUNK<T> / LANES<T>; ++q) {
    __builtin_memcpy(&y, x + q * LANES<T>, sizeof(V));
    acc += y;
  }
  return vector_sum<T, VECTOR_BYTES>(acc);
}

// Gradients from gs (n_local, F) and gv (n_local, 3, F), contiguous: g_phi (N, 3F) and g_v (N, 3, F)
// (contiguous, zeroed; g_v unused when first) are accumulated, g_feat (E, R + 3), contiguous, written: the rbf_cut
// gradients in its first R columns, the unit-vector gradients in the last 3 (the layout of the edge features).
// The filter's output gradients gf (3F per edge) of a block of EDGE_BLOCK edges are collected and turned into
// rbf gradients by one small GEMM, (B, R) = gf (B, 3F) W, faster than a per-edge loop over R. FK, RK: as for
// forward_edges.
constexpr int64_t EDGE_BLOCK = 128;

// What backward_edges and pair_backward_edges share: W (3F, R) for small_gemm, its columns padded with zeros to
// whole vectors (RP) when R is not a multiple, and the scratch of one block: the filter-output gradients gf
// (EDGE_BLOCK x 3F), their rbf gradients with the padded columns (EDGE_BLOCK x RP), and `sums` sets of lane-wise
// partial sums of a unit-vector gradient (3 x CHUNK each).
template <typename T> struct BackwardBlocks {
  int64_t F, R, RP;
  std::vector<T> w_padded, scratch;
  const T *w;
  T *gf, *g_rbf, *gu;

  BackwardBlocks(const T *w_in, int64_t F_, int64_t R_, int64_t sums)
      : F(F_), R(R_), RP((R_ + LANES<T> - 1) / LANES<T> * LANES<T>), w_padded(RP == R ? 0 : 3 * F * RP, T(0)),
        scratch(EDGE_BLOCK * 3 * F + EDGE_BLOCK * RP + sums * 3 * CHUNK<T>)
  {
    for (int64_t c = 0; RP != R && c < 3 * F; ++c) std::copy(w_in + c * R, w_in + (c + 1) * R, w_padded.data() + c * RP);
    w = RP == R ? w_in : w_padded.data();
    gf = scratch.data();
    g_rbf = gf + EDGE_BLOCK * 3 * F;
    gu = g_rbf + EDGE_BLOCK * RP;
  }

  // The rbf gradients gf (B, 3F) W of a block's B items into the first R columns of the rows at out, ldo apart:
  // straight there when R is whole vectors, else through g_rbf.
  void rbf_gradients(int64_t B, T *out, int64_t ldo)
  {
    if (RP == R) {
      small_gemm(gf, 3 * F, w, B, 3 * F, R, out, ldo);
      return;
    }
    small_gemm(gf, 3 * F, w, B, 3 * F, RP, g_rbf, RP);
    for (int64_t b = 0; b < B; ++b) std::copy(g_rbf + b * RP, g_rbf + b * RP + R, out + b * ldo);
  }
};

template <typename T, bool FIRST, int64_t FK = 0, int64_t RK = 0>
MASKPOT_OUTLINE void backward_edges(const Edges<T> &g, int64_t e_begin, int64_t e_end, const T *gs, const T *gv,
                                    T *g_phi, T *g_v, T *g_feat)
{
  const int64_t F = FK ? FK : g.F, R = RK ? RK : g.R, row = R + 3, vs1 = FK ? FK : g.v_stride1;
  constexpr int64_t C = CHUNK<T>;
  BackwardBlocks<T> blocks(g.w, F, R, FILTER_EDGES);    // unit-vector sums of one group of filters
  T *__restrict__ gf_block = blocks.gf, *__restrict__ gu_lanes = blocks.gu;
  for (int64_t e0 = e_begin; e0 < e_end; e0 += EDGE_BLOCK) {
    const int64_t B = std::min(EDGE_BLOCK, e_end - e0);
    filtered_edges<T, !FIRST>(
        g, e0, e0 + B, F, R, [&](int64_t, int64_t n) { std::fill(gu_lanes, gu_lanes + n * 3 * C, T(0)); },
        [&](int64_t e, int64_t q, int64_t c0, int64_t len, const T *f) {
          const int64_t a = g.i[e], b = g.j[e];
          const T *vj = FIRST ? nullptr : g.v + b * g.v_stride0;
          T *gvj = FIRST ? nullptr : g_v + b * 3 * F;
          backward_chunk<T, FIRST>(f, f + C, f + 2 * C, g.unit + e * g.unit_stride, g.phi + b * g.phi_stride, vj,
                                   vs1, gs + a * F, gv + a * 3 * F, g_phi + b * 3 * F, gvj, gu_lanes + q * 3 * C,
                                   gf_block + (e - e0) * 3 * F, F, c0, len);
        },
        [&](int64_t e1, int64_t n) {
          for (int64_t q = 0; q < n; ++q)
            for (int d = 0; d < 3; ++d) g_feat[(e1 + q) * row + R + d] = lane_sum(gu_lanes + q * 3 * C + d * C);
        });
    blocks.rbf_gradients(B, g_feat + e0 * row, row);
  }
}

// ---- Pairs: edges laid out as pairs, 2k = (a, b) and 2k + 1 = (b, a), whose feature rows mirror (the same
// rbf_cut, negated unit vectors: the vectors v and -v of one pair of atoms; painn_message checks it). One filter
// per pair, from row 2k's rbf_cut, serves both directions, which halves the filter work, most of the operator's
// arithmetic; row 2k + 1's rbf_cut is not read (its gradient row is zero, row 2k's gets both directions'). Both
// directions receive, so a and b are both local atoms.

// ds (n_local, F) and dv (n_local, 3, F), contiguous and zeroed: += the messages of pairs k_begin..k_end-1.
template <typename T, bool FIRST, int64_t FK = 0, int64_t RK = 0>
MASKPOT_OUTLINE void pair_forward_edges(const Edges<T> &g, int64_t k_begin, int64_t k_end, T *ds, T *dv)
{
  const int64_t F = FK ? FK : g.F, R = RK ? RK : g.R, vs1 = FK ? FK : g.v_stride1;
  constexpr int64_t C = CHUNK<T>;
  const auto none = [](int64_t, int64_t) {};
  filtered_edges<T, !FIRST, 2>(
      g, k_begin, k_end, F, R, none,
      [&](int64_t k, int64_t, int64_t c0, int64_t len, const T *f) {
        const int64_t e = 2 * k, a = g.i[e], b = g.j[e];
        const T *va = FIRST ? nullptr : g.v + a * g.v_stride0, *vb = FIRST ? nullptr : g.v + b * g.v_stride0;
        forward_chunk<T, FIRST>(f, f + C, f + 2 * C, g.unit + e * g.unit_stride, g.phi + b * g.phi_stride, vb, vs1,
                                ds + a * F, dv + a * 3 * F, F, c0, len);
        forward_chunk<T, FIRST>(f, f + C, f + 2 * C, g.unit + (e + 1) * g.unit_stride, g.phi + a * g.phi_stride, va,
                                vs1, ds + b * F, dv + b * 3 * F, F, c0, len);
      },
      none);
}

// backward_edges for pairs k_begin..k_end-1 (both directions of each): the rbf_cut gradient of a pair's one filter
// on row 2k of g_feat, zeros on row 2k + 1.
template <typename T, bool FIRST, int64_t FK = 0, int64_t RK = 0>
MASKPOT_OUTLINE void pair_backward_edges(const Edges<T> &g, int64_t k_begin, int64_t k_end, const T *gs,
                                         const T *gv, T *g_phi, T *g_v, T *g_feat)
{
  const int64_t F = FK ? FK : g.F, R = RK ? RK : g.R, row = R + 3, vs1 = FK ? FK : g.v_stride1;
  constexpr int64_t C = CHUNK<T>;
  BackwardBlocks<T> blocks(g.w, F, R, 2 * FILTER_EDGES);    // both directions of one group of pairs
  T *__restrict__ gf_block = blocks.gf, *__restrict__ gu_lanes = blocks.gu;
  for (int64_t k0 = k_begin; k0 < k_end; k0 += EDGE_BLOCK) {
    const int64_t B = std::min(EDGE_BLOCK, k_end - k0);
    filtered_edges<T, !FIRST, 2>(
        g, k0, k0 + B, F, R, [&](int64_t, int64_t n) { std::fill(gu_lanes, gu_lanes + 2 * n * 3 * C, T(0)); },
        [&](int64_t k, int64_t q, int64_t c0, int64_t len, const T *f) {
          const int64_t e = 2 * k, a = g.i[e], b = g.j[e];
          const T *va = FIRST ? nullptr : g.v + a * g.v_stride0, *vb = FIRST ? nullptr : g.v + b * g.v_stride0;
          T *gva = FIRST ? nullptr : g_v + a * 3 * F, *gvb = FIRST ? nullptr : g_v + b * 3 * F;
          T *gf = gf_block + (k - k0) * 3 * F;
          // a <- b, then b <- a into the same filter-output gradient
          backward_chunk<T, FIRST, false>(f, f + C, f + 2 * C, g.unit + e * g.unit_stride, g.phi + b * g.phi_stride,
                                          vb, vs1, gs + a * F, gv + a * 3 * F, g_phi + b * 3 * F, gvb,
                                          gu_lanes + 2 * q * 3 * C, gf, F, c0, len);
          backward_chunk<T, FIRST, true>(f, f + C, f + 2 * C, g.unit + (e + 1) * g.unit_stride,
                                         g.phi + a * g.phi_stride, va, vs1, gs + b * F, gv + b * 3 * F,
                                         g_phi + a * 3 * F, gva, gu_lanes + (2 * q + 1) * 3 * C, gf, F, c0, len);
        },
        [&](int64_t k1, int64_t n) {
          for (int64_t q = 0; q < n; ++q) {
            T *first_row = g_feat + 2 * (k1 + q) * row, *second_row = first_row + row;
            for (int d = 0; d < 3; ++d) {
              first_row[R + d] = lane_sum(gu_lanes + 2 * q * 3 * C + d * C);
              second_row[R + d] = lane_sum(gu_lanes + (2 * q + 1) * 3 * C + d * C);
            }
            std::fill(second_row, second_row + R, T(0));
          }
        });
    blocks.rbf_gradients(B, g_feat + 2 * k0 * row, 2 * row);    // on the pairs' first rows
  }
}

// Up to `parts` consecutive edge ranges (boundaries, first 0, last E) such that no receiving atom has edges in
// two ranges, so that threads can scatter into ds/dv without conflicts: possible when each atom's edges are
// contiguous (neighbour lists give them so); otherwise one range. `seen` is scratch of n_local entries.
inline std::vector<int64_t> receiver_ranges(const int64_t *i, int64_t E, int64_t n_local, int64_t parts)
{
  std::vector<int64_t> bounds{0};
  if (parts > 1) {
    std::vector<char> seen(n_local, 0);
    for (int64_t e = 0; e < E; ++e) {
      if (e > 0 && i[e] == i[e - 1]) continue;
      if (seen[i[e]]) return {0, E};    // atom i[e] has edges in two places
      seen[i[e]] = 1;
    }
    for (int64_t t = 1; t < parts; ++t) {
      int64_t b = std::max(bounds.back(), E * t / parts);
      while (b > 0 && b < E && i[b] == i[b - 1]) ++b;
      if (b > bounds.back() && b < E) bounds.push_back(b);
    }
  }
  bounds.push_back(E);
  return bounds;
}

}    // namespace maskpot

MASKPOT_WIDE_VECTORS_END

#endif
