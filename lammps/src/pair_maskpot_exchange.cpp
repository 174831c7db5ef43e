/* pair_style maskpot ghosts exchange: the model runs one message-passing layer at a time and the node states of
   ghost atoms are communicated between layers (see pair_maskpot.h and maskpot.models.potential).

   The graph's nodes are the local atoms and the ghosts some edge reads (graph_nodes): a ghost no edge reads
   (most of the shell of cutoff + skin, and every periodic image of the rank's own atoms, see build_edges) gets no
   state, so layers compute nothing for it.
   Forward, for layers k = 0..L-1: node states of the graph's atoms -> layer_step -> new states of the local
   atoms -> forward communication copies them into the ghost rows of the owners' images -> next layer.
   Layer 0's states depend on species only, so every rank makes them for its ghosts itself. node_outputs turns
   the last states of the local atoms into their energies, the model's priors (short-range repulsion) included:
   they read the edge vectors, so their gradient joins the one of the edge vectors from the edge features.
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

// (rows, width) states in their own dtype -> rows of `buffer`, `slots` doubles per row (the bytes copied as
// they are, rows padded to whole doubles): row r to buffer row at[r], or to row r without `at`. With `at`, the
// buffer rows from at's first ghost on that no state goes to are zeroed (a reverse communication sends them).
void to_rows(const Tensor &t, std::vector<double> &buffer, int slots, const std::vector<int> *at = nullptr)
{
  const Tensor d = t.detach().to(torch::kCPU).contiguous();
  const auto rows = static_cast<size_t>(d.size(0)), row_bytes = static_cast<size_t>(d.size(1) * d.element_size());
  if (rows * slots > buffer.size() || row_bytes > sizeof(double) * slots ||
      (at && (at->size() != rows || (rows > 0 && static_cast<size_t>(at->back() + 1) * slots > buffer.size()))))
    throw std::runtime_error("node states larger than the exchange buffer");
  const auto *from = static_cast<const char *>(d.data_ptr());
  auto *to = reinterpret_cast<char *>(buffer.data());
  const size_t row_stride = sizeof(double) * slots;
  if (!at) {
    for (size_t r = 0; r < rows; ++r) std::memcpy(to + r * row_stride, from + r * row_bytes, row_bytes);
    return;
  }
  // the graph's rows are the local atoms (0, 1, ...) and then ghosts in increasing order: zero the ghost rows
  // past the local ones, then write every row where it goes
  size_t nlocal = 0;
  while (nlocal < rows && (*at)[nlocal] == static_cast<int>(nlocal)) ++nlocal;
  std::fill(buffer.begin() + static_cast<std::ptrdiff_t>(nlocal * slots), buffer.end(), 0.0);
  for (size_t r = 0; r < rows; ++r)
    std::memcpy(to + static_cast<size_t>((*at)[r]) * row_stride, from + r * row_bytes, row_bytes);
}

// The first `rows` rows of `buffer` (see to_rows) as a (rows, width) tensor of `dtype` on `device`, or with
// `pick` ((n,) int64 row numbers) those rows
Tensor from_rows(std::vector<double> &buffer, int64_t rows, int64_t width, int slots, torch::Dtype dtype,
                 torch::Device device, const Tensor &pick = {})
{
  const int64_t stride = static_cast<int64_t>(sizeof(double)) * slots / static_cast<int64_t>(c10::elementSize(dtype));
  const int64_t total = static_cast<int64_t>(buffer.size()) / slots;
  Tensor view = torch::from_blob(buffer.data(), {total, width}, {stride, 1}, torch::TensorOptions().dtype(dtype));
  if (pick.defined()) return view.index_select(0, pick).to(device);    // index_select copies
  return view.narrow(0, 0, rows).to(device, dtype, /*non_blocking=*/false, /*copy=*/true).contiguous();
}

// The graph's atoms: the local ones (0..nlocal-1), then each ghost some edge reads, in increasing order;
// `node` gets each edge's far end as a row of the graph.
std::vector<int> graph_nodes(int nlocal, int nall, const std::vector<int64_t> &edge_dst, std::vector<int64_t> &node)
{
  std::vector<int> row_of(static_cast<size_t>(nall), -1), atoms(static_cast<size_t>(nlocal));
  for (int i = 0; i < nlocal; ++i) row_of[i] = atoms[i] = i;
  for (const int64_t j : edge_dst)
    if (j >= nlocal) row_of[j] = 0;    // read; numbered below
  for (int a = nlocal; a < nall; ++a)
    if (row_of[a] == 0) {
      row_of[a] = static_cast<int>(atoms.size());
      atoms.push_back(a);
    }
  node.resize(edge_dst.size());
  for (size_t e = 0; e < edge_dst.size(); ++e) node[e] = row_of[edge_dst[e]];
  return atoms;
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
  // every row read is written first (local rows by to_rows, ghost rows by the forward communication, rows a
  // reverse communication sends by to_rows), so the buffer keeps its contents between steps
  comm_rows.resize(static_cast<size_t>(nall) * comm_slots);
  std::vector<int64_t> edge_node;    // each edge's far end as a row of the graph
  const std::vector<int> graph_atoms = graph_nodes(nlocal, nall, edge_dst, edge_node);
  const auto ngraph = static_cast<int64_t>(graph_atoms.size());
  std::vector<int> graph_types(graph_atoms.size());
  for (size_t r = 0; r < graph_atoms.size(); ++r) graph_types[r] = atom->type[graph_atoms[r]];
  lap("graph");

  // A rank without atoms still takes part in every exchange (its neighbours wait for it) with zero rows.
  Tensor edge_index, pick, vec, numbers, feat, feat_leaf, node, edge, node_last, edge_last, node_energy, node_vector;
  Tensor atom_energy, grad_vec, grad_vec_priors;
  std::vector<Tensor> node_in(layers), node_out(layers), edge_out(layers), edge_in(layers);
  guarded(failure, [&] {
    edge_index = edge_index_of(edge_src, edge_node).to(device);
    pick = torch::tensor(std::vector<int64_t>(graph_atoms.begin(), graph_atoms.end()), torch::kInt64);
    vec = torch::from_blob(edge_vec.data(), {nedges, 3}, f64).clone().to(device).requires_grad_(energy_centric);
    numbers = atomic_numbers_of(graph_types.data(), static_cast<int>(ngraph), type_to_z).to(device);
    feat = tensor_of(module.run_method("edge_features", vec), "edge_features");
    expect(feat, "edge_features", {nedges, -1}, dtype);
    feat_leaf = feat.detach().requires_grad_(energy_centric);
    auto start = tensors_of(module.run_method("initial_state", numbers, feat_leaf), 2, "initial_state");
    expect(start[0], "initial_state's node states", {ngraph, width}, dtype);
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
    guarded(failure, [&] { node = from_rows(comm_rows, ngraph, width, comm_slots, dtype, device, pick); });
    lap("exchange_forward");
  }
  guarded(failure, [&] {
    node_last = node_out[layers - 1].detach().requires_grad_(energy_centric);
    edge_last = edge_out[layers - 1].detach().requires_grad_(energy_centric && edge_out[layers - 1].numel() > 0);
    auto out = tensors_of(module.run_method("node_outputs", node_last, edge_last, feat_leaf, edge_index, numbers, vec),
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
    Tensor g_node, g_feat, g_edge;    // g_feat: summed over the layers, undefined while no layer gave one
    auto add_feat = [&](const Tensor &g) {
      if (g.defined()) g_feat = g_feat.defined() ? g_feat + g : g;
    };
    guarded(failure, [&] {
      has_edge_state = edge_last.requires_grad();
      std::vector<Tensor> wrt = {node_last, feat_leaf, vec};
      if (has_edge_state) wrt.push_back(edge_last);
      auto g = nlocal > 0 ? grad({node_energy.sum()}, wrt, {}, false, false, true) : std::vector<Tensor>(wrt.size());
      g_node = or_zeros(g[0], node_last);
      add_feat(g[1]);
      grad_vec_priors = g[2];
      if (has_edge_state) g_edge = or_zeros(g[3], edge_last);
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
        add_feat(gk[0]);
        if (k == 0) return;
        // gradient w.r.t. the states of the graph's atoms before layer k: ghost rows go home, summed into their
        // owners
        if (nlocal > 0)
          to_rows(or_zeros(gk[1], node_in[k]), comm_rows, comm_slots, &graph_atoms);
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
      grad_vec = g_feat.defined() ? grad({feat}, {vec}, {g_feat}, false, false, true)[0] : Tensor();
      if (grad_vec_priors.defined()) grad_vec = grad_vec.defined() ? grad_vec + grad_vec_priors : grad_vec_priors;
      grad_vec = or_zeros(grad_vec, vec);
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
