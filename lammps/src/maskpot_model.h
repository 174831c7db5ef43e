/* The loaded maskpot model (a TorchScript module, or an AOTInductor .pt2 package; read by maskpot_model.cpp) and
   the checks on what goes in and out of it, shared by the pair style's files (the only ones that include libtorch). */

#ifndef MASKPOT_MODEL_H
#define MASKPOT_MODEL_H

#include <torch/csrc/inductor/aoti_package/model_package_loader.h>
#include <torch/script.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct MaskpotModel {
  torch::jit::Module module;       // a TorchScript export, unless package is set
  // an AOTInductor package (maskpot export --format aoti, a .pt2 file): the compiled forward of the fold path only,
  // without the layer-wise methods, so it runs on one MPI rank
  std::unique_ptr<torch::inductor::AOTIModelPackageLoader> package;
  std::string path;
  double cutoff = 0.0;             // Angstrom: graph edges are pairs closer than this
  std::vector<int64_t> species;    // atomic numbers the model knows
  std::vector<std::string> symbols;    // their chemical symbols and standard masses (g/mol), written by the
  std::vector<double> masses;          // exporter from ASE's table
  bool energy_centric = true;
  std::string dtype;               // float32 or float64: the dtype of the node states
  torch::Dtype state_dtype = torch::kFloat32;
  bool layerwise = false;          // has edge_features / initial_state / layer_step / node_outputs (ghosts exchange)
  int layers = 0;                  // layerwise: message-passing steps (n_layers)
  int state_width = 0;             // layerwise: values per atom exchanged between layers
};

// The model file at ``path`` and its metadata (maskpot_model.cpp); throws std::runtime_error with the message of
// the ERROR line ("maskpot model file PATH: ...").
std::unique_ptr<MaskpotModel> load_model(const std::string &path);

// One line of an exception: c10::Error without its C++ backtrace; for an error raised inside TorchScript (whose
// message is "The following operation failed in the TorchScript interpreter." and a TorchScript traceback) the
// last line, which holds the error itself.
inline std::string one_line(const std::exception &e)
{
  const auto *c10 = dynamic_cast<const c10::Error *>(&e);
  std::string s = c10 ? c10->what_without_backtrace() : e.what();
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  const bool interpreter = s.rfind("The following operation failed in the TorchScript interpreter", 0) == 0;
  const auto cut = interpreter ? s.rfind('\n') : s.find('\n');
  if (cut == std::string::npos) return s;
  return interpreter ? s.substr(cut + 1) : s.substr(0, cut);
}

// Runs f unless `failure` is set; any exception it throws (c10::Error, TorchScript interpreter errors,
// std::exception, anything else) becomes `failure`, one line. f must not call LAMMPS' error->...: the caller
// reports `failure` once every rank has got as far (PairMaskpot::raise_failure).
template <class F> void guarded(std::string &failure, F &&f)
{
  if (!failure.empty()) return;
  try {
    f();
  } catch (const std::exception &e) {
    failure = one_line(e);
    if (failure.empty()) failure = "an exception without a message";
  } catch (...) {
    failure = "an exception that is not a std::exception";
  }
}

// The n tensors of a method's tuple output; throws naming the method otherwise.
inline std::vector<torch::Tensor> tensors_of(const c10::IValue &out, size_t n, const char *method)
{
  std::vector<torch::Tensor> tensors;
  if (out.isTuple())
    for (const auto &item : out.toTupleRef().elements())
      tensors.push_back(item.isTensor() ? item.toTensor() : torch::Tensor());
  if (tensors.size() != n || std::any_of(tensors.begin(), tensors.end(), [](auto &t) { return !t.defined(); }))
    throw std::runtime_error(std::string(method) + " did not return a tuple of " + std::to_string(n) + " tensors");
  return tensors;
}

inline torch::Tensor tensor_of(const c10::IValue &out, const char *method)
{
  if (!out.isTensor()) throw std::runtime_error(std::string(method) + " did not return a tensor");
  return out.toTensor();
}

// The fold path's forward (positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial) ->
// (energy, node_energy, forces, virial) of a TorchScript export or a package (which takes n_local = all atoms and
// always computes the virial: maskpot.export.aoti.PackagedGraph).
inline std::vector<torch::Tensor> run_forward(MaskpotModel &m, const torch::Tensor &positions,
                                              const torch::Tensor &numbers, const torch::Tensor &edge_index,
                                              const torch::Tensor &edge_shift, int64_t n_local, bool virial)
{
  if (!m.package)
    return tensors_of(m.module.forward({positions, numbers, edge_index, edge_shift, n_local, virial}), 4, "forward");
  auto out = m.package->run({positions, numbers, edge_index, edge_shift});
  if (out.size() != 4)
    throw std::runtime_error("the package returned " + std::to_string(out.size()) + " tensors, not 4");
  return out;
}

// Throws unless t has exactly this shape (-1: any size) and dtype: the plugin copies from outputs by their
// expected sizes, so this check stands before every copy.
inline void expect(const torch::Tensor &t, const std::string &name, std::vector<int64_t> shape, torch::Dtype dtype)
{
  bool ok = t.defined() && t.dim() == static_cast<int64_t>(shape.size()) && t.scalar_type() == dtype;
  for (size_t d = 0; ok && d < shape.size(); ++d) ok = shape[d] < 0 || t.size(static_cast<int64_t>(d)) == shape[d];
  if (ok) return;
  std::ostringstream msg;
  msg << name << ": expected shape [";
  for (size_t d = 0; d < shape.size(); ++d) msg << (d ? ", " : "") << (shape[d] < 0 ? "*" : std::to_string(shape[d]));
  msg << "] " << c10::toString(dtype) << ", got ";
  if (t.defined())
    msg << t.sizes() << " " << c10::toString(t.scalar_type());
  else
    msg << "an undefined tensor";
  throw std::runtime_error(msg.str());
}

// Index of the first non-finite value of a float64 tensor, or -1.
inline int64_t first_nonfinite(const torch::Tensor &t)
{
  const double *v = t.data_ptr<double>();
  for (int64_t k = 0; k < t.numel(); ++k)
    if (!std::isfinite(v[k])) return k;
  return -1;
}

// (2, E) int64 edge_index from the edges' two ends
inline torch::Tensor edge_index_of(std::vector<int64_t> &src, std::vector<int64_t> &dst)
{
  const auto n = static_cast<int64_t>(src.size());
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  return torch::stack({torch::from_blob(src.data(), {n}, i64), torch::from_blob(dst.data(), {n}, i64)});
}

// (n,) int64 atomic numbers of the first n atoms
inline torch::Tensor atomic_numbers_of(const int *type, int n, const std::vector<long> &type_to_z)
{
  torch::Tensor numbers = torch::empty({n}, torch::TensorOptions().dtype(torch::kInt64));
  int64_t *z = numbers.data_ptr<int64_t>();
  for (int a = 0; a < n; ++a) z[a] = type_to_z[type[a]];
  return numbers;
}

// The torch device of PairMaskpot::device_index (-1: the CPU, else that CUDA device)
inline torch::Device device_of(int index)
{
  return index < 0 ? torch::Device(torch::kCPU) : torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

}    // namespace LAMMPS_NS

#endif
