/* pair_style maskpot ghosts exchange: the model runs one message-passing layer at a time and the node states of
   ghost atoms are communicated between layers (see pair_maskpot.h and maskpot.models.potential).

   Forward, for layers k = 0..L-1: node states of all atoms (local and ghost) -> layer_step -> new states of the
   local atoms -> forward communication copies them into the ghost rows of the owners' images -> next layer.
   Layer 0's states depend on species only, so every rank makes them for its ghosts itself. node_outputs turns
   the last states of the local atoms into their energies, the model's priors (short-range repulsion) included:
   they read the edge vectors from the edge features, so their gradient joins the edge-feature gradients.
   Backward (energy-centric models), k = L-1..0: the gradient with respect to the local atoms' states after layer
   k goes back through layer k, giving gradients with respect to the states of all atoms before it and to the
   edge features; reverse communication adds the ghost rows into their owners' rows, which is the gradient with
   respect to the local states after layer k-1. The edge-feature gradients of all layers go back to the edge
   vectors once; an edge i <- j then puts +g on atom i and -g on atom j (local or ghost; LAMMPS' reverse
   communication of forces brings ghost forces home). Each layer's autograd graph is freed after its backward.
   Hand-written rather than one autograd call because the graph crosses MPI ranks between layers. A rank whose
   model failed keeps taking part in every exchange and reports the failure at the end of the step. */

#include "pair_maskpot.h"

#include "maskpot_model.h"

#include "atom.h"
#include "comm.h"

#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cstring>

using namespace LAMMPS_NS;

namespace {

using torch::Tensor;

// (rows, width) states in their own dtype -> the first rows of `buffer`, `slots` doubles per row (the bytes
// copied as they are, rows padded to whole doubles), or back
void to_rows(const Tensor &t, std::vector<double> &buffer, int slots)
{
  const Tensor d = t.detach().to(torch::kCPU).contiguous();
  const auto rows = static_cast<size_t>(d.size(0)), row_bytes = static_cast<size_t>(d.size(1) * d.element_size());
  if (rows * slots > buffer.size() || row_bytes > sizeof(double) * slots)
    throw std::runtime_error("node states larger than the exchange buffer");
  const auto *from = static_cast<const char *>(d.data_ptr());
  auto *to = reinterpret_cast<char *>(buffer.data());
  for (size_t r = 0; r < rows; ++r) std::memcpy(to + r * sizeof(double) * slots, from + r * row_bytes, row_bytes);
}

Tensor from_rows(std::vector<double> &buffer, int64_t rows, int64_t width, int slots, torch::Dtype dtype,
                 torch::Device device)
{
  const int64_t stride = static_cast<int64_t>(sizeof(double)) * slots / static_cast<int64_t>(c10::elementSize(dtype));
  return torch::from_blob(buffer.data(), {rows, width}, {stride, 1}, torch::TensorOptions().dtype(dtype))
      .to(device, dtype, /*non_blocking=*/false, /*copy=*/true)
      .contiguous();
}

// rows[list[k]] += in[k] for the n rows of a reverse communication, in the states' dtype T
template <typename T> void add_rows(double *rows, const double *in, int n, const int *list, int slots, int width)
{
  for (int k = 0; k < n; ++k) {
    T *row = reinterpret_cast<T *>(rows + static_cast<size_t>(list[k]) * slots);
    const T *add = reinterpret_cast<const T *>(in + static_cast<size_t>(k) * slots);
    for (int c = 0; c < width; ++c) row[c] += add[c];
  }
}

Tensor or_zeros(const Tensor &grad, const Tensor &like)
{
  return grad.defined() ? grad : torch::zeros_like(like);
}

}    // namespace

void PairMaskpot::compute_exchange()
{
  using torch::autograd::grad;
  fold_self_images(nullptr);    // edges to images of this rank's own atoms go to those atoms
  lap("fold");
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int width = model->state_width;
  const int layers = model->layers;
  const bool energy_centric = model->energy_centric;
  const torch::Dtype dtype = model->state_dtype;
  const auto f64 = torch::kFloat64;
  const auto nedges = static_cast<int64_t>(edge_src.size());
  const tagint *tag = atom->tag;
  auto &module = model->module;
  const auto device = device_of(device_index);    // the model's inputs go there, its outputs come back
  comm_rows.assign(static_cast<size_t>(nall) * comm_slots, 0.0);

  // A rank without atoms still takes part in every exchange (its neighbours wait for it) with zero rows.
  Tensor edge_index, vec, numbers, feat, feat_leaf, node, edge, node_last, edge_last, node_energy, node_vector;
  Tensor atom_energy, grad_vec;
  std::vector<Tensor> node_in(layers), node_out(layers), edge_out(layers), edge_in(layers);
  guarded(failure, [&] {
    edge_index = edge_index_of(edge_src, edge_dst).to(device);
    vec = torch::from_blob(edge_vec.data(), {nedges, 3}, f64).clone().to(device).requires_grad_(energy_centric);
    numbers = atomic_numbers_of(atom->type, nall, type_to_z).to(device);
    feat = tensor_of(module.run_method("edge_features", vec), "edge_features");
    expect(feat, "edge_features", {nedges, -1}, dtype);
    feat_leaf = feat.detach().requires_grad_(energy_centric);
    auto start = tensors_of(module.run_method("initial_state", numbers, feat_leaf), 2, "initial_state");
    expect(start[0], "initial_state's node states", {nall, width}, dtype);
    node = start[0];
    edge = start[1];
  });
  lap("features");
  for (int k = 0; k < layers; ++k) {
    guarded(failure, [&] {
      // layer 0's states hold species only; later ones are leaves whose gradients we exchange
      node_in[k] = k == 0 ? node.detach() : node.detach().requires_grad_(energy_centric);
      // edge states stay on the rank; layer 0's stays attached to the edge features it came from
      edge_in[k] = k == 0 ? edge : edge.detach().requires_grad_(energy_centric && edge.numel() > 0);
      auto out = tensors_of(module.run_method("layer_step", static_cast<int64_t>(k), node_in[k], edge_in[k],
                                              feat_leaf, edge_index, static_cast<int64_t>(nlocal)), 2, "layer_step");
      expect(out[0], "layer_step's node states", {nlocal, width}, dtype);
      node_out[k] = out[0];
      edge = edge_out[k] = out[1];
      if (k + 1 < layers) to_rows(node_out[k], comm_rows, comm_slots);
    });
    lap("layers");
    if (k + 1 == layers) break;
    if (!failure.empty()) std::fill(comm_rows.begin(), comm_rows.end(), 0.0);    // send nothing misleading
    comm->forward_comm(this);
    guarded(failure, [&] { node = from_rows(comm_rows, nall, width, comm_slots, dtype, device); });
    lap("exchange_forward");
  }
  guarded(failure, [&] {
    node_last = node_out[layers - 1].detach().requires_grad_(energy_centric);
    edge_last = edge_out[layers - 1].detach().requires_grad_(energy_centric && edge_out[layers - 1].numel() > 0);
    auto out = tensors_of(module.run_method("node_outputs", node_last, edge_last, feat_leaf, edge_index, numbers),
                          2, "node_outputs");
    expect(out[0], "node_outputs' node_energy", {nlocal}, f64);
    expect(out[1], "node_outputs' node_vector", {nlocal, 3}, f64);
    node_energy = out[0];
    node_vector = out[1].to(torch::kCPU).contiguous();
    atom_energy = node_energy.detach().to(torch::kCPU).contiguous();
    if (const int64_t i = first_nonfinite(atom_energy); i >= 0)
      throw std::runtime_error("non-finite energy of atom ID " + std::to_string(tag[i]));
    if (const int64_t k = energy_centric ? -1 : first_nonfinite(node_vector); k >= 0)
      throw std::runtime_error("non-finite force of atom ID " + std::to_string(tag[k / 3]));
  });
  lap("outputs");

  if (energy_centric) {
    bool has_edge_state = false;
    Tensor g_node, g_feat, g_edge;
    guarded(failure, [&] {
      has_edge_state = edge_last.requires_grad();
      std::vector<Tensor> wrt = {node_last, feat_leaf};
      if (has_edge_state) wrt.push_back(edge_last);
      auto g = nlocal > 0 ? grad({node_energy.sum()}, wrt, {}, false, false, true) : std::vector<Tensor>(wrt.size());
      g_node = or_zeros(g[0], node_last);
      g_feat = or_zeros(g[1], feat_leaf);
      if (has_edge_state) g_edge = or_zeros(g[2], edge_last);
    });
    for (int k = layers - 1; k >= 0; --k) {
      guarded(failure, [&] {
        std::vector<Tensor> outputs = {node_out[k]}, seeds = {g_node};
        if (has_edge_state) {
          outputs.push_back(edge_out[k]);
          seeds.push_back(g_edge);
        }
        std::vector<Tensor> inputs = {feat_leaf};
        if (k > 0) {
          inputs.push_back(node_in[k]);
          if (has_edge_state) inputs.push_back(edge_in[k]);
        }
        auto gk = nlocal > 0 ? grad(outputs, inputs, seeds, false, false, true) : std::vector<Tensor>(inputs.size());
        g_feat = g_feat + or_zeros(gk[0], feat_leaf);
        if (k == 0) return;
        // gradient w.r.t. the states of all atoms before layer k: ghost rows go home, summed into their owners
        if (nlocal > 0)
          to_rows(or_zeros(gk[1], node_in[k]), comm_rows, comm_slots);
        else    // a rank without atoms sends zeros (its ghost rows still hold the last forward exchange)
          std::fill(comm_rows.begin(), comm_rows.end(), 0.0);
        if (has_edge_state) g_edge = or_zeros(gk[2], edge_in[k]);
      });
      lap("backward");
      if (k == 0) break;
      if (!failure.empty()) std::fill(comm_rows.begin(), comm_rows.end(), 0.0);
      comm->reverse_comm(this);
      guarded(failure, [&] { g_node = from_rows(comm_rows, nlocal, width, comm_slots, dtype, device); });
      lap("exchange_reverse");
    }
    guarded(failure, [&] {
      if (nlocal == 0 || nedges == 0) return;
      grad_vec = grad({feat}, {vec}, {g_feat}, false, false, true)[0];
      expect(grad_vec, "gradient of the edge vectors", {nedges, 3}, f64);
      grad_vec = grad_vec.to(torch::kCPU).contiguous();
      if (const int64_t k = first_nonfinite(grad_vec); k >= 0)
        throw std::runtime_error("non-finite force between atom IDs " + std::to_string(tag[edge_src[k / 3]]) +
                                 " and " + std::to_string(tag[edge_dst[k / 3]]));
    });
    lap("edge_gradient");
  }
  raise_failure();
  lap("failure_check");

  const double s = unit_factor;
  double **f = atom->f;
  if (nlocal > 0) {
    const double *e = atom_energy.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i) {
      if (eflag_global) eng_vdwl += s * e[i];
      if (eflag_atom) eatom[i] += s * e[i];
    }
  }
  if (!energy_centric) {    // direct forces on the local atoms, no virial
    const double *fv = node_vector.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i)
      for (int d = 0; d < 3; ++d) f[i][d] += s * fv[3 * i + d];
    return;
  }
  if (!grad_vec.defined()) return;

  // dE/dr_e for r_e = x_j - x_i: F_i += g_e, F_j -= g_e; virial sum r F = -sum_e r_e (x) g_e
  const double *ge = grad_vec.data_ptr<double>();
  double w[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t e = 0; e < nedges; ++e) {
    const int i = static_cast<int>(edge_src[e]), j = static_cast<int>(edge_dst[e]);
    const double *g = ge + 3 * e, *r = edge_vec.data() + 3 * e;
    for (int d = 0; d < 3; ++d) {
      f[i][d] += s * g[d];
      f[j][d] -= s * g[d];
    }
    w[0] -= r[0] * g[0];
    w[1] -= r[1] * g[1];
    w[2] -= r[2] * g[2];
    w[3] -= r[0] * g[1];
    w[4] -= r[0] * g[2];
    w[5] -= r[1] * g[2];
  }
  if (vflag_global)
    for (int k = 0; k < 6; ++k) virial[k] += s * w[k];
}

/* ---------------------------------------------------------------------- */

int PairMaskpot::pack_forward_comm(int n, int *list, double *buf, int, int *)
{
  const int s = comm_slots;
  for (int k = 0; k < n; ++k)
    std::memcpy(buf + static_cast<size_t>(k) * s, comm_rows.data() + static_cast<size_t>(list[k]) * s,
                sizeof(double) * s);
  return n * s;
}

void PairMaskpot::unpack_forward_comm(int n, int first, double *buf)
{
  std::memcpy(comm_rows.data() + static_cast<size_t>(first) * comm_slots, buf, sizeof(double) * n * comm_slots);
}

int PairMaskpot::pack_reverse_comm(int n, int first, double *buf)
{
  std::memcpy(buf, comm_rows.data() + static_cast<size_t>(first) * comm_slots, sizeof(double) * n * comm_slots);
  return n * comm_slots;
}

void PairMaskpot::unpack_reverse_comm(int n, int *list, double *buf)
{
  if (model->state_dtype == torch::kFloat64)
    add_rows<double>(comm_rows.data(), buf, n, list, comm_slots, model->state_width);
  else
    add_rows<float>(comm_rows.data(), buf, n, list, comm_slots, model->state_width);
}
