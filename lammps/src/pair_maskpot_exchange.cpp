/* pair_style maskpot ghosts exchange: the model runs one message-passing layer at a time and the node states of
   ghost atoms are communicated between layers (see pair_maskpot.h and maskpot.models.backbone).

   Forward, for layers k = 0..L-1: node states of all atoms (local and ghost) -> layer_step -> new states of the
   local atoms -> forward communication copies them into the ghost rows of the owners' images -> next layer.
   Layer 0's states depend on species only, so every rank makes them for its ghosts itself. readout turns the
   last states of the local atoms into their energies; repulsion_energy adds the model's short-range repulsion
   (a pair term of the edge vectors, maskpot.models.repulsion), whose gradient joins the edge-feature gradients.
   Backward (energy-centric models), k = L-1..0: the gradient with respect to the local atoms' states after layer
   k goes back through layer k, giving gradients with respect to the states of all atoms before it and to the
   edge features; reverse communication adds the ghost rows into their owners' rows, which is the gradient with
   respect to the local states after layer k-1. The edge-feature gradients of all layers go back to the edge
   vectors once; an edge i <- j then puts +g on atom i and -g on atom j (local or ghost; LAMMPS' reverse
   communication of forces brings ghost forces home). Each layer's autograd graph is freed after its backward.
   Hand-written rather than one autograd call because the graph crosses MPI ranks between layers. */

#include "pair_maskpot.h"

#include "maskpot_model.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "neigh_list.h"

#include <torch/csrc/autograd/autograd.h>

#include <algorithm>
#include <cstring>

using namespace LAMMPS_NS;

namespace {

using torch::Tensor;

// (rows, width) tensor -> the first rows x width values of `buffer` (float64), or back
void to_rows(const Tensor &t, std::vector<double> &buffer)
{
  const Tensor d = t.detach().to(torch::kFloat64).contiguous();
  std::memcpy(buffer.data(), d.data_ptr<double>(), sizeof(double) * d.numel());
}

Tensor from_rows(std::vector<double> &buffer, int64_t rows, int64_t width, torch::Dtype dtype)
{
  return torch::from_blob(buffer.data(), {rows, width}, torch::TensorOptions().dtype(torch::kFloat64))
      .to(dtype, /*non_blocking=*/false, /*copy=*/true);
}

Tensor or_zeros(const Tensor &grad, const Tensor &like)
{
  return grad.defined() ? grad : torch::zeros_like(like);
}

}    // namespace

void PairMaskpot::compute_exchange()
{
  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  const int width = model->state_width;
  const int layers = model->layers;
  const bool energy_centric = model->energy_centric;
  const torch::Dtype dtype = model->dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;

  // edges i <- j: every local atom i and its neighbours j (local or ghost) closer than the cutoff
  const double cutsq_model = model->cutoff * model->cutoff;
  std::vector<int64_t> src, dst;
  std::vector<double> vec;
  src.reserve(static_cast<size_t>(nlocal) * 48);
  dst.reserve(static_cast<size_t>(nlocal) * 48);
  vec.reserve(static_cast<size_t>(nlocal) * 144);
  for (int ii = 0; ii < list->inum; ++ii) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
      src.push_back(i);
      dst.push_back(j);
      vec.insert(vec.end(), {dx, dy, dz});
    }
  }
  const int64_t nedges = static_cast<int64_t>(src.size());
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  Tensor edge_index = torch::empty({2, nedges}, i64);
  std::copy(src.begin(), src.end(), edge_index.data_ptr<int64_t>());
  std::copy(dst.begin(), dst.end(), edge_index.data_ptr<int64_t>() + nedges);
  Tensor edge_vec = torch::from_blob(vec.data(), {nedges, 3}, torch::TensorOptions().dtype(torch::kFloat64)).clone();
  Tensor numbers = torch::empty({nall}, i64);
  int64_t *z = numbers.data_ptr<int64_t>();
  for (int a = 0; a < nall; ++a) z[a] = type_to_z[type[a]];
  comm_rows.assign(static_cast<size_t>(nall) * width, 0.0);

  // A rank without atoms still takes part in every exchange (its neighbours wait for it) with zero rows.
  Tensor node_energy, node_vector, repulsion;
  std::vector<Tensor> node_in(layers), node_out(layers), edge_out(layers), edge_in(layers);
  Tensor feat, feat_leaf, node_last, edge_last;
  try {
    auto &module = model->module;
    edge_vec.requires_grad_(energy_centric);
    feat = module.run_method("edge_features", edge_vec).toTensor();
    feat_leaf = feat.detach().requires_grad_(energy_centric);
    auto start = module.run_method("initial_state", numbers, feat_leaf).toTuple();
    Tensor node = start->elements().at(0).toTensor();
    Tensor edge = start->elements().at(1).toTensor();
    for (int k = 0; k < layers; ++k) {
      // layer 0's states hold species only; later ones are leaves whose gradients we exchange
      node_in[k] = k == 0 ? node.detach() : node.detach().requires_grad_(energy_centric);
      // edge states stay on the rank; layer 0's stays attached to the edge features it came from
      edge_in[k] = k == 0 ? edge : edge.detach().requires_grad_(energy_centric && edge.numel() > 0);
      auto out = module.run_method("layer_step", static_cast<int64_t>(k), node_in[k], edge_in[k], feat_leaf,
                                   edge_index, static_cast<int64_t>(nlocal)).toTuple();
      node_out[k] = out->elements().at(0).toTensor();
      edge_out[k] = out->elements().at(1).toTensor();
      edge = edge_out[k];
      if (k + 1 < layers) {
        if (nlocal > 0) to_rows(node_out[k], comm_rows);
        comm->forward_comm(this);
        node = from_rows(comm_rows, nall, width, dtype);
      }
    }
    node_last = node_out[layers - 1].detach().requires_grad_(energy_centric);
    edge_last = edge_out[layers - 1].detach().requires_grad_(energy_centric && edge_out[layers - 1].numel() > 0);
    auto out = module.run_method("readout", node_last, edge_last, feat_leaf, edge_index,
                                 numbers.narrow(0, 0, nlocal)).toTuple();
    node_energy = out->elements().at(0).toTensor().contiguous();
    node_vector = out->elements().at(1).toTensor().contiguous();
    if (model->repulsion && energy_centric)
      repulsion = module.run_method("repulsion_energy", edge_vec, edge_index, numbers, static_cast<int64_t>(nlocal))
                      .toTensor();
  } catch (const c10::Error &e) {
    error->one(FLERR, "maskpot model {} failed on {} atoms ({} local): {}", model->path, nall, nlocal,
               first_line(e.what_without_backtrace()));
  }

  const double s = energy_scale;
  // the energies include the repulsion; the backward below starts from the network's energy alone and adds the
  // repulsion's gradient at the end (its graph goes straight to the edge vectors)
  const Tensor tally = repulsion.defined() ? (node_energy + repulsion.detach()).contiguous() : node_energy;
  if (eflag_global && nlocal > 0) eng_vdwl += s * tally.sum().item<double>();
  if (eflag_atom)
    for (int i = 0; i < nlocal; ++i) eatom[i] += s * tally.data_ptr<double>()[i];

  if (!energy_centric) {    // direct forces on the local atoms, no virial
    const double *fv = node_vector.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i)
      for (int d = 0; d < 3; ++d) f[i][d] += s * fv[3 * i + d];
    return;
  }

  Tensor grad_vec;
  try {
    using torch::autograd::grad;
    const bool has_edge_state = edge_last.requires_grad();
    Tensor energy = node_energy.sum();
    std::vector<Tensor> wrt = {node_last, feat_leaf};
    if (has_edge_state) wrt.push_back(edge_last);
    auto g = nlocal > 0 ? grad({energy}, wrt, {}, false, false, true) : std::vector<Tensor>(wrt.size());
    Tensor g_node = or_zeros(g[0], node_last);
    Tensor g_feat = or_zeros(g[1], feat_leaf);
    Tensor g_edge = has_edge_state ? or_zeros(g[2], edge_last) : Tensor();
    for (int k = layers - 1; k >= 0; --k) {
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
      if (k == 0) break;
      // gradient w.r.t. the states of all atoms before layer k: ghost rows go home, summed into their owners
      const Tensor g_all = or_zeros(gk[1], node_in[k]);
      if (nlocal > 0)
        to_rows(g_all, comm_rows);
      else    // a rank without atoms sends zeros (its ghost rows still hold the last forward exchange)
        std::fill(comm_rows.begin(), comm_rows.end(), 0.0);
      comm->reverse_comm(this);
      g_node = from_rows(comm_rows, nlocal, width, dtype);
      if (has_edge_state) g_edge = or_zeros(gk[2], edge_in[k]);
    }
    std::vector<Tensor> outputs = {feat}, seeds = {g_feat};
    if (repulsion.defined() && repulsion.requires_grad()) {
      outputs.push_back(repulsion);
      seeds.push_back(torch::ones_like(repulsion));
    }
    if (nlocal > 0 && nedges > 0) grad_vec = grad(outputs, {edge_vec}, seeds, false, false, true)[0];
  } catch (const c10::Error &e) {
    error->one(FLERR, "maskpot model {}: backward pass failed on {} atoms ({} local): {}", model->path, nall, nlocal,
               first_line(e.what_without_backtrace()));
  }
  if (!grad_vec.defined()) return;
  grad_vec = grad_vec.to(torch::kFloat64).contiguous();

  // dE/dr_e for r_e = x_j - x_i: F_i += g_e, F_j -= g_e; virial sum r F = -sum_e r_e (x) g_e
  const double *ge = grad_vec.data_ptr<double>();
  double w[6] = {0.0, 0.0, 0.0, 0.0, 0.0, 0.0};
  for (int64_t e = 0; e < nedges; ++e) {
    const int i = static_cast<int>(src[e]), j = static_cast<int>(dst[e]);
    const double *g = ge + 3 * e, *r = vec.data() + 3 * e;
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
  const int width = model->state_width;
  for (int k = 0; k < n; ++k)
    std::memcpy(buf + static_cast<size_t>(k) * width, comm_rows.data() + static_cast<size_t>(list[k]) * width,
                sizeof(double) * width);
  return n * width;
}

void PairMaskpot::unpack_forward_comm(int n, int first, double *buf)
{
  const int width = model->state_width;
  std::memcpy(comm_rows.data() + static_cast<size_t>(first) * width, buf, sizeof(double) * n * width);
}

int PairMaskpot::pack_reverse_comm(int n, int first, double *buf)
{
  const int width = model->state_width;
  std::memcpy(buf, comm_rows.data() + static_cast<size_t>(first) * width, sizeof(double) * n * width);
  return n * width;
}

void PairMaskpot::unpack_reverse_comm(int n, int *list, double *buf)
{
  const int width = model->state_width;
  for (int k = 0; k < n; ++k) {
    double *row = comm_rows.data() + static_cast<size_t>(list[k]) * width;
    const double *in = buf + static_cast<size_t>(k) * width;
    for (int c = 0; c < width; ++c) row[c] += in[c];
  }
}
