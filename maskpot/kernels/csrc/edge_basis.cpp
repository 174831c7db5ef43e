/* maskpot::edge_basis: PaiNN's edge features (maskpot/models/radial.py, EdgeGeometry.scaled_basis) as one CPU
   operator.

   For every edge vector x (Angstrom), r = |x|, t = r / rc:
     out[e, n]     = scale * sqrt(2/rc) * sin((n+1) pi r / rc) / r * env(t)     n = 0..R-1
     out[e, R + d] = x_d / r                                                    d = 0..2
   with the envelope env(t) = 1 + t^p (a + t (b + c t)) for t < 1, else 0 (PolynomialCutoff). The reference
   computes these with about twenty torch ops on (E,) and (E, R) tensors, and as many again in the backward, each a
   pass over memory; here each edge is one pass: sin and cos of pi r / rc once, the higher frequencies by rotation
   (sin and cos of (n+1) theta from those of n theta), in double precision whatever the dtype, on blocks of edges
   in vector registers. No library offers this basis as a fused function, hence by hand.

   The backward (edge_basis_backward) gives the gradient with respect to the edge vectors from that of the output,
   recomputing the basis: dout/dr from the derivatives of sin and of the envelope, and the unit vector's
   derivative (I - u u^T) / r. It is not itself differentiable (no double backward): like maskpot::painn_message
   it is for inference, and training keeps the reference ops.
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "edge_basis_loops.h"

namespace maskpot {
namespace {

using at::Tensor;

void check_inputs(const Tensor &edge_vec, int64_t num_rbf, double cutoff, double p, const char *name)
{
  TORCH_CHECK(edge_vec.dim() == 2 && edge_vec.size(1) == 3, name, ": edge_vec must be (E, 3), got ", edge_vec.sizes());
  TORCH_CHECK(edge_vec.scalar_type() == at::kFloat || edge_vec.scalar_type() == at::kDouble, name,
              ": float32 or float64 only, got ", edge_vec.scalar_type());
  TORCH_CHECK(edge_vec.device().is_cpu(), name, ": CPU tensors only");
  TORCH_CHECK(num_rbf > 0 && cutoff > 0 && p >= 1, name, ": num_rbf, cutoff and p must be positive (p >= 1), got ",
              num_rbf, ", ", cutoff, " and ", p);
}

// edges per thread at least (the work per edge is small)
constexpr int64_t GRAIN = 4096;

Tensor edge_basis_cpu(const Tensor &edge_vec_in, double cutoff, int64_t num_rbf, double p, double scale)
{
  check_inputs(edge_vec_in, num_rbf, cutoff, p, "maskpot::edge_basis");
  const Tensor edge_vec = edge_vec_in.contiguous();
  const int64_t E = edge_vec.size(0);
  Tensor out = at::empty({E, num_rbf + 3}, edge_vec.options());
  const Basis z{num_rbf, cutoff, p, scale};
  AT_DISPATCH_FLOATING_TYPES(edge_vec.scalar_type(), "maskpot::edge_basis", [&] {
    const scalar_t *x = edge_vec.data_ptr<scalar_t>();
    scalar_t *o = out.data_ptr<scalar_t>();
    at::parallel_for(0, E, GRAIN, [&](int64_t e0, int64_t e1) { basis_forward(z, x, o, e0, e1); });
  });
  return out;
}

Tensor edge_basis_backward_cpu(const Tensor &grad_in, const Tensor &edge_vec_in, double cutoff, int64_t num_rbf,
                               double p, double scale)
{
  check_inputs(edge_vec_in, num_rbf, cutoff, p, "maskpot::edge_basis_backward");
  const Tensor edge_vec = edge_vec_in.contiguous();
  const int64_t E = edge_vec.size(0);
  TORCH_CHECK(grad_in.sizes() == at::IntArrayRef({E, num_rbf + 3}) && grad_in.scalar_type() == edge_vec.scalar_type(),
              "maskpot::edge_basis_backward: grad must be (E, num_rbf + 3) = (", E, ", ", num_rbf + 3, ") of ",
              edge_vec.scalar_type(), ", got ", grad_in.sizes(), " of ", grad_in.scalar_type());
  const Tensor grad = grad_in.stride(1) == 1 ? grad_in : grad_in.contiguous();
  Tensor g_vec = at::empty({E, 3}, edge_vec.options());
  const Basis z{num_rbf, cutoff, p, scale};
  AT_DISPATCH_FLOATING_TYPES(edge_vec.scalar_type(), "maskpot::edge_basis_backward", [&] {
    const scalar_t *x = edge_vec.data_ptr<scalar_t>(), *g = grad.data_ptr<scalar_t>();
    scalar_t *gv = g_vec.data_ptr<scalar_t>();
    const int64_t stride = grad.stride(0);
    at::parallel_for(0, E, GRAIN, [&](int64_t e0, int64_t e1) { basis_backward(z, x, g, stride, gv, e0, e1); });
  });
  return g_vec;
}

// ---- autograd: forward and backward through the dispatcher, so that TorchScript and C++ callers both get it.

class EdgeBasisFunction : public torch::autograd::Function<EdgeBasisFunction> {
 public:
  static torch::autograd::variable_list forward(torch::autograd::AutogradContext *ctx, const Tensor &edge_vec,
                                                double cutoff, int64_t num_rbf, double p, double scale)
  {
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::edge_basis", "")
                         .typed<decltype(edge_basis_cpu)>();
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensor out = op.call(edge_vec, cutoff, num_rbf, p, scale);
    ctx->save_for_backward({edge_vec});
    ctx->saved_data["cutoff"] = cutoff;
    ctx->saved_data["num_rbf"] = num_rbf;
    ctx->saved_data["p"] = p;
    ctx->saved_data["scale"] = scale;
    return {out};
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx,
                                                 torch::autograd::variable_list grads)
  {
    // The engine runs a backward with grad mode on exactly when the caller asked for create_graph=True.
    TORCH_CHECK(!at::GradMode::is_enabled(),
                "maskpot::edge_basis has no double backward (create_graph=True): it is for inference; "
                "use the reference PaiNN kernels (export with --kernels reference) to differentiate forces");
    static auto op = c10::Dispatcher::singleton()
                         .findSchemaOrThrow("maskpot::edge_basis_backward", "")
                         .typed<decltype(edge_basis_backward_cpu)>();
    const auto saved = ctx->get_saved_variables();
    Tensor g_vec = op.call(grads[0], saved[0], ctx->saved_data["cutoff"].toDouble(),
                           ctx->saved_data["num_rbf"].toInt(), ctx->saved_data["p"].toDouble(),
                           ctx->saved_data["scale"].toDouble());
    return {g_vec, Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor edge_basis_autograd(const Tensor &edge_vec, double cutoff, int64_t num_rbf, double p, double scale)
{
  return EdgeBasisFunction::apply(edge_vec, cutoff, num_rbf, p, scale)[0];
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(maskpot, m)
{
  m.def("edge_basis(Tensor edge_vec, float cutoff, int num_rbf, float p, float scale) -> Tensor");
  m.def("edge_basis_backward(Tensor grad, Tensor edge_vec, float cutoff, int num_rbf, float p, float scale) -> Tensor");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m)
{
  m.impl("edge_basis", &edge_basis_cpu);
  m.impl("edge_basis_backward", &edge_basis_backward_cpu);
}

TORCH_LIBRARY_IMPL(maskpot, Autograd, m) { m.impl("edge_basis", &edge_basis_autograd); }

}    // namespace maskpot
