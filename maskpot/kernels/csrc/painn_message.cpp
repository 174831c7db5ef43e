/* maskpot::painn_message: PaiNN's message step (maskpot/models/painn.py, PaiNNMessage) as one fused CPU operator.

   PaiNN's edge features feat (E, R + 3) are [rbf_cut | unit] (maskpot::edge_basis makes them so): the radial
   basis times the envelope, and the unit vectors. For every edge e = (i, j) (messages flow from j to i), with
   f = W rbf_cut[e] (3F) the bias-free filter and
   p = s_phi[j] (3F) split into the groups s | vv | vs of F channels each:
     ds[i]    += p_s * f_s
     dv[i, d] += unit[e, d] * (p_vs * f_vs) + v[j, d] * (p_vv * f_vv)     (the v term only when !first)
   The reference computes this with a GEMM for f over all edges and elementwise ops on (E, 3F) and (E, 3, F)
   tensors, which are written, read back and page-faulted every step. Here the filter of one edge (of two
   consecutive edges where the registers hold both, so that each load of W serves both) is computed for a chunk
   of channels at a time in registers (R FMAs per value; R = num_rbf is small) and immediately multiplied,
   gathered and scattered, so nothing of size E x F is ever materialised. No library fuses a
   GEMM with a gather-multiply-scatter of this shape (it is not a segment reduction torch or a BLAS offers),
   hence hand-written loops.

   The backward (painn_message_backward) recomputes the filter the same way and gives the gradients with respect
   to s_phi, v and feat (one (E, R + 3) tensor, as feat is: no concatenation of parts): what forces need. It
   works on blocks of edges: the filter-output gradients of a block (EDGE_BLOCK x 3F, cache-sized) go through one
   small GEMM with W for the rbf_cut gradients (a per-edge loop over the short R axis vectorises badly;
   small_gemm in painn_message_loops.h says why by hand). It gives no
   gradient for the filter weight and is not itself differentiable (no double backward), so the op is for
   inference (export, MD); training keeps the reference ops. Asking for either raises.

   Pairs: when the edges come laid out in pairs (edge 2k + 1 the reverse of edge 2k, their feature rows mirrored:
   what maskpot::neighbor_pairs gives exports with `paired`, and the LAMMPS plugin its pairs of local atoms, the
   edges to other ranks' ghosts after them; paired_prefix finds them on every call), one filter per
   pair serves both directions (pair_forward_edges, pair_backward_edges in painn_message_loops.h): half the filter
   work, forward and backward. The rbf_cut gradient of a pair is then on its first row, zeros on the second (whose
   rbf_cut the loops do not read); edges not in pairs run the loops edge by edge.

   Threads (torch's intra-op pool): the forward splits the edges where the receiving atom changes, so that each
   thread scatters into its own rows (when every atom's edges are contiguous, as neighbour lists give them;
   otherwise it runs on one thread); the backward splits the edges evenly and scatters into per-thread copies of
   the node gradients, summed at the end (with pairs: both split evenly, the pairs and then the edges after them,
   into per-thread outputs). For a given thread
   count the sums are in a fixed order.
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <cmath>
#include <cstring>
#include <limits>

#include "edge_threads.h"
#include "painn_message_loops.h"

namespace maskpot {
namespace {

using at::Tensor;

Tensor last_dim_contiguous(const Tensor &t)
{
  return t.dim() > 0 && t.size(-1) > 1 && t.stride(-1) != 1 ? t.contiguous() : t;
}

// v (N, 3, F) with unit stride in F and a stride between its 3 rows: node[:, F:].reshape(N, 3, F) is such a view.
Tensor vector_view(const Tensor &v)
{
  const int64_t F = v.size(2);
  if (v.stride(2) == 1 && v.stride(1) == F) return v;
  return v.contiguous();
}

struct Sizes {
  int64_t N, F, R, E, n_local;
};

Sizes check_inputs(const Tensor &s_phi, const Tensor &v, const Tensor &weight, const Tensor &feat, const Tensor &i,
                   const Tensor &j, int64_t n_local, bool first)
{
  TORCH_CHECK(s_phi.dim() == 2 && s_phi.size(1) % 3 == 0, "maskpot::painn_message: s_phi must be (N, 3F), got ",
              s_phi.sizes());
  const int64_t N = s_phi.size(0), F = s_phi.size(1) / 3;
  TORCH_CHECK(weight.dim() == 2 && weight.size(0) == 3 * F, "maskpot::painn_message: filter weight must be (3F, R) = (",
              3 * F, ", R), got ", weight.sizes());
  const int64_t R = weight.size(1);
  TORCH_CHECK(feat.dim() == 2 && feat.size(1) == R + 3, "maskpot::painn_message: feat must be (E, R + 3) = (E, ",
              R + 3, "), got ", feat.sizes());
  const int64_t E = feat.size(0);
  TORCH_CHECK(i.dim() == 1 && j.dim() == 1 && i.size(0) == E && j.size(0) == E,
              "maskpot::painn_message: i and j must be (E,) = (", E, ",), got ", i.sizes(), " and ", j.sizes());
  TORCH_CHECK(i.scalar_type() == at::kLong && j.scalar_type() == at::kLong,
              "maskpot::painn_message: i and j must be int64");
  TORCH_CHECK(0 <= n_local && n_local <= N, "maskpot::painn_message: n_local = ", n_local, " outside [0, N = ", N, "]");
  if (!first)
    TORCH_CHECK(v.dim() == 3 && v.size(0) == N && v.size(1) == 3 && v.size(2) == F,
                "maskpot::painn_message: v must be (N, 3, F) = (", N, ", 3, ", F, "), got ", v.sizes());
  const auto dtype = s_phi.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "maskpot::painn_message: float32 or float64 only, got ",
              dtype);
  for (const Tensor *t : {&weight, &feat})
    TORCH_CHECK(t->scalar_type() == dtype, "maskpot::painn_message: all float inputs must be ", dtype, ", got ",
                t->scalar_type());
  if (!first) TORCH_CHECK(v.scalar_type() == dtype, "maskpot::painn_message: v must be ", dtype);
  for (const Tensor *t : {&s_phi, &v, &weight, &feat, &i, &j})
    TORCH_CHECK(!t->defined() || t->device().is_cpu(), "maskpot::painn_message: CPU tensors only");
  // an out-of-range index would write outside the outputs: checked once here, not in the loops
  const int64_t *ip = i.data_ptr<int64_t>(), *jp = j.data_ptr<int64_t>();
  int64_t bad_i = 0, bad_j = 0;
  for (int64_t e = 0; e < E; ++e) {
    bad_i |= static_cast<int64_t>(static_cast<uint64_t>(ip[e]) >= static_cast<uint64_t>(n_local));
    bad_j |= static_cast<int64_t>(static_cast<uint64_t>(jp[e]) >= static_cast<uint64_t>(N));
  }
  TORCH_CHECK(!bad_i, "maskpot::painn_message: an edge's receiving atom i is outside [0, n_local = ", n_local, ")");
  TORCH_CHECK(!bad_j, "maskpot::painn_message: an edge's sending atom j is outside [0, N = ", N, ")");
  return {N, F, R, E, n_local};
}

// The default model's sizes (maskpot.models.config.ModelConfig: hidden F = 64, num_rbf R = 16) run loops compiled
// for them: with F and R constants, rows are read at constant offsets and the filter's sum over R unrolls (the
// runtime sizes kept one pointer per row and group in registers and spilled them). Other sizes run the same loops
// on runtime sizes.
constexpr int64_t DEFAULT_F = 64, DEFAULT_R = 16;

bool default_sizes(const Sizes &z) { return z.F == DEFAULT_F && z.R == DEFAULT_R; }

template <typename T> auto forward_loop(const Sizes &z, bool first)
{
  if (default_sizes(z))
    return first ? forward_edges<T, true, DEFAULT_F, DEFAULT_R> : forward_edges<T, false, DEFAULT_F, DEFAULT_R>;
  return first ? forward_edges<T, true> : forward_edges<T, false>;
}

template <typename T> auto backward_loop(const Sizes &z, bool first)
{
  if (default_sizes(z))
    return first ? backward_edges<T, true, DEFAULT_F, DEFAULT_R> : backward_edges<T, false, DEFAULT_F, DEFAULT_R>;
  return first ? backward_edges<T, true> : backward_edges<T, false>;
}

template <typename T> auto pair_forward_loop(const Sizes &z, bool first)
{
  if (default_sizes(z))
    return first ? pair_forward_edges<T, true, DEFAULT_F, DEFAULT_R>
                 : pair_forward_edges<T, false, DEFAULT_F, DEFAULT_R>;
  return first ? pair_forward_edges<T, true> : pair_forward_edges<T, false>;
}

template <typename T> auto pair_backward_loop(const Sizes &z, bool first)
{
  if (default_sizes(z))
    return first ? pair_backward_edges<T, true, DEFAULT_F, DEFAULT_R>
                 : pair_backward_edges<T, false, DEFAULT_F, DEFAULT_R>;
  return first ? pair_backward_edges<T, true> : pair_backward_edges<T, false>;
}

// How many leading pairs the edges come laid out in (painn_message_loops.h): pairs k < P, edge 2k + 1 the reverse
// of 2k (i and j swapped; both receive, so both are local: check_inputs checked every i) with the two feature rows
// mirrored to MIRROR_ULPS units in the last place of the row's largest value (the same rbf_cut, negated unit
// vectors: edge_basis of v and -v can differ by an ulp in float64, where the two edges sit in different vector
// lanes), so that one filter per pair computes the function to that rounding. The edges from 2P on run one by
// one (a LAMMPS rank's edges to other ranks' ghosts, which receive nothing, follow its pairs). Any two edges that
// pass are a true pair, so a layout not made in pairs at all costs one failed test. One pass, O(E R).
constexpr double MIRROR_ULPS = 4;

int64_t paired_prefix(const Sizes &z, const Tensor &feat, const Tensor &i, const Tensor &j)
{
  const int64_t *ip = i.data_ptr<int64_t>(), *jp = j.data_ptr<int64_t>();
  int64_t pairs = 0;
  AT_DISPATCH_FLOATING_TYPES(feat.scalar_type(), "maskpot::painn_message", [&] {
    const scalar_t *f = feat.data_ptr<scalar_t>();
    const int64_t stride = feat.stride(0);
    const scalar_t tol = static_cast<scalar_t>(MIRROR_ULPS) * std::numeric_limits<scalar_t>::epsilon();
    for (int64_t e = 0; e + 1 < z.E; e += 2, ++pairs) {
      const scalar_t *x = f + e * stride, *y = x + stride;
      bool same = ip[e] == jp[e + 1] && jp[e] == ip[e + 1];
      // rbf_cut rows bit for bit the same (the usual case: one vectorised compare) or within the tolerance of the
      // row's largest value (its values pass through zero: a relative test per value would refuse an ulp there)
      if (same && std::memcmp(x, y, z.R * sizeof(scalar_t)) != 0) {
        scalar_t scale = 0, diff = 0;
        for (int64_t c = 0; c < z.R; ++c) {
          scale = std::max(scale, std::abs(x[c]));
          diff = std::max(diff, std::abs(x[c] - y[c]));
        }
        same = diff <= tol * scale;
      }
      for (int64_t d = 0; d < 3; ++d) same &= std::abs(x[z.R + d] + y[z.R + d]) <= tol;    // unit vectors
      if (!same) break;
    }
  });
  return pairs;
}

template <typename T>
Edges<T> edges_of(const Sizes &z, const Tensor &s_phi, const Tensor &v, const Tensor &w, const Tensor &wt,
                  const Tensor &feat, const Tensor &i, const Tensor &j, bool first)
{
  const T *f = feat.data_ptr<T>();
  return {z.E, z.F, z.R, i.data_ptr<int64_t>(), j.data_ptr<int64_t>(), s_phi.data_ptr<T>(), s_phi.stride(0),
          first ? nullptr : v.data_ptr<T>(), first ? 0 : v.stride(0), first ? 0 : v.stride(1), w.data_ptr<T>(),
          wt.data_ptr<T>(), f, feat.stride(0), f + z.R, feat.stride(0)};
}

std::tuple<Tensor, Tensor> painn_message_cpu(const Tensor &s_phi_in, const Tensor &v_in, const Tensor &weight,
                                             const Tensor &feat_in, const Tensor &i_in, const Tensor &j_in,
                                             int64_t n_local, bool first)
{
  const Tensor i = i_in.contiguous(), j = j_in.contiguous();
  const Sizes z = check_inputs(s_phi_in, v_in, weight, feat_in, i, j, n_local, first);
  const Tensor s_phi = last_dim_contiguous(s_phi_in), feat = last_dim_contiguous(feat_in),
               v = first ? v_in : vector_view(v_in);
  const Tensor w = weight.contiguous(), wt = weight.t().contiguous();
  Tensor ds = at::zeros({n_local, z.F}, s_phi.options());
  Tensor dv = at::zeros({n_local, 3, z.F}, s_phi.options());
  if (const int64_t P = paired_prefix(z, feat, i, j); P > 0) {
    // pairs, then the single edges after them, each split evenly between threads, each thread into its own copy
    // of the outputs (both directions of a pair receive)
    const int64_t parts = threads_for(z.E), singles = z.E - 2 * P;
    const auto ds_part = thread_copies(ds, parts), dv_part = thread_copies(dv, parts);
    AT_DISPATCH_FLOATING_TYPES(s_phi.scalar_type(), "maskpot::painn_message", [&] {
      const auto g = edges_of<scalar_t>(z, s_phi, v, w, wt, feat, i, j, first);
      const auto run_pairs = pair_forward_loop<scalar_t>(z, first);
      const auto run_edges = forward_loop<scalar_t>(z, first);
      at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
          scalar_t *dst = ds_part[t].data_ptr<scalar_t>(), *dvt = dv_part[t].data_ptr<scalar_t>();
          const auto [k0, k1] = share(P, t, parts);
          const auto [e0, e1] = share(singles, t, parts);
          if (k1 > k0) run_pairs(g, k0, k1, dst, dvt);
          if (e1 > e0) run_edges(g, 2 * P + e0, 2 * P + e1, dst, dvt);
        }
      });
    });
    add_parts(ds_part);
    add_parts(dv_part);
    return {ds, dv};
  }
  // threads take disjoint sets of receiving atoms (when each atom's edges are contiguous; else one thread)
  const auto bounds = receiver_ranges(i.data_ptr<int64_t>(), z.E, n_local, threads_for(z.E));
  AT_DISPATCH_FLOATING_TYPES(s_phi.scalar_type(), "maskpot::painn_message", [&] {
    const auto g = edges_of<scalar_t>(z, s_phi, v, w, wt, feat, i, j, first);
    const auto run = forward_loop<scalar_t>(z, first);
    scalar_t *dsp = ds.data_ptr<scalar_t>(), *dvp = dv.data_ptr<scalar_t>();
    at::parallel_for(0, static_cast<int64_t>(bounds.size()) - 1, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) run(g, bounds[t], bounds[t + 1], dsp, dvp);
    });
  });
  return {ds, dv};
}

std::tuple<Tensor, Tensor, Tensor> painn_message_backward_cpu(const Tensor &grad_ds_in, const Tensor &grad_dv_in,
                                                             const Tensor &s_phi_in, const Tensor &v_in,
                                                             const Tensor &weight_in, const Tensor &feat_in,
                                                             const Tensor &i_in, const Tensor &j_in, int64_t n_local,
                                                             bool first)
{
  const Tensor i = i_in.contiguous(), j = j_in.contiguous();
  const Sizes z = check_inputs(s_phi_in, v_in, weight_in, feat_in, i, j, n_local, first);
  TORCH_CHECK(grad_ds_in.sizes() == at::IntArrayRef({n_local, z.F}) &&
                  grad_dv_in.sizes() == at::IntArrayRef({n_local, 3, z.F}),
              "maskpot::painn_message_backward: gradients must be (n_local, F) and (n_local, 3, F)");
  const Tensor grad_ds = grad_ds_in.contiguous(), grad_dv = grad_dv_in.contiguous();
  const Tensor s_phi = last_dim_contiguous(s_phi_in), feat = last_dim_contiguous(feat_in),
               v = first ? v_in : vector_view(v_in);
  const Tensor weight = weight_in.contiguous(), wt = weight_in.t().contiguous();
  const auto opt = s_phi.options();
  Tensor g_phi = at::zeros({z.N, 3 * z.F}, opt);
  Tensor g_v = at::zeros({z.N, 3, z.F}, opt);
  Tensor g_feat = at::empty({z.E, z.R + 3}, opt);
  // threads take equal edge ranges; the scatters by j go into per-thread copies of g_phi and g_v (the first
  // thread's are the outputs), summed in thread order at the end
  // with leading pairs (paired_prefix) each thread takes its share of the pairs, then of the single edges after them
  const int64_t P = paired_prefix(z, feat, i, j), singles = z.E - 2 * P;
  const int64_t parts = threads_for(z.E);
  const auto g_phi_part = thread_copies(g_phi, parts), g_v_part = thread_copies(g_v, parts);
  AT_DISPATCH_FLOATING_TYPES(s_phi.scalar_type(), "maskpot::painn_message_backward", [&] {
    const auto g = edges_of<scalar_t>(z, s_phi, v, weight, wt, feat, i, j, first);
    const auto run_pairs = pair_backward_loop<scalar_t>(z, first);
    const auto run_edges = backward_loop<scalar_t>(z, first);
    const scalar_t *gs = grad_ds.data_ptr<scalar_t>(), *gv = grad_dv.data_ptr<scalar_t>();
    scalar_t *gf = g_feat.data_ptr<scalar_t>();
    at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t) {
        scalar_t *gp = g_phi_part[t].data_ptr<scalar_t>(), *gvt = g_v_part[t].data_ptr<scalar_t>();
        const auto [k0, k1] = share(P, t, parts);
        const auto [e0, e1] = share(singles, t, parts);
        if (k1 > k0) run_pairs(g, k0, k1, gs, gv, gp, gvt, gf);
        if (e1 > e0) run_edges(g, 2 * P + e0, 2 * P + e1, gs, gv, gp, gvt, gf);
      }
    });
  });
  add_parts(g_phi_part);
  add_parts(g_v_part);
  return {g_phi, g_v, g_feat};
}

// ---- autograd: forward and backward through the dispatcher, so that TorchScript and C++ callers both get it.

class PaiNNMessageFunction : public torch::autograd::Function<PaiNNMessageFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const Tensor &s_phi,
                                                const Tensor &v, const Tensor &weight, const Tensor &feat,
                                                const Tensor &i, const Tensor &j, int64_t n_local, bool first)
  {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::painn_message", "")
                         .typed<decltype(painn_message_cpu)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [ds, dv] = op.call(s_phi, v, weight, feat, i, j, n_local, first);
    ctx->save_for_backward({s_phi, v, weight, feat, i, j});
    ctx->saved_data["n_local"] = n_local;
    ctx->saved_data["first"] = first;
    return {ds, dv};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads)
  {
    // The engine runs a backward with grad mode on exactly when the caller asked for create_graph=True.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "maskpot::painn_message has no double backward (create_graph=True): it is for inference; "
                "use the reference PaiNN kernels (export with --kernels reference) to differentiate forces");
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::painn_message_backward", "")
                         .typed<decltype(painn_message_backward_cpu)>();
    const auto saved = ctx->get_saved_variables();
    auto [g_phi, g_v, g_feat] = op.call(grads[0], grads[1], saved[0], saved[1], saved[2], saved[3], saved[4],
                                        saved[5], ctx->saved_data["n_local"].toInt(),
                                        ctx->saved_data["first"].toBool());
    if (ctx->saved_data["first"].toBool()) g_v = Tensor();
    return {g_phi, g_v, Tensor(), g_feat, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor> painn_message_autograd(const Tensor &s_phi, const Tensor &v, const Tensor &weight,
                                                  const Tensor &feat, const Tensor &i, const Tensor &j,
                                                  int64_t n_local, bool first)
{
  TORCH_CHECK(!(weight.requires_grad() && at::GradMode::is_enabled()),
              "maskpot::painn_message gives no gradient for the filter weight (it is for inference): call it with a "
              "weight that does not require grad, or use the reference PaiNN kernels to train");
  auto out = PaiNNMessageFunction::apply(s_phi, v, weight, feat, i, j, n_local, first);
  return {out[0], out[1]};
}

}    // namespace

TORCH_LIBRARY(maskpot, m)
{
  m.def("painn_message(Tensor s_phi, Tensor v, Tensor weight, Tensor feat, Tensor i, Tensor j, int n_local, "
        "bool first) -> (Tensor ds, Tensor dv)");
  m.def("painn_message_backward(Tensor grad_ds, Tensor grad_dv, Tensor s_phi, Tensor v, Tensor weight, "
        "Tensor feat, Tensor i, Tensor j, int n_local, bool first) -> (Tensor g_s_phi, Tensor g_v, Tensor g_feat)");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m)
{
  m.impl("painn_message", &painn_message_cpu);
  m.impl("painn_message_backward", &painn_message_backward_cpu);
}

TORCH_LIBRARY_IMPL(maskpot, Autograd, m) { m.impl("painn_message", &painn_message_autograd); }

}    // namespace maskpot
