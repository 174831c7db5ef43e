/* maskpot::painn_update: PaiNN's update step (maskpot/models/painn.py, PaiNNUpdate) as one CPU operator.

   For scalar features s (N, F) and vector features v (N, 3, F), with U, V (F, F) bias-free linear maps of the
   channels and the MLP a = W2 silu(W1 [s | |Vv|] + b1) + b2 split into a_vv | a_sv | a_ss (F each):
     uv = U v, vv = V v                         (per atom and direction d)
     vnorm = sqrt(sum_d vv_d^2 + eps)
     v_out = v + a_vv * uv
     s_out = s + a_ss + a_sv * sum_d uv_d vv_d
   The reference writes this as about fifteen torch ops on (N, 3, F) tensors and twice as many in the backward,
   each a pass over memory (a third of a model call at 4096 waters were such elementwise ops). Here the matrix
   products are four BLAS calls (U and V as one), and everything elementwise is two passes forward and two
   backward, one atom at a time. No library fuses these elementwise steps for TorchScript on the CPU, hence by hand.

   The backward (painn_update_backward) gives the gradients with respect to s and v from those of s_out and
   v_out, from the intermediate tensors the forward keeps (uv | vv, the MLP's hidden pre-activation, a, the dot
   products and vnorm). Like maskpot::painn_message it gives no weight gradients and no double backward: it is
   for inference, and training keeps the reference ops; asking for either raises.
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include <vector>

namespace maskpot {
namespace {

using at::Tensor;

// atoms per thread at least
constexpr int64_t GRAIN = 256;

void check_inputs(const Tensor &s, const Tensor &v, const Tensor &weight_uv, const Tensor &w1, const Tensor &b1,
                  const Tensor &w2, const Tensor &b2)
{
  TORCH_CHECK(s.dim() == 2, "maskpot::painn_update: s must be (N, F), got ", s.sizes());
  const int64_t N = s.size(0), F = s.size(1);
  TORCH_CHECK(v.dim() == 3 && v.size(0) == N && v.size(1) == 3 && v.size(2) == F,
              "maskpot::painn_update: v must be (N, 3, F) = (", N, ", 3, ", F, "), got ", v.sizes());
  TORCH_CHECK(weight_uv.sizes() == at::IntArrayRef({2 * F, F}),
              "maskpot::painn_update: weight_uv must be [U; V] (2F, F), got ", weight_uv.sizes());
  TORCH_CHECK(w1.sizes() == at::IntArrayRef({F, 2 * F}) && b1.sizes() == at::IntArrayRef({F}),
              "maskpot::painn_update: the MLP's first layer must be (F, 2F) and (F,), got ", w1.sizes(), " and ",
              b1.sizes());
  TORCH_CHECK(w2.sizes() == at::IntArrayRef({3 * F, F}) && b2.sizes() == at::IntArrayRef({3 * F}),
              "maskpot::painn_update: the MLP's second layer must be (3F, F) and (3F,), got ", w2.sizes(), " and ",
              b2.sizes());
  const auto dtype = s.scalar_type();
  TORCH_CHECK(dtype == at::kFloat || dtype == at::kDouble, "maskpot::painn_update: float32 or float64 only, got ",
              dtype);
  for (const Tensor *t : {&v, &weight_uv, &w1, &b1, &w2, &b2}) {
    TORCH_CHECK(t->scalar_type() == dtype, "maskpot::painn_update: all inputs must be ", dtype, ", got ",
                t->scalar_type());
    TORCH_CHECK(t->device().is_cpu(), "maskpot::painn_update: CPU tensors only");
  }
  TORCH_CHECK(s.device().is_cpu(), "maskpot::painn_update: CPU tensors only");
}

// The forward and what its backward needs: s_out (N, F), v_out (N, 3, F), uvvv (N, 3, 2F) = [uv | vv] per
// direction, hidden (N, F) = W1 [s | vnorm] + b1, a (N, 3F), dot (N, F) = sum_d uv_d vv_d, vnorm (N, F).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> painn_update_forward_cpu(
    const Tensor &s_in, const Tensor &v_in, const Tensor &weight_uv, const Tensor &w1, const Tensor &b1,
    const Tensor &w2, const Tensor &b2, double eps)
{
  check_inputs(s_in, v_in, weight_uv, w1, b1, w2, b2);
  const Tensor s = s_in.contiguous(), v = v_in.contiguous();
  const int64_t N = s.size(0), F = s.size(1);
  const Tensor uvvv = at::mm(v.view({3 * N, F}), weight_uv.t()).view({N, 3, 2 * F});
  Tensor dot = at::empty({N, F}, s.options()), vnorm = at::empty({N, F}, s.options());
  Tensor mlp_in = at::empty({N, 2 * F}, s.options());
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "maskpot::painn_update", [&] {
    const scalar_t *x = uvvv.data_ptr<scalar_t>(), *sp = s.data_ptr<scalar_t>();
    scalar_t *dp = dot.data_ptr<scalar_t>(), *np = vnorm.data_ptr<scalar_t>(), *mp = mlp_in.data_ptr<scalar_t>();
    const scalar_t e = static_cast<scalar_t>(eps);
    at::parallel_for(0, N, GRAIN, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t *uv = x + n * 6 * F, *vv = uv + F;    // direction d: uv + d * 2F, vv + d * 2F
        scalar_t *__restrict__ d_row = dp + n * F, *__restrict__ n_row = np + n * F, *__restrict__ m = mp + n * 2 * F;
        for (int64_t f = 0; f < F; ++f) {
          d_row[f] = uv[f] * vv[f] + uv[2 * F + f] * vv[2 * F + f] + uv[4 * F + f] * vv[4 * F + f];
          const scalar_t sq = vv[f] * vv[f] + vv[2 * F + f] * vv[2 * F + f] + vv[4 * F + f] * vv[4 * F + f];
          n_row[f] = std::sqrt(sq + e);
          m[f] = sp[n * F + f];
          m[F + f] = n_row[f];
        }
      }
    });
  });
  const Tensor hidden = at::addmm(b1, mlp_in, w1.t());
  const Tensor a = at::addmm(b2, at::silu(hidden), w2.t());
  Tensor s_out = at::empty({N, F}, s.options()), v_out = at::empty({N, 3, F}, s.options());
  AT_DISPATCH_FLOATING_TYPES(s.scalar_type(), "maskpot::painn_update", [&] {
    const scalar_t *x = uvvv.data_ptr<scalar_t>(), *sp = s.data_ptr<scalar_t>(), *vp = v.data_ptr<scalar_t>();
    const scalar_t *ap = a.data_ptr<scalar_t>(), *dp = dot.data_ptr<scalar_t>();
    scalar_t *so = s_out.data_ptr<scalar_t>(), *vo = v_out.data_ptr<scalar_t>();
    at::parallel_for(0, N, GRAIN, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t *a_vv = ap + n * 3 * F, *a_sv = a_vv + F, *a_ss = a_vv + 2 * F;
        for (int64_t d = 0; d < 3; ++d) {
          const scalar_t *__restrict__ uv = x + (n * 3 + d) * 2 * F, *__restrict__ vin = vp + (n * 3 + d) * F;
          scalar_t *__restrict__ out = vo + (n * 3 + d) * F;
          for (int64_t f = 0; f < F; ++f) out[f] = vin[f] + a_vv[f] * uv[f];
        }
        const scalar_t *__restrict__ dr = dp + n * F, *__restrict__ sr = sp + n * F;
        scalar_t *__restrict__ out = so + n * F;
        for (int64_t f = 0; f < F; ++f) out[f] = sr[f] + a_ss[f] + a_sv[f] * dr[f];
      }
    });
  });
  return {s_out, v_out, uvvv, hidden, a, dot, vnorm};
}

std::tuple<Tensor, Tensor> painn_update_cpu(const Tensor &s, const Tensor &v, const Tensor &weight_uv,
                                            const Tensor &w1, const Tensor &b1, const Tensor &w2, const Tensor &b2,
                                            double eps)
{
  auto out = painn_update_forward_cpu(s, v, weight_uv, w1, b1, w2, b2, eps);
  return {std::get<0>(out), std::get<1>(out)};
}

// Gradients with respect to s and v from those of s_out (N, F) and v_out (N, 3, F), from the forward's
// intermediate tensors.
std::tuple<Tensor, Tensor> painn_update_backward_cpu(const Tensor &grad_s_in, const Tensor &grad_v_in,
                                                     const Tensor &uvvv, const Tensor &hidden, const Tensor &a,
                                                     const Tensor &dot, const Tensor &vnorm, const Tensor &weight_uv,
                                                     const Tensor &w1, const Tensor &w2)
{
  const int64_t N = dot.size(0), F = dot.size(1);
  TORCH_CHECK(grad_s_in.sizes() == at::IntArrayRef({N, F}) && grad_v_in.sizes() == at::IntArrayRef({N, 3, F}),
              "maskpot::painn_update_backward: gradients must be (N, F) and (N, 3, F)");
  const Tensor gs = grad_s_in.contiguous(), gv = grad_v_in.contiguous();
  Tensor g_a = at::empty({N, 3 * F}, dot.options()), g_uvvv = at::empty({N, 3, 2 * F}, dot.options());
  // pass 1: the gradients of a and of uv (vv's needs the MLP's backward: pass 2)
  AT_DISPATCH_FLOATING_TYPES(dot.scalar_type(), "maskpot::painn_update_backward", [&] {
    const scalar_t *x = uvvv.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *dp = dot.data_ptr<scalar_t>();
    const scalar_t *gsp = gs.data_ptr<scalar_t>(), *gvp = gv.data_ptr<scalar_t>();
    scalar_t *gap = g_a.data_ptr<scalar_t>(), *gxp = g_uvvv.data_ptr<scalar_t>();
    at::parallel_for(0, N, GRAIN, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t *a_vv = ap + n * 3 * F, *a_sv = a_vv + F, *__restrict__ g_s = gsp + n * F;
        scalar_t *__restrict__ g_avv = gap + n * 3 * F, *__restrict__ g_asv = g_avv + F, *__restrict__ g_ass = g_avv + 2 * F;
        for (int64_t f = 0; f < F; ++f) {
          g_avv[f] = 0;
          g_asv[f] = g_s[f] * dp[n * F + f];
          g_ass[f] = g_s[f];
        }
        for (int64_t d = 0; d < 3; ++d) {
          const scalar_t *__restrict__ uv = x + (n * 3 + d) * 2 * F, *__restrict__ vv = uv + F;
          const scalar_t *__restrict__ g_v = gvp + (n * 3 + d) * F;
          scalar_t *__restrict__ g_uv = gxp + (n * 3 + d) * 2 * F;
          for (int64_t f = 0; f < F; ++f) {
            g_avv[f] += g_v[f] * uv[f];
            g_uv[f] = g_v[f] * a_vv[f] + g_s[f] * a_sv[f] * vv[f];
          }
        }
      }
    });
  });
  const Tensor g_hidden = at::silu_backward(at::mm(g_a, w2), hidden);
  const Tensor g_mlp_in = at::mm(g_hidden, w1);    // (N, 2F): [gradient of s | of vnorm]
  Tensor g_s_out = at::empty({N, F}, dot.options());
  // pass 2: the gradients of vv (the dot products' and vnorm's) and of s
  AT_DISPATCH_FLOATING_TYPES(dot.scalar_type(), "maskpot::painn_update_backward", [&] {
    const scalar_t *x = uvvv.data_ptr<scalar_t>(), *ap = a.data_ptr<scalar_t>(), *np = vnorm.data_ptr<scalar_t>();
    const scalar_t *gsp = gs.data_ptr<scalar_t>(), *gmp = g_mlp_in.data_ptr<scalar_t>();
    scalar_t *gxp = g_uvvv.data_ptr<scalar_t>(), *gso = g_s_out.data_ptr<scalar_t>();
    at::parallel_for(0, N, GRAIN, [&](int64_t n0, int64_t n1) {
      for (int64_t n = n0; n < n1; ++n) {
        const scalar_t *__restrict__ a_sv = ap + n * 3 * F + F, *__restrict__ g_s = gsp + n * F;
        const scalar_t *__restrict__ g_m = gmp + n * 2 * F, *__restrict__ norm = np + n * F;
        for (int64_t d = 0; d < 3; ++d) {
          const scalar_t *__restrict__ uv = x + (n * 3 + d) * 2 * F, *__restrict__ vv = uv + F;
          scalar_t *__restrict__ g_vv = gxp + (n * 3 + d) * 2 * F + F;
          for (int64_t f = 0; f < F; ++f) g_vv[f] = g_s[f] * a_sv[f] * uv[f] + g_m[F + f] * vv[f] / norm[f];
        }
        for (int64_t f = 0; f < F; ++f) gso[n * F + f] = g_s[f] + g_m[f];
      }
    });
  });
  // v_out = v + ... and uvvv = v [U; V]^T: the gradient of v is grad_v + g_uvvv [U; V], one BLAS call
  const Tensor g_v = at::addmm(gv.view({3 * N, F}), g_uvvv.view({3 * N, 2 * F}), weight_uv).view({N, 3, F});
  return {g_s_out, g_v};
}

// ---- autograd: forward and backward through the dispatcher, so that TorchScript and C++ callers both get it.

class PaiNNUpdateFunction : public torch::autograd::Function<PaiNNUpdateFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const Tensor &s,
                                                const Tensor &v, const Tensor &weight_uv, const Tensor &w1,
                                                const Tensor &b1, const Tensor &w2, const Tensor &b2, double eps)
  {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::painn_update_forward", "")
                         .typed<decltype(painn_update_forward_cpu)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [s_out, v_out, uvvv, hidden, a, dot, vnorm] = op.call(s, v, weight_uv, w1, b1, w2, b2, eps);
    ctx->save_for_backward({uvvv, hidden, a, dot, vnorm, weight_uv, w1, w2});
    return {s_out, v_out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads)
  {
    // The engine runs a backward with grad mode on exactly when the caller asked for create_graph=True.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "maskpot::painn_update has no double backward (create_graph=True): it is for inference; "
                "use the reference PaiNN kernels (export with --kernels reference) to differentiate forces");
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::painn_update_backward", "")
                         .typed<decltype(painn_update_backward_cpu)>();
    const auto saved = ctx->get_saved_variables();
    const Tensor gs = grads[0].defined() ? grads[0] : at::zeros_like(saved[3]);
    const Tensor gv = grads[1].defined() ? grads[1] : at::zeros({saved[3].size(0), 3, saved[3].size(1)},
                                                                saved[3].options());
    auto [g_s, g_v] = op.call(gs, gv, saved[0], saved[1], saved[2], saved[3], saved[4], saved[5], saved[6],
                              saved[7]);
    return {g_s, g_v, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

std::tuple<Tensor, Tensor> painn_update_autograd(const Tensor &s, const Tensor &v, const Tensor &weight_uv,
                                                 const Tensor &w1, const Tensor &b1, const Tensor &w2,
                                                 const Tensor &b2, double eps)
{
  for (const Tensor *t : {&weight_uv, &w1, &b1, &w2, &b2})
    TORCH_CHECK(!(t->requires_grad() && at::GradMode::is_enabled()),
                "maskpot::painn_update gives no gradient for its weights (it is for inference): call it with "
                "weights that do not require grad, or use the reference PaiNN kernels to train");
  auto out = PaiNNUpdateFunction::apply(s, v, weight_uv, w1, b1, w2, b2, eps);
  return {out[0], out[1]};
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(maskpot, m)
{
  m.def("painn_update(Tensor s, Tensor v, Tensor weight_uv, Tensor w1, Tensor b1, Tensor w2, Tensor b2, float eps) "
        "-> (Tensor s_out, Tensor v_out)");
  m.def("painn_update_forward(Tensor s, Tensor v, Tensor weight_uv, Tensor w1, Tensor b1, Tensor w2, Tensor b2, "
        "float eps) -> (Tensor s_out, Tensor v_out, Tensor uvvv, Tensor hidden, Tensor a, Tensor dot, "
        "Tensor vnorm)");
  m.def("painn_update_backward(Tensor grad_s, Tensor grad_v, Tensor uvvv, Tensor hidden, Tensor a, Tensor dot, "
        "Tensor vnorm, Tensor weight_uv, Tensor w1, Tensor w2) -> (Tensor g_s, Tensor g_v)");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m)
{
  m.impl("painn_update", &painn_update_cpu);
  m.impl("painn_update_forward", &painn_update_forward_cpu);
  m.impl("painn_update_backward", &painn_update_backward_cpu);
}

TORCH_LIBRARY_IMPL(maskpot, Autograd, m) { m.impl("painn_update", &painn_update_autograd); }

}    // namespace maskpot
