/* maskpot::egnn_message: the edge part of an EGNN layer (maskpot/models/egnn.py, EGNNLayer) as one fused CPU
   operator.

   For every edge e = (i, j) (messages flow from j to i), with a = w_i(h_recv) (n_local, F) and b = w_j(h) (N, F)
   made per atom by the caller, radial[e] (K = num_rbf + 1) the layer's radial features, fcut[e] the envelope and
   r_vec[e] (3) the moved edge vector:
     pre   = (a[i] + b[j]) + W_r radial[e]
     m     = silu(W_e silu(pre) + b_e) * fcut[e]                       (phi_e, times the envelope)
     agg[i] += m                                      agg *= norm at the end
     dd[i]  += r_vec[e] * (phi_x(m) * fcut[e] * norm),  phi_x(m) = w_x2 . silu(W_x m + b_x)   (when the layer moves)
   The reference runs this as about thirty torch ops on (E, F) tensors, each written to memory and read back (most
   of an EGNN step). Here the edges go in blocks of EDGE_BLOCK: the block's rows of each stage live in a few
   cache-sized buffers, the three products per block are small_gemm calls (small_gemm.h) and the elementwise steps
   loops over them, so nothing of size E x F is materialised. No library fuses an MLP with a gather before and a
   scatter after it, hence by hand.

   The backward (egnn_message_backward) recomputes a block's forward stages and goes back through them: the
   gradients with respect to a, b (scattered by i and j), radial, fcut and r_vec (per edge), what forces need
   (the caller's torch ops take them on to h, the node states and the edge vectors). No gradient for the weights
   and no double backward: inference only (export, MD); training keeps the reference layer. Asking for either
   raises. Threads (torch's intra-op pool): blocks split evenly, the scattered outputs into per-thread copies
   summed in thread order (edge_threads.h); for a given thread count the sums are in a fixed order.
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <optional>
#include <vector>

#include "edge_threads.h"
#include "small_gemm.h"
#include "vector_math.h"

namespace maskpot {
namespace {

using at::Tensor;
using OptionalTensor = std::optional<Tensor>;

// rows of one block's buffers (48 x F values each, all of them in L2): a multiple of small_gemm's 6- and 12-row
// register tiles
constexpr int64_t EDGE_BLOCK = 48;

struct Sizes {
  int64_t N, n_local, F, K, E;
  bool moves;
};

Sizes check_inputs(const Tensor &a, const Tensor &b, const Tensor &radial, const Tensor &fcut, const Tensor &r_vec,
                   const Tensor &i, const Tensor &j, const Tensor &w_r, const Tensor &w_e, const Tensor &b_e,
                   const OptionalTensor &w_x, const OptionalTensor &b_x, const OptionalTensor &w_x2)
{
  TORCH_CHECK(a.dim() == 2 && b.dim() == 2 && a.size(1) == b.size(1),
              "maskpot::egnn_message: a (n_local, F) and b (N, F) must share F, got ", a.sizes(), " and ", b.sizes());
  const int64_t n_local = a.size(0), N = b.size(0), F = a.size(1);
  TORCH_CHECK(n_local <= N, "maskpot::egnn_message: more receiving atoms (", n_local, ") than atoms (", N, ")");
  TORCH_CHECK(radial.dim() == 2, "maskpot::egnn_message: radial must be (E, K), got ", radial.sizes());
  const int64_t E = radial.size(0), K = radial.size(1);
  TORCH_CHECK(fcut.dim() == 1 && fcut.size(0) == E && r_vec.dim() == 2 && r_vec.size(0) == E && r_vec.size(1) == 3,
              "maskpot::egnn_message: fcut must be (E,) and r_vec (E, 3), E = ", E, ", got ", fcut.sizes(), " and ",
              r_vec.sizes());
  TORCH_CHECK(i.dim() == 1 && j.dim() == 1 && i.size(0) == E && j.size(0) == E && i.scalar_type() == at::kLong &&
                  j.scalar_type() == at::kLong,
              "maskpot::egnn_message: i and j must be int64 (E,) = (", E, ",)");
  TORCH_CHECK(w_r.sizes() == at::IntArrayRef({F, K}) && w_e.sizes() == at::IntArrayRef({F, F}) &&
                  b_e.sizes() == at::IntArrayRef({F}),
              "maskpot::egnn_message: w_r must be (F, K), w_e (F, F), b_e (F,)");
  const bool moves = w_x.has_value() && w_x->defined();
  TORCH_CHECK(moves == (b_x.has_value() && b_x->defined()) && moves == (w_x2.has_value() && w_x2->defined()),
              "maskpot::egnn_message: give all of w_x, b_x, w_x2 (a moving layer) or none");
  if (moves)
    TORCH_CHECK(w_x->sizes() == at::IntArrayRef({F, F}) && b_x->sizes() == at::IntArrayRef({F}) &&
                    w_x2->numel() == F,
                "maskpot::egnn_message: w_x must be (F, F), b_x (F,), w_x2 F values");
  const auto dtype = a.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "maskpot::egnn_message: float32 or float64 only, got ",
              dtype);
  std::vector<const Tensor *> floats{&a, &b, &radial, &fcut, &r_vec, &w_r, &w_e, &b_e};
  if (moves) floats.insert(floats.end(), {&*w_x, &*b_x, &*w_x2});
  for (const Tensor *t : floats) {
    TORCH_CHECK(t->scalar_type() == dtype, "maskpot::egnn_message: all float inputs must be ", dtype, ", got ",
                t->scalar_type());
    TORCH_CHECK(t->device().is_cpu(), "maskpot::egnn_message: CPU tensors only");
  }
  // an out-of-range index would write outside the outputs: checked once here, not in the loops
  const Tensor ic = i.contiguous(), jc = j.contiguous();
  const int64_t *ip = ic.data_ptr<int64_t>(), *jp = jc.data_ptr<int64_t>();
  int64_t bad_i = 0, bad_j = 0;
  for (int64_t e = 0; e < E; ++e) {
    bad_i |= static_cast<int64_t>(static_cast<uint64_t>(ip[e]) >= static_cast<uint64_t>(n_local));
    bad_j |= static_cast<int64_t>(static_cast<uint64_t>(jp[e]) >= static_cast<uint64_t>(N));
  }
  TORCH_CHECK(!bad_i, "maskpot::egnn_message: an edge's receiving atom i is outside [0, n_local = ", n_local, ")");
  TORCH_CHECK(!bad_j, "maskpot::egnn_message: an edge's sending atom j is outside [0, N = ", N, ")");
  return {N, n_local, F, K, E, moves};
}

// The inputs as raw pointers (contiguous), with the weights laid out for small_gemm (b = (K, N) row-major, N whole
// vectors): channels padded with zeros to FP, a multiple of the vector lanes, and the radial gradient's columns
// to KP. Zero weights keep the padded channels of every stage at zero (silu(0) = 0), so they change no result.
template <typename T> struct Layer {
  Sizes z;
  int64_t FP, KP;
  T norm;
  const T *a, *b, *radial, *fcut, *r_vec;
  const int64_t *i, *j;
  const T *wrT, *weT, *wxT;    // W_r^T (K, FP), W_e^T (FP, FP), W_x^T (FP, FP): forward products
  const T *we, *wx, *wr;       // W_e, W_x (FP, FP) and W_r (FP, KP): backward products
  const T *be, *bx, *wx2;      // F values each
};

}    // namespace
}    // namespace maskpot

MASKPOT_WIDE_VECTORS_BEGIN

namespace maskpot {
namespace {

template <typename T> MASKPOT_INLINE T sigmoid(T x) { return vector_sigmoid(x); }

// One block's forward stages, rows 0..B-1 for edges e0..e0+B-1: pre, s1 = silu(pre), z2 = W_e s1 + b_e,
// m = silu(z2) * fcut and, when the layer moves, y1 = W_x m + b_x (buffers of EDGE_BLOCK x FP, rows FP apart,
// zeroed before the first block: the padded channels stay zero).
template <typename T>
void forward_block(const Layer<T> &g, int64_t e0, int64_t B, T *pre, T *s1, T *z2, T *m, T *y1)
{
  const int64_t F = g.z.F, K = g.z.K, FP = g.FP;
  small_gemm(g.radial + e0 * K, K, g.wrT, B, K, FP, pre, FP);
  for (int64_t r = 0; r < B; ++r) {
    const T *ar = g.a + g.i[e0 + r] * F, *br = g.b + g.j[e0 + r] * F;
    T *p = pre + r * FP, *s = s1 + r * FP;
    for (int64_t c = 0; c < F; ++c) {
      p[c] = (ar[c] + br[c]) + p[c];
      s[c] = p[c] * sigmoid(p[c]);
    }
  }
  small_gemm(s1, FP, g.weT, B, FP, FP, z2, FP);
  for (int64_t r = 0; r < B; ++r) {
    const T cut = g.fcut[e0 + r];
    T *z = z2 + r * FP, *mr = m + r * FP;
    for (int64_t c = 0; c < F; ++c) {
      z[c] += g.be[c];
      mr[c] = z[c] * sigmoid(z[c]) * cut;
    }
  }
  if (!g.z.moves) return;
  small_gemm(m, FP, g.wxT, B, FP, FP, y1, FP);
  for (int64_t r = 0; r < B; ++r)
    for (int64_t c = 0; c < F; ++c) y1[r * FP + c] += g.bx[c];
}

// phi_x(m) of one row from its y1 = W_x m + b_x.
template <typename T> MASKPOT_INLINE T phi_x(const Layer<T> &g, const T *y1)
{
  T px = 0;
  for (int64_t c = 0; c < g.z.F; ++c) px += y1[c] * sigmoid(y1[c]) * g.wx2[c];
  return px;
}

template <typename T>
MASKPOT_OUTLINE void forward_edges(const Layer<T> &g, int64_t e_begin, int64_t e_end, T *agg, T *dd)
{
  const int64_t F = g.z.F, FP = g.FP, S = EDGE_BLOCK * FP;
  std::vector<T> buf(5 * S);
  T *pre = buf.data(), *s1 = pre + S, *z2 = s1 + S, *m = z2 + S, *y1 = m + S;
  for (int64_t e0 = e_begin; e0 < e_end; e0 += EDGE_BLOCK) {
    const int64_t B = std::min(EDGE_BLOCK, e_end - e0);
    forward_block(g, e0, B, pre, s1, z2, m, y1);
    for (int64_t r = 0; r < B; ++r) {
      const int64_t e = e0 + r, i = g.i[e];
      T *out = agg + i * F;
      const T *mr = m + r * FP;
      for (int64_t c = 0; c < F; ++c) out[c] += mr[c];
      if (g.z.moves) {
        const T coef = phi_x(g, y1 + r * FP) * (g.fcut[e] * g.norm);
        for (int d = 0; d < 3; ++d) dd[3 * i + d] += g.r_vec[3 * e + d] * coef;
      }
    }
  }
}

template <typename T> MASKPOT_INLINE T silu_derivative(T x)
{
  const T s = sigmoid(x);
  return s * (T(1) + x * (T(1) - s));
}

// Gradients of edges e_begin..e_end-1 from g_agg (n_local, F) and g_dd (n_local, 3; null: not moving): += into
// ga (n_local, F) and gb (N, F); written: g_radial (E, K), g_fcut (E), g_rvec (E, 3).
template <typename T>
MASKPOT_OUTLINE void backward_edges(const Layer<T> &g, int64_t e_begin, int64_t e_end, const T *g_agg,
                                    const T *g_dd, T *ga, T *gb, T *g_radial, T *g_fcut, T *g_rvec)
{
  const int64_t F = g.z.F, K = g.z.K, FP = g.FP, KP = g.KP, S = EDGE_BLOCK * FP;
  std::vector<T> buf(8 * S + EDGE_BLOCK * KP);
  T *pre = buf.data(), *s1 = pre + S, *z2 = s1 + S, *m = z2 + S, *y1 = m + S, *gm = y1 + S, *gy = gm + S,
    *tmp = gy + S, *grad_radial = tmp + S;
  for (int64_t e0 = e_begin; e0 < e_end; e0 += EDGE_BLOCK) {
    const int64_t B = std::min(EDGE_BLOCK, e_end - e0);
    forward_block(g, e0, B, pre, s1, z2, m, y1);
    // through agg[i] += m and dd[i] += r_vec * coef, coef = phi_x(m) * fcut * norm
    for (int64_t r = 0; r < B; ++r) {
      const int64_t e = e0 + r, i = g.i[e];
      const T *ga_row = g_agg + i * F;
      T *gmr = gm + r * FP;
      for (int64_t c = 0; c < F; ++c) gmr[c] = ga_row[c] * g.norm;
      g_fcut[e] = 0;
      for (int d = 0; d < 3; ++d) g_rvec[3 * e + d] = 0;
      if (!g.z.moves) continue;
      const T *y = y1 + r * FP, *gd = g_dd + 3 * i, *rv = g.r_vec + 3 * e, cut = g.fcut[e];
      const T px = phi_x(g, y), coef = px * (cut * g.norm);
      const T gc = (gd[0] * rv[0] + gd[1] * rv[1]) + gd[2] * rv[2];
      for (int d = 0; d < 3; ++d) g_rvec[3 * e + d] = gd[d] * coef;
      const T g_px = gc * (cut * g.norm);
      g_fcut[e] = gc * px * g.norm;
      T *gyr = gy + r * FP;
      for (int64_t c = 0; c < F; ++c) gyr[c] = g_px * g.wx2[c] * silu_derivative(y[c]);
    }
    if (g.z.moves) {
      small_gemm(gy, FP, g.wx, B, FP, FP, tmp, FP);
      for (int64_t k = 0; k < B * FP; ++k) gm[k] += tmp[k];
    }
    // through m = silu(z2) * fcut: g_fcut += g_m . silu(z2); g_z2 (into gy) = g_m * fcut * silu'(z2)
    for (int64_t r = 0; r < B; ++r) {
      const int64_t e = e0 + r;
      const T cut = g.fcut[e];
      const T *z = z2 + r * FP, *gmr = gm + r * FP;
      T *gz = gy + r * FP, dot = 0;
      for (int64_t c = 0; c < F; ++c) {
        const T s = sigmoid(z[c]);
        dot += gmr[c] * (z[c] * s);
        gz[c] = gmr[c] * cut * (s * (T(1) + z[c] * (T(1) - s)));
      }
      g_fcut[e] += dot;
    }
    // g_s1 (into tmp) = g_z2 W_e; g_pre (into tmp) = g_s1 * silu'(pre), scattered to a[i] and b[j]
    small_gemm(gy, FP, g.we, B, FP, FP, tmp, FP);
    for (int64_t r = 0; r < B; ++r) {
      const int64_t e = e0 + r;
      T *gp = tmp + r * FP, *gar = ga + g.i[e] * F, *gbr = gb + g.j[e] * F;
      const T *p = pre + r * FP;
      for (int64_t c = 0; c < F; ++c) {
        gp[c] *= silu_derivative(p[c]);
        gar[c] += gp[c];
        gbr[c] += gp[c];
      }
    }
    // g_radial = g_pre W_r (through the zero-padded columns)
    small_gemm(tmp, FP, g.wr, B, FP, KP, grad_radial, KP);
    for (int64_t r = 0; r < B; ++r)
      std::copy(grad_radial + r * KP, grad_radial + r * KP + K, g_radial + (e0 + r) * K);
  }
}

}    // namespace
}    // namespace maskpot

MASKPOT_WIDE_VECTORS_END

namespace maskpot {
namespace {

// Contiguous copies of the inputs and the weight layouts of Layer, kept alive for one call.
struct Prepared {
  Sizes z;
  int64_t FP, KP;
  Tensor a, b, radial, fcut, r_vec, i, j, wrT, weT, wxT, we, wx, wr, be, bx, wx2;
};

// t (rows x cols) in the top-left corner of a zero (rows_to x cols_to) matrix
Tensor padded(const Tensor &t, int64_t rows_to, int64_t cols_to)
{
  Tensor out = at::zeros({rows_to, cols_to}, t.options());
  out.narrow(0, 0, t.size(0)).narrow(1, 0, t.size(1)).copy_(t);
  return out;
}

Prepared prepare(const Tensor &a, const Tensor &b, const Tensor &radial, const Tensor &fcut, const Tensor &r_vec,
                 const Tensor &i, const Tensor &j, const Tensor &w_r, const Tensor &w_e, const Tensor &b_e,
                 const OptionalTensor &w_x, const OptionalTensor &b_x, const OptionalTensor &w_x2)
{
  Prepared p;
  p.z = check_inputs(a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, w_x, b_x, w_x2);
  p.a = a.contiguous(), p.b = b.contiguous(), p.radial = radial.contiguous(), p.fcut = fcut.contiguous();
  p.r_vec = r_vec.contiguous(), p.i = i.contiguous(), p.j = j.contiguous();
  const int64_t lanes = a.scalar_type() == at::kFloat ? LANES<float> : LANES<double>;
  p.FP = (p.z.F + lanes - 1) / lanes * lanes;
  p.KP = (p.z.K + lanes - 1) / lanes * lanes;
  p.wrT = padded(w_r.t(), p.z.K, p.FP), p.wr = padded(w_r, p.FP, p.KP);
  p.weT = padded(w_e.t(), p.FP, p.FP), p.we = padded(w_e, p.FP, p.FP), p.be = b_e.contiguous();
  if (p.z.moves) {
    p.wxT = padded(w_x->t(), p.FP, p.FP), p.wx = padded(*w_x, p.FP, p.FP), p.bx = b_x->contiguous();
    p.wx2 = w_x2->reshape({-1}).contiguous();
  }
  return p;
}

template <typename T> Layer<T> layer_of(const Prepared &p, double norm)
{
  auto ptr = [](const Tensor &t) { return t.defined() ? t.data_ptr<T>() : nullptr; };
  return {p.z,
          p.FP,
          p.KP,
          static_cast<T>(norm),
          ptr(p.a),
          ptr(p.b),
          ptr(p.radial),
          ptr(p.fcut),
          ptr(p.r_vec),
          p.i.data_ptr<int64_t>(),
          p.j.data_ptr<int64_t>(),
          ptr(p.wrT),
          ptr(p.weT),
          ptr(p.wxT),
          ptr(p.we),
          ptr(p.wx),
          ptr(p.wr),
          ptr(p.be),
          ptr(p.bx),
          ptr(p.wx2)};
}

std::tuple<Tensor, Tensor> egnn_message_cpu(const Tensor &a, const Tensor &b, const Tensor &radial, const Tensor &fcut,
                                            const Tensor &r_vec, const Tensor &i, const Tensor &j, const Tensor &w_r,
                                            const Tensor &w_e, const Tensor &b_e, const OptionalTensor &w_x,
                                            const OptionalTensor &b_x, const OptionalTensor &w_x2, double norm)
{
  const Prepared p = prepare(a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, w_x, b_x, w_x2);
  Tensor agg = at::zeros({p.z.n_local, p.z.F}, a.options());
  Tensor dd = at::zeros({p.z.n_local, 3}, a.options());
  const int64_t parts = threads_for(p.z.E);
  const auto agg_part = thread_copies(agg, parts), dd_part = thread_copies(dd, parts);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "maskpot::egnn_message", [&] {
    const Layer<scalar_t> g = layer_of<scalar_t>(p, norm);
    at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const auto [e0, e1] = share(p.z.E, t, parts);
        forward_edges(g, e0, e1, agg_part[t].data_ptr<scalar_t>(), dd_part[t].data_ptr<scalar_t>());
      }
    });
  });
  add_parts(agg_part);
  add_parts(dd_part);
  agg.mul_(norm);
  return {agg, dd};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor> egnn_message_backward_cpu(
    const Tensor &grad_agg, const OptionalTensor &grad_dd, const Tensor &a, const Tensor &b, const Tensor &radial,
    const Tensor &fcut, const Tensor &r_vec, const Tensor &i, const Tensor &j, const Tensor &w_r, const Tensor &w_e,
    const Tensor &b_e, const OptionalTensor &w_x, const OptionalTensor &b_x, const OptionalTensor &w_x2, double norm)
{
  const Prepared p = prepare(a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, w_x, b_x, w_x2);
  const auto opt = a.options();
  TORCH_CHECK(grad_agg.sizes() == at::IntArrayRef({p.z.n_local, p.z.F}),
              "maskpot::egnn_message_backward: grad_agg must be (n_local, F)");
  const Tensor g_agg = grad_agg.contiguous();
  // the displacement's gradient only matters for a moving layer (an undefined one is zero)
  const bool has_g_dd = grad_dd.has_value() && grad_dd->defined();
  const Tensor g_dd = p.z.moves ? (has_g_dd ? grad_dd->contiguous() : at::zeros({p.z.n_local, 3}, opt)) : Tensor();
  Tensor ga = at::zeros({p.z.n_local, p.z.F}, opt), gb = at::zeros({p.z.N, p.z.F}, opt);
  Tensor g_radial = at::empty({p.z.E, p.z.K}, opt), g_fcut = at::empty({p.z.E}, opt);
  Tensor g_rvec = at::empty({p.z.E, 3}, opt);
  const int64_t parts = threads_for(p.z.E);
  const auto ga_part = thread_copies(ga, parts), gb_part = thread_copies(gb, parts);
  AT_DISPATCH_FLOATING_TYPES(a.scalar_type(), "maskpot::egnn_message_backward", [&] {
    const Layer<scalar_t> g = layer_of<scalar_t>(p, norm);
    const scalar_t *gdd = g_dd.defined() ? g_dd.data_ptr<scalar_t>() : nullptr;
    at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        const auto [e0, e1] = share(p.z.E, t, parts);
        backward_edges(g, e0, e1, g_agg.data_ptr<scalar_t>(), gdd, ga_part[t].data_ptr<scalar_t>(),
                       gb_part[t].data_ptr<scalar_t>(), g_radial.data_ptr<scalar_t>(), g_fcut.data_ptr<scalar_t>(),
                       g_rvec.data_ptr<scalar_t>());
      }
    });
  });
  add_parts(ga_part);
  add_parts(gb_part);
  return {ga, gb, g_radial, g_fcut, g_rvec};
}

// ---- autograd: forward and backward through the dispatcher, so that TorchScript and C++ callers both get it.

// Function::apply takes no undefined tensors: a layer that does not move passes empty ones through it
OptionalTensor optional(const Tensor &t) { return t.defined() && t.numel() > 0 ? OptionalTensor(t) : std::nullopt; }

class EGNNMessageFunction : public torch::autograd::Function<EGNNMessageFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const Tensor &a,
                                                const Tensor &b, const Tensor &radial, const Tensor &fcut,
                                                const Tensor &r_vec, const Tensor &i, const Tensor &j,
                                                const Tensor &w_r, const Tensor &w_e, const Tensor &b_e,
                                                const Tensor &w_x, const Tensor &b_x, const Tensor &w_x2, double norm)
  {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::egnn_message", "")
                         .typed<decltype(egnn_message_cpu)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [agg, dd] = op.call(a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, optional(w_x), optional(b_x),
                             optional(w_x2), norm);
    ctx->save_for_backward({a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, w_x, b_x, w_x2});
    ctx->saved_data["norm"] = norm;
    return {agg, dd};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads)
  {
    // The engine runs a backward with grad mode on exactly when the caller asked for create_graph=True.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "maskpot::egnn_message has no double backward (create_graph=True): it is for inference; "
                "use the reference EGNN layers (export with --kernels reference) to differentiate forces");
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::egnn_message_backward", "")
                         .typed<decltype(egnn_message_backward_cpu)>();
    const auto s = ctx->get_saved_variables();
    const Tensor g_agg = grads[0].defined() ? grads[0] : at::zeros_like(s[0]);
    auto [ga, gb, g_radial, g_fcut, g_rvec] =
        op.call(g_agg, optional(grads[1]), s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7], s[8], s[9], optional(s[10]),
                optional(s[11]), optional(s[12]), ctx->saved_data["norm"].toDouble());
    return {ga,       gb,       g_radial, g_fcut,   g_rvec,   Tensor(), Tensor(),
            Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor> egnn_message_autograd(const Tensor &a, const Tensor &b, const Tensor &radial,
                                                 const Tensor &fcut, const Tensor &r_vec, const Tensor &i,
                                                 const Tensor &j, const Tensor &w_r, const Tensor &w_e,
                                                 const Tensor &b_e, const OptionalTensor &w_x,
                                                 const OptionalTensor &b_x, const OptionalTensor &w_x2, double norm)
{
  for (const Tensor *w : {&w_r, &w_e, &b_e})
    TORCH_CHECK(!(w->requires_grad() && at::GradMode::is_enabled()),
                "maskpot::egnn_message gives no gradient for the weights (it is for inference): call it with weights "
                "that do not require grad, or use the reference EGNN layers to train");
  const Tensor none = at::empty({0}, a.options());
  auto out = EGNNMessageFunction::apply(a, b, radial, fcut, r_vec, i, j, w_r, w_e, b_e, w_x.value_or(none),
                                        b_x.value_or(none), w_x2.value_or(none), norm);
  return {out[0], out[1]};
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(maskpot, m)
{
  m.def("egnn_message(Tensor a, Tensor b, Tensor radial, Tensor fcut, Tensor r_vec, Tensor i, Tensor j, "
        "Tensor w_r, Tensor w_e, Tensor b_e, Tensor? w_x, Tensor? b_x, Tensor? w_x2, float norm) "
        "-> (Tensor agg, Tensor dd)");
  m.def("egnn_message_backward(Tensor grad_agg, Tensor? grad_dd, Tensor a, Tensor b, Tensor radial, Tensor fcut, "
        "Tensor r_vec, Tensor i, Tensor j, Tensor w_r, Tensor w_e, Tensor b_e, Tensor? w_x, Tensor? b_x, "
        "Tensor? w_x2, float norm) -> (Tensor g_a, Tensor g_b, Tensor g_radial, Tensor g_fcut, Tensor g_r_vec)");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m)
{
  m.impl("egnn_message", &egnn_message_cpu);
  m.impl("egnn_message_backward", &egnn_message_backward_cpu);
}

TORCH_LIBRARY_IMPL(maskpot, Autograd, m) { m.impl("egnn_message", &egnn_message_autograd); }

}    // namespace maskpot
