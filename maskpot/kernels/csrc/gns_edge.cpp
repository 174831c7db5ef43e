/* maskpot::gns_encode, maskpot::gns_edge and maskpot::gns_decode: the edge parts of GNS (maskpot/models/gns.py) as
   fused CPU operators.

   gns_encode, the edge encoder (GNS.edge_encoder) on the radial basis x (E, K):
     x0[e]  = LayerNorm(W_2 silu(W_1 x[e] + b_1) + b_2)        (E, F): the edge states before the first layer

   gns_edge, one processing layer's edge update (GNSLayer), for every edge e = (i, j) (messages flow from j to i),
   with a = e_i(h_recv) (n_local, F) and b = e_j(h) (N, F) made per atom by the caller and c[e] = fcut[e] * norm:
     pre    = (W_e x[e] + b_e + a[i]) + b[j]           x (E, F): the edge states before the layer
     y      = LayerNorm(W_2 silu(pre) + b_2)            (over the F channels, weight ln_w, bias ln_b, eps)
     x'[e]  = x[e] + y                                  the new edge states (E, F), an output
     agg[i] += x'[e] * c[e]                             (n_local, F), the other output
   gns_decode, the decoder and the vector sum of GNS.node_features:
     w      = (W_2 silu(W_1 x[e] + b_1) + b_2) * c[e]
     v[i]  += unit[e] (outer) w                         (n_local, 3, F)
   The reference runs these as a dozen torch ops on (E, F) tensors (and one on E x 3 x F), each written to memory
   and read back: most of a GNS step besides the matrix products. Here the edges go in blocks of EDGE_BLOCK whose
   stages live in cache-sized buffers, the products per block are small_gemm calls (small_gemm.h), the rest loops
   over the block: no E x F intermediate is materialised (edge states, the next layer's input, are the only
   edge-sized outputs). No library fuses an MLP and a layer norm with a gather before and a scatter after, hence by
   hand.

   Forward only: GNS is force-centric, its forces are an output of the forward, so an export never differentiates
   it. The outputs carry no gradient; weights that require grad with grad mode on (training) are refused, and
   training keeps the reference layers. Threads (torch's intra-op pool): edges split evenly, the scattered outputs
   into per-thread copies summed in thread order (edge_threads.h).
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cmath>
#include <utility>
#include <vector>

#include "edge_threads.h"
#include "small_gemm.h"
#include "vector_math.h"

namespace maskpot {
namespace {

using at::Tensor;

// rows of one block's buffers (48 x F values each, in L2): a multiple of small_gemm's 6- and 12-row register tiles
constexpr int64_t EDGE_BLOCK = 48;

// checks shared by both operators: x (E, F), fcut (E,), i (E,) int64 in [0, n_local), float32/64 CPU tensors of
// one dtype; returns E
int64_t check_edges(const char *op, const Tensor &x, const Tensor &fcut, const Tensor &i, int64_t n_local,
                    const std::vector<const Tensor *> &floats)
{
  TORCH_CHECK(x.dim() == 2, op, ": edge states must be (E, F), got ", x.sizes());
  const int64_t E = x.size(0);
  TORCH_CHECK(fcut.dim() == 1 && fcut.size(0) == E, op, ": fcut must be (E,) = (", E, ",), got ", fcut.sizes());
  TORCH_CHECK(i.dim() == 1 && i.size(0) == E && i.scalar_type() == at::kLong, op, ": i must be int64 (E,) = (", E,
              ",)");
  const auto dtype = x.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": float32 or float64 only, got ", dtype);
  for (const Tensor *t : floats) {
    TORCH_CHECK(t->scalar_type() == dtype, op, ": all float inputs must be ", dtype, ", got ", t->scalar_type());
    TORCH_CHECK(t->device().is_cpu(), op, ": CPU tensors only");
  }
  // an out-of-range index would write outside the outputs: checked once here, not in the loops
  const Tensor ic = i.contiguous();
  const int64_t *ip = ic.data_ptr<int64_t>();
  int64_t bad = 0;
  for (int64_t e = 0; e < E; ++e) bad |= static_cast<int64_t>(static_cast<uint64_t>(ip[e]) >= static_cast<uint64_t>(n_local));
  TORCH_CHECK(!bad, op, ": an edge's receiving atom i is outside [0, n_local = ", n_local, ")");
  return E;
}

void check_linear(const char *op, const char *name, const Tensor &w, const Tensor &b, int64_t out, int64_t in)
{
  TORCH_CHECK(w.sizes() == at::IntArrayRef({out, in}) && b.sizes() == at::IntArrayRef({out}), op, ": ", name,
              " must be (", out, ", ", in, ") with a bias of ", out, ", got ", w.sizes(), " and ", b.sizes());
}

// t (rows x cols) in the top-left corner of a zero (rows_to x cols_to) matrix
Tensor padded(const Tensor &t, int64_t rows_to, int64_t cols_to)
{
  Tensor out = at::zeros({rows_to, cols_to}, t.options());
  out.narrow(0, 0, t.size(0)).narrow(1, 0, t.size(1)).copy_(t);
  return out;
}

int64_t padded_width(const Tensor &x, int64_t F)
{
  const int64_t lanes = x.scalar_type() == at::kFloat ? LANES<float> : LANES<double>;
  return (F + lanes - 1) / lanes * lanes;
}

// One operator's inputs as raw pointers (contiguous): x (E, K) goes through an MLP K -> F -> F. Weights
// transposed for small_gemm (b = (K, N) row-major, N whole vectors): output channels padded with zeros to FP, a
// multiple of the vector lanes; zero weights keep the padded channels of every stage at zero (silu(0) = 0).
template <typename T> struct Edges {
  int64_t E, K, F, FP;
  T norm, eps;
  const T *x, *fcut, *unit, *a, *b;    // fcut: layer and decoder; unit: decoder; a, b: layer
  const int64_t *i, *j;                // i: layer and decoder; j: layer
  const T *w1T, *b1, *w2T, *b2;        // (K, FP), F, (FP, FP), F
  const T *ln_w, *ln_b;                // encoder and layer
};

template <typename T> const T *ptr(const Tensor &t) { return t.defined() ? t.data_ptr<T>() : nullptr; }

}    // namespace
}    // namespace maskpot

MASKPOT_WIDE_VECTORS_BEGIN

namespace maskpot {
namespace {

// rows 0..B-1 of h (rows FP apart) = silu(W_1 x[e0 + r] + b_1 [+ a[i] + b[j]]) and then z = W_2 h + b_2: the two
// products of a block and the activation between them (GATHER: the layer's per-atom terms a[i] + b[j]).
template <typename T, bool GATHER>
MASKPOT_INLINE void mlp_block(const Edges<T> &g, int64_t e0, int64_t B, T *h, T *z)
{
  const int64_t F = g.F, FP = g.FP;
  small_gemm(g.x + e0 * g.K, g.K, g.w1T, B, g.K, FP, h, FP);
  for (int64_t r = 0; r < B; ++r) {
    T *p = h + r * FP;
    if (GATHER) {
      const T *ar = g.a + g.i[e0 + r] * F, *br = g.b + g.j[e0 + r] * F;
      for (int64_t c = 0; c < F; ++c) {
        const T pre = ((p[c] + g.b1[c]) + ar[c]) + br[c];
        p[c] = pre * vector_sigmoid(pre);
      }
    } else {
      for (int64_t c = 0; c < F; ++c) {
        const T pre = p[c] + g.b1[c];
        p[c] = pre * vector_sigmoid(pre);
      }
    }
  }
  small_gemm(h, FP, g.w2T, B, FP, FP, z, FP);
  for (int64_t r = 0; r < B; ++r)
    for (int64_t c = 0; c < F; ++c) z[r * FP + c] += g.b2[c];
}

// The layer norm of one row z (F channels): its mean and 1 / sqrt(biased variance + eps), two passes as torch's.
template <typename T> MASKPOT_INLINE std::pair<T, T> row_norm(const T *z, int64_t F, T eps)
{
  T mean = 0, var = 0;
  for (int64_t c = 0; c < F; ++c) mean += z[c];
  mean /= T(F);
  for (int64_t c = 0; c < F; ++c) var += (z[c] - mean) * (z[c] - mean);
  return {mean, T(1) / std::sqrt(var / T(F) + eps)};
}

// Edges e_begin..e_end-1 through the MLP in blocks: row(e, z) for each edge e in order, z its W_2 h + b_2 (F values).
template <typename T, bool GATHER, typename Row>
MASKPOT_INLINE void mlp_rows(const Edges<T> &g, int64_t e_begin, int64_t e_end, Row &&row)
{
  const int64_t FP = g.FP, S = EDGE_BLOCK * FP;
  std::vector<T> buf(2 * S, T(0));
  T *h = buf.data(), *z = h + S;
  for (int64_t e0 = e_begin; e0 < e_end; e0 += EDGE_BLOCK) {
    const int64_t B = std::min(EDGE_BLOCK, e_end - e0);
    mlp_block<T, GATHER>(g, e0, B, h, z);
    for (int64_t r = 0; r < B; ++r) row(e0 + r, static_cast<const T *>(z + r * FP));
  }
}

// gns_encode for edges e_begin..e_end-1: their states into out (E, F).
template <typename T> MASKPOT_OUTLINE void encode(const Edges<T> &g, int64_t e_begin, int64_t e_end, T *out)
{
  const int64_t F = g.F;
  mlp_rows<T, false>(g, e_begin, e_end, [&](int64_t e, const T *z) {
    const auto [mean, rstd] = row_norm(z, F, g.eps);
    T *o = out + e * F;
    for (int64_t c = 0; c < F; ++c) o[c] = (z[c] - mean) * rstd * g.ln_w[c] + g.ln_b[c];
  });
}

// gns_edge for edges e_begin..e_end-1: new edge states into x_new (E, F), agg (n_local, F) += their sums.
template <typename T>
MASKPOT_OUTLINE void edge_update(const Edges<T> &g, int64_t e_begin, int64_t e_end, T *x_new, T *agg)
{
  const int64_t F = g.F;
  mlp_rows<T, true>(g, e_begin, e_end, [&](int64_t e, const T *z) {
    const auto [mean, rstd] = row_norm(z, F, g.eps);
    const T cut = g.fcut[e] * g.norm, *x = g.x + e * F;
    T *out = x_new + e * F, *sum = agg + g.i[e] * F;
    for (int64_t c = 0; c < F; ++c) {
      out[c] = x[c] + ((z[c] - mean) * rstd * g.ln_w[c] + g.ln_b[c]);
      sum[c] += out[c] * cut;
    }
  });
}

// gns_decode for edges e_begin..e_end-1: v (n_local, 3, F) += unit (outer) w.
template <typename T> MASKPOT_OUTLINE void decode(const Edges<T> &g, int64_t e_begin, int64_t e_end, T *v)
{
  const int64_t F = g.F;
  mlp_rows<T, false>(g, e_begin, e_end, [&](int64_t e, const T *z) {
    const T cut = g.fcut[e] * g.norm, *u = g.unit + 3 * e;
    T *out = v + g.i[e] * 3 * F;
    for (int64_t c = 0; c < F; ++c) {
      const T w = z[c] * cut;
      out[c] += u[0] * w;
      out[F + c] += u[1] * w;
      out[2 * F + c] += u[2] * w;
    }
  });
}

}    // namespace
}    // namespace maskpot

MASKPOT_WIDE_VECTORS_END

namespace maskpot {
namespace {

// The weights of an MLP (K -> F -> F) laid out for small_gemm, kept alive for one call.
struct MLPWeights {
  int64_t FP;
  Tensor w1T, b1, w2T, b2;
};

MLPWeights mlp_weights(const Tensor &w1, const Tensor &b1, const Tensor &w2, const Tensor &b2, int64_t K, int64_t F,
                       int64_t FP)
{
  return {FP, padded(w1.t(), K, FP), b1.contiguous(), padded(w2.t(), FP, FP), b2.contiguous()};
}

// Edges split evenly between threads, each scattering into its own zeroed copy of `out`, summed at the end.
template <typename Run> void over_threads(int64_t E, const Tensor &out, Run &&run)
{
  const int64_t parts = threads_for(E);
  const auto out_part = thread_copies(out, parts);
  at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t) {
      const auto [e0, e1] = share(E, t, parts);
      run(e0, e1, out_part[t]);
    }
  });
  add_parts(out_part);
}

Tensor gns_encode_cpu(const Tensor &x_in, const Tensor &w_1, const Tensor &b_1, const Tensor &w_2, const Tensor &b_2,
                      const Tensor &ln_w, const Tensor &ln_b, double eps)
{
  constexpr const char *op = "maskpot::gns_encode";
  TORCH_CHECK(x_in.dim() == 2, op, ": the radial features must be (E, K), got ", x_in.sizes());
  const int64_t E = x_in.size(0), K = x_in.size(1), F = w_1.size(0);
  const auto dtype = x_in.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, op, ": float32 or float64 only, got ", dtype);
  for (const Tensor *t : {&w_1, &b_1, &w_2, &b_2, &ln_w, &ln_b}) {
    TORCH_CHECK(t->scalar_type() == dtype, op, ": all float inputs must be ", dtype, ", got ", t->scalar_type());
    TORCH_CHECK(t->device().is_cpu() && x_in.device().is_cpu(), op, ": CPU tensors only");
  }
  check_linear(op, "w_1", w_1, b_1, F, K);
  check_linear(op, "w_2", w_2, b_2, F, F);
  TORCH_CHECK(ln_w.sizes() == at::IntArrayRef({F}) && ln_b.sizes() == at::IntArrayRef({F}), op,
              ": the layer norm's weight and bias must be (F,) = (", F, ",)");
  const Tensor x = x_in.contiguous(), lw = ln_w.contiguous(), lb = ln_b.contiguous();
  const MLPWeights m = mlp_weights(w_1, b_1, w_2, b_2, K, F, padded_width(x, F));
  Tensor out = at::empty({E, F}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const Edges<T> g{E, K, F, m.FP, T(0), static_cast<T>(eps), ptr<T>(x), nullptr, nullptr, nullptr, nullptr,
                     nullptr, nullptr, ptr<T>(m.w1T), ptr<T>(m.b1), ptr<T>(m.w2T), ptr<T>(m.b2), ptr<T>(lw),
                     ptr<T>(lb)};
    // rows written disjointly: no per-thread copies
    at::parallel_for(0, E, EDGE_BLOCK * 16, [&](int64_t e0, int64_t e1) { encode(g, e0, e1, out.data_ptr<T>()); });
  });
  return out;
}

std::tuple<Tensor, Tensor> gns_edge_cpu(const Tensor &x_in, const Tensor &a_in, const Tensor &b_in,
                                        const Tensor &fcut_in, const Tensor &i_in, const Tensor &j_in,
                                        const Tensor &w_e, const Tensor &b_e, const Tensor &w_2, const Tensor &b_2,
                                        const Tensor &ln_w, const Tensor &ln_b, double eps, double norm)
{
  constexpr const char *op = "maskpot::gns_edge";
  TORCH_CHECK(a_in.dim() == 2 && b_in.dim() == 2 && x_in.dim() == 2 && a_in.size(1) == x_in.size(1) &&
                  b_in.size(1) == x_in.size(1),
              op, ": a (n_local, F), b (N, F) and the edge states (E, F) must share F, got ", a_in.sizes(), ", ",
              b_in.sizes(), " and ", x_in.sizes());
  const int64_t n_local = a_in.size(0), N = b_in.size(0), F = x_in.size(1);
  TORCH_CHECK(n_local <= N, op, ": more receiving atoms (", n_local, ") than atoms (", N, ")");
  const int64_t E = check_edges(op, x_in, fcut_in, i_in, n_local, {&x_in, &a_in, &b_in, &fcut_in, &w_e, &b_e, &w_2,
                                                                    &b_2, &ln_w, &ln_b});
  TORCH_CHECK(j_in.dim() == 1 && j_in.size(0) == E && j_in.scalar_type() == at::kLong, op,
              ": j must be int64 (E,) = (", E, ",)");
  check_linear(op, "w_e", w_e, b_e, F, F);
  check_linear(op, "w_2", w_2, b_2, F, F);
  TORCH_CHECK(ln_w.sizes() == at::IntArrayRef({F}) && ln_b.sizes() == at::IntArrayRef({F}), op,
              ": the layer norm's weight and bias must be (F,) = (", F, ",)");
  const Tensor x = x_in.contiguous(), a = a_in.contiguous(), b = b_in.contiguous(), fcut = fcut_in.contiguous();
  const Tensor i = i_in.contiguous(), j = j_in.contiguous(), lw = ln_w.contiguous(), lb = ln_b.contiguous();
  {
    const int64_t *jp = j.data_ptr<int64_t>();
    int64_t bad = 0;
    for (int64_t e = 0; e < E; ++e) bad |= static_cast<int64_t>(static_cast<uint64_t>(jp[e]) >= static_cast<uint64_t>(N));
    TORCH_CHECK(!bad, op, ": an edge's sending atom j is outside [0, N = ", N, ")");
  }
  const MLPWeights m = mlp_weights(w_e, b_e, w_2, b_2, F, F, padded_width(x, F));
  Tensor x_new = at::empty({E, F}, x.options());
  Tensor agg = at::zeros({n_local, F}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const Edges<T> g{E, F, F, m.FP, static_cast<T>(norm), static_cast<T>(eps), ptr<T>(x), ptr<T>(fcut), nullptr,
                     ptr<T>(a), ptr<T>(b), i.data_ptr<int64_t>(), j.data_ptr<int64_t>(), ptr<T>(m.w1T),
                     ptr<T>(m.b1), ptr<T>(m.w2T), ptr<T>(m.b2), ptr<T>(lw), ptr<T>(lb)};
    over_threads(E, agg, [&](int64_t e0, int64_t e1, const Tensor &out) {
      edge_update(g, e0, e1, x_new.data_ptr<T>(), out.data_ptr<T>());
    });
  });
  return {x_new, agg};
}

Tensor gns_decode_cpu(const Tensor &x_in, const Tensor &unit_in, const Tensor &fcut_in, const Tensor &i_in,
                      const Tensor &w_1, const Tensor &b_1, const Tensor &w_2, const Tensor &b_2, int64_t n_local,
                      double norm)
{
  constexpr const char *op = "maskpot::gns_decode";
  TORCH_CHECK(n_local >= 0, op, ": n_local must be >= 0, got ", n_local);
  const int64_t E = check_edges(op, x_in, fcut_in, i_in, n_local, {&x_in, &unit_in, &fcut_in, &w_1, &b_1, &w_2, &b_2});
  const int64_t F = x_in.size(1);
  TORCH_CHECK(unit_in.dim() == 2 && unit_in.size(0) == E && unit_in.size(1) == 3, op,
              ": unit vectors must be (E, 3) = (", E, ", 3), got ", unit_in.sizes());
  check_linear(op, "w_1", w_1, b_1, F, F);
  check_linear(op, "w_2", w_2, b_2, F, F);
  const Tensor x = x_in.contiguous(), unit = unit_in.contiguous(), fcut = fcut_in.contiguous(), i = i_in.contiguous();
  const MLPWeights m = mlp_weights(w_1, b_1, w_2, b_2, F, F, padded_width(x, F));
  Tensor v = at::zeros({n_local, 3, F}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), op, [&] {
    using T = scalar_t;
    const Edges<T> g{E, F, F, m.FP, static_cast<T>(norm), T(0), ptr<T>(x), ptr<T>(fcut), ptr<T>(unit), nullptr,
                     nullptr, i.data_ptr<int64_t>(), nullptr, ptr<T>(m.w1T), ptr<T>(m.b1), ptr<T>(m.w2T),
                     ptr<T>(m.b2), nullptr, nullptr};
    over_threads(E, v, [&](int64_t e0, int64_t e1, const Tensor &out) { decode(g, e0, e1, out.data_ptr<T>()); });
  });
  return v;
}

// ---- autograd: forward only. The outputs carry no gradient (nothing differentiates a force-centric forward);
// weights that would want one are refused.

void refuse_trainable(const char *op, const std::vector<const Tensor *> &weights)
{
  for (const Tensor *w : weights)
    TORCH_CHECK(!(w->requires_grad() && at::GradMode::is_enabled()), op,
                " gives no gradients (it is for inference: GNS's forces come from its forward): call it with "
                "weights that do not require grad, or use the reference GNS layers to train");
}

Tensor gns_encode_autograd(const Tensor &x, const Tensor &w_1, const Tensor &b_1, const Tensor &w_2, const Tensor &b_2,
                           const Tensor &ln_w, const Tensor &ln_b, double eps)
{
  refuse_trainable("maskpot::gns_encode", {&w_1, &b_1, &w_2, &b_2, &ln_w, &ln_b});
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("maskpot::gns_encode", "").typed<decltype(gns_encode_cpu)>();
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(x, w_1, b_1, w_2, b_2, ln_w, ln_b, eps);
}

std::tuple<Tensor, Tensor> gns_edge_autograd(const Tensor &x, const Tensor &a, const Tensor &b, const Tensor &fcut,
                                             const Tensor &i, const Tensor &j, const Tensor &w_e, const Tensor &b_e,
                                             const Tensor &w_2, const Tensor &b_2, const Tensor &ln_w,
                                             const Tensor &ln_b, double eps, double norm)
{
  refuse_trainable("maskpot::gns_edge", {&w_e, &b_e, &w_2, &b_2, &ln_w, &ln_b});
  static auto op = c10::Dispatcher::singleton().findSchemaOrThrow("maskpot::gns_edge", "").typed<decltype(gns_edge_cpu)>();
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(x, a, b, fcut, i, j, w_e, b_e, w_2, b_2, ln_w, ln_b, eps, norm);
}

Tensor gns_decode_autograd(const Tensor &x, const Tensor &unit, const Tensor &fcut, const Tensor &i, const Tensor &w_1,
                           const Tensor &b_1, const Tensor &w_2, const Tensor &b_2, int64_t n_local, double norm)
{
  refuse_trainable("maskpot::gns_decode", {&w_1, &b_1, &w_2, &b_2});
  static auto op =
      c10::Dispatcher::singleton().findSchemaOrThrow("maskpot::gns_decode", "").typed<decltype(gns_decode_cpu)>();
  at::AutoDispatchBelowADInplaceOrView guard;
  return op.call(x, unit, fcut, i, w_1, b_1, w_2, b_2, n_local, norm);
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(maskpot, m)
{
  m.def("gns_encode(Tensor x, Tensor w_1, Tensor b_1, Tensor w_2, Tensor b_2, Tensor ln_w, Tensor ln_b, float eps) "
        "-> Tensor x0");
  m.def("gns_edge(Tensor x, Tensor a, Tensor b, Tensor fcut, Tensor i, Tensor j, Tensor w_e, Tensor b_e, "
        "Tensor w_2, Tensor b_2, Tensor ln_w, Tensor ln_b, float eps, float norm) -> (Tensor x_new, Tensor agg)");
  m.def("gns_decode(Tensor x, Tensor unit, Tensor fcut, Tensor i, Tensor w_1, Tensor b_1, Tensor w_2, Tensor b_2, "
        "int n_local, float norm) -> Tensor v");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m)
{
  m.impl("gns_encode", &gns_encode_cpu);
  m.impl("gns_edge", &gns_edge_cpu);
  m.impl("gns_decode", &gns_decode_cpu);
}

TORCH_LIBRARY_IMPL(maskpot, Autograd, m)
{
  m.impl("gns_encode", &gns_encode_autograd);
  m.impl("gns_edge", &gns_edge_autograd);
  m.impl("gns_decode", &gns_decode_autograd);
}

}    // namespace maskpot
