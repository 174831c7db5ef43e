/* The edge loops of maskpot::edge_basis (see edge_basis.cpp for what they compute and why they are hand-written),
   on raw pointers so that they compile without torch's headers. */

#ifndef MASKPOT_EDGE_BASIS_LOOPS_H
#define MASKPOT_EDGE_BASIS_LOOPS_H

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "wide_vectors.h"

MASKPOT_WIDE_VECTORS_BEGIN

namespace maskpot {

// R radial functions on [0, cutoff] (Angstrom), the envelope's exponent p, and the factor on the basis
struct Basis {
  int64_t R;
  double cutoff, p, scale;
};

// Taylor coefficients of sin y = y (S0 + S1 y^2 + ...) and cos y = C0 + C1 y^2 + ... to y^21 and y^22: on
// |y| <= pi/2 the first omitted terms are below 2e-18, under double rounding.
constexpr int SIN_TERMS = 11, COS_TERMS = 12;
struct Taylor {
  double s[SIN_TERMS], c[COS_TERMS];
};
constexpr Taylor taylor()
{
  Taylor t{};
  double factorial = 1.0;
  for (int n = 0; n <= 2 * COS_TERMS - 2; ++n) {
    if (n > 0) factorial *= n;
    const double term = ((n / 2) % 2 ? -1.0 : 1.0) / factorial;
    if (n % 2) t.s[n / 2] = term;
    else t.c[n / 2] = term;
  }
  return t;
}
constexpr Taylor TAYLOR = taylor();

// Edges per block: the loops over a block's edges are vectorised; arrays of BLOCK doubles stay in L1.
constexpr int64_t BLOCK = 16;

// What the forward and the backward share for the edges of one block (padded with the unit vector (1, 0, 0)):
// r, 1/r, the unit vector u, the envelope and (DERIV) its derivative with respect to r, and sin and cos of
// theta = pi r / rc. sin and cos by polynomials, vectorised over the block (libm's sincos is a scalar call per
// edge); theta lies in [0, pi] (clamped: beyond the cutoff the envelope is zero), so y = theta - pi/2 is within
// the range above.
struct Block {
  double r[BLOCK], inv[BLOCK], u[3][BLOCK], env[BLOCK], denv[BLOCK], sin1[BLOCK], cos1[BLOCK];
};

template <typename T, bool DERIV>
MASKPOT_INLINE void block_geometry(const Basis &z, const T *x, int64_t e0, int64_t nb, Block &b)
{
  for (int64_t k = 0; k < BLOCK; ++k)
    for (int d = 0; d < 3; ++d) b.u[d][k] = k < nb ? static_cast<double>(x[3 * (e0 + k) + d]) : double(d == 0);
  const double inv_cutoff = 1.0 / z.cutoff, step = M_PI / z.cutoff, p = z.p;
  const double a = -0.5 * (p + 1.0) * (p + 2.0), bb = p * (p + 2.0), c = -0.5 * p * (p + 1.0);
  // t^(p-1): repeated products for an integer p (the envelope's 6), else pow
  const int ip = static_cast<int>(p);
  double tp1[BLOCK];
  for (int64_t k = 0; k < BLOCK; ++k) {
    const double r = std::sqrt(b.u[0][k] * b.u[0][k] + b.u[1][k] * b.u[1][k] + b.u[2][k] * b.u[2][k]);
    b.r[k] = r;
    b.inv[k] = 1.0 / r;
    tp1[k] = 1.0;
  }
  if (ip == p && ip <= 32) {
    for (int q = 1; q < ip; ++q)
      for (int64_t k = 0; k < BLOCK; ++k) tp1[k] *= b.r[k] * inv_cutoff;
  } else {
    for (int64_t k = 0; k < BLOCK; ++k) tp1[k] = std::pow(b.r[k] * inv_cutoff, p - 1.0);
  }
  for (int64_t k = 0; k < BLOCK; ++k) {
    for (int d = 0; d < 3; ++d) b.u[d][k] *= b.inv[k];
    const double t = b.r[k] * inv_cutoff, tp = tp1[k] * t, inside = t < 1.0 ? 1.0 : 0.0;
    const double poly = a + t * (bb + c * t);
    b.env[k] = inside * (1.0 + tp * poly);
    if (DERIV) b.denv[k] = inside * (p * tp1[k] * poly + tp * (bb + 2.0 * c * t)) * inv_cutoff;
    const double y = std::min(step * b.r[k], M_PI) - 0.5 * M_PI, y2 = y * y;
    double ps = TAYLOR.s[SIN_TERMS - 1], pc = TAYLOR.c[COS_TERMS - 1];
    for (int q = SIN_TERMS - 2; q >= 0; --q) ps = ps * y2 + TAYLOR.s[q];
    for (int q = COS_TERMS - 2; q >= 0; --q) pc = pc * y2 + TAYLOR.c[q];
    b.sin1[k] = pc;       // sin(theta) = cos(y)
    b.cos1[k] = -y * ps;  // cos(theta) = -sin(y)
  }
}

// out (E, R + 3) for the edges e0..e1-1 of x (E, 3): [basis | unit vector]
template <typename T> MASKPOT_OUTLINE void basis_forward(const Basis &z, const T *x, T *out, int64_t e0, int64_t e1)
{
  const int64_t R = z.R, W = R + 3;
  const double prefactor = std::sqrt(2.0 / z.cutoff) * z.scale;
  Block b;
  std::vector<double> tile(R * BLOCK);
  for (int64_t eb = e0; eb < e1; eb += BLOCK) {
    const int64_t nb = std::min(BLOCK, e1 - eb);
    block_geometry<T, false>(z, x, eb, nb, b);
    double pre[BLOCK], s[BLOCK], c[BLOCK];
    for (int64_t k = 0; k < BLOCK; ++k) {
      pre[k] = prefactor * b.inv[k] * b.env[k];
      s[k] = b.sin1[k];
      c[k] = b.cos1[k];
    }
    for (int64_t n = 0; n < R; ++n) {
      double *row = tile.data() + n * BLOCK;
      for (int64_t k = 0; k < BLOCK; ++k) {
        row[k] = pre[k] * s[k];
        const double s_next = s[k] * b.cos1[k] + c[k] * b.sin1[k];
        c[k] = c[k] * b.cos1[k] - s[k] * b.sin1[k];
        s[k] = s_next;
      }
    }
    for (int64_t k = 0; k < nb; ++k) {
      T *o = out + (eb + k) * W;
      for (int64_t n = 0; n < R; ++n) o[n] = static_cast<T>(tile[n * BLOCK + k]);
      for (int d = 0; d < 3; ++d) o[R + d] = static_cast<T>(b.u[d][k]);
    }
  }
}

// g_vec (E, 3) for the edges e0..e1-1 from the output gradient grad (E, R + 3; rows grad_stride apart)
template <typename T>
MASKPOT_OUTLINE void basis_backward(const Basis &z, const T *x, const T *grad, int64_t grad_stride, T *g_vec,
                                    int64_t e0, int64_t e1)
{
  const int64_t R = z.R;
  const double step = M_PI / z.cutoff, prefactor = std::sqrt(2.0 / z.cutoff) * z.scale;
  Block b;
  std::vector<double> tile((R + 3) * BLOCK);
  for (int64_t eb = e0; eb < e1; eb += BLOCK) {
    const int64_t nb = std::min(BLOCK, e1 - eb);
    block_geometry<T, true>(z, x, eb, nb, b);
    for (int64_t k = 0; k < BLOCK; ++k)
      for (int64_t n = 0; n < R + 3; ++n)
        tile[n * BLOCK + k] = k < nb ? static_cast<double>(grad[(eb + k) * grad_stride + n]) : 0.0;
    // out_n = prefactor sin(k_n r) env / r with k_n = (n+1) pi / rc; d out_n / dr = prefactor / r (k_n cos(k_n r)
    // env + sin(k_n r) (denv - env / r))
    double s[BLOCK], c[BLOCK], sum_cos[BLOCK], sum_sin[BLOCK];
    for (int64_t k = 0; k < BLOCK; ++k) {
      s[k] = b.sin1[k];
      c[k] = b.cos1[k];
      sum_cos[k] = sum_sin[k] = 0.0;
    }
    for (int64_t n = 0; n < R; ++n) {
      const double *g = tile.data() + n * BLOCK, kn = static_cast<double>(n + 1);
      for (int64_t k = 0; k < BLOCK; ++k) {
        sum_cos[k] += g[k] * kn * c[k];
        sum_sin[k] += g[k] * s[k];
        const double s_next = s[k] * b.cos1[k] + c[k] * b.sin1[k];
        c[k] = c[k] * b.cos1[k] - s[k] * b.sin1[k];
        s[k] = s_next;
      }
    }
    const double *gu0 = tile.data() + R * BLOCK, *gu1 = gu0 + BLOCK, *gu2 = gu1 + BLOCK;
    double out[3][BLOCK];
    for (int64_t k = 0; k < BLOCK; ++k) {
      const double inv = b.inv[k];
      const double g_r = prefactor * inv * (step * b.env[k] * sum_cos[k] + (b.denv[k] - b.env[k] * inv) * sum_sin[k]);
      // the unit vector: d u / d x = (I - u u^T) / r
      const double u0 = b.u[0][k], u1 = b.u[1][k], u2 = b.u[2][k];
      const double gu_dot_u = gu0[k] * u0 + gu1[k] * u1 + gu2[k] * u2;
      out[0][k] = g_r * u0 + (gu0[k] - gu_dot_u * u0) * inv;
      out[1][k] = g_r * u1 + (gu1[k] - gu_dot_u * u1) * inv;
      out[2][k] = g_r * u2 + (gu2[k] - gu_dot_u * u2) * inv;
    }
    for (int64_t k = 0; k < nb; ++k)
      for (int d = 0; d < 3; ++d) g_vec[3 * (eb + k) + d] = static_cast<T>(out[d][k]);
  }
}

}    // namespace maskpot

MASKPOT_WIDE_VECTORS_END

#endif
