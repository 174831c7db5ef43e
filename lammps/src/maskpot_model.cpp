/* Reading a maskpot model file for pair_style maskpot: a TorchScript export or an AOTInductor package (.pt2), and
   the metadata the pair style needs (maskpot_model.h). */

#include "maskpot_model.h"

#include <dlfcn.h>

#include <cmath>
#include <fstream>

namespace LAMMPS_NS {

namespace {

[[noreturn]] void model_failure(const std::string &path, const std::string &what)
{
  throw std::runtime_error("maskpot model file " + path + ": " + what);
}

bool is_package_path(const std::string &path)
{
  return path.size() > 4 && path.compare(path.size() - 4, 4, ".pt2") == 0;
}

// A TorchScript export: the module and its metadata attributes.
void read_torchscript(MaskpotModel &m)
{
  auto fail = [&](const std::string &what) { model_failure(m.path, what); };
  try {
    m.module = torch::jit::load(m.path, torch::kCPU);
  } catch (const std::exception &e) {
    fail("cannot be loaded: " + one_line(e));
  }
  m.module.eval();
  auto &mod = m.module;
  auto attr = [&](const char *name, bool (c10::IValue::*is)() const, const char *kind) {
    if (!mod.hasattr(name)) fail(std::string("no '") + name + "' attribute: not a maskpot TorchScript export");
    c10::IValue value = mod.attr(name);
    if (!(value.*is)()) fail(std::string("attribute '") + name + "' is not " + kind);
    return value;
  };
  const std::string target = attr("target", &c10::IValue::isString, "a string").toStringRef();
  if (target != "lammps") fail("model exported for " + target + ": re-export with --target lammps");
  m.cutoff = attr("cutoff", &c10::IValue::isDouble, "a float").toDouble();
  m.species = attr("species", &c10::IValue::isIntList, "a list of ints").toIntVector();
  if (!mod.hasattr("species_symbols") || !mod.hasattr("species_masses"))
    fail("no species_symbols and species_masses attributes: re-export the model with this maskpot version");
  for (const auto &symbol : attr("species_symbols", &c10::IValue::isList, "a list").toListRef()) {
    if (!symbol.isString()) fail("attribute 'species_symbols' is not a list of strings");
    m.symbols.push_back(symbol.toStringRef());
  }
  m.masses = attr("species_masses", &c10::IValue::isDoubleList, "a list of floats").toDoubleVector();
  m.energy_centric = attr("energy_centric", &c10::IValue::isBool, "a bool").toBool();
  m.dtype = attr("dtype", &c10::IValue::isString, "a string").toStringRef();
  // forward(self, positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial): files exported
  // before edge_shift existed take one argument less and would fail on the first step with a cryptic message
  const auto forward = mod.find_method("forward");
  const auto nargs = forward ? forward->function().getSchema().arguments().size() : 0;
  if (nargs != 7)
    fail("its forward takes " + std::to_string(nargs > 0 ? nargs - 1 : 0) + " arguments, this pair style passes 6 " +
         "(positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial): re-export the model with " +
         "this maskpot version");
  // exports of this interface version also run one layer at a time (ghosts exchange); older files lack
  // node_outputs, or have the one without the edge vectors (6 arguments: node, edge, feat, edge_index,
  // atomic_numbers, edge_vec)
  m.layerwise = mod.hasattr("state_width") && mod.hasattr("n_layers");
  for (const char *method : {"edge_features", "initial_state", "layer_step", "node_outputs"})
    m.layerwise = m.layerwise && mod.find_method(method).has_value();
  if (m.layerwise)
    m.layerwise = mod.find_method("node_outputs")->function().getSchema().arguments().size() == 7;
  if (m.layerwise) {
    m.layers = static_cast<int>(attr("n_layers", &c10::IValue::isInt, "an int").toInt());
    m.state_width = static_cast<int>(attr("state_width", &c10::IValue::isInt, "an int").toInt());
    if (m.layers < 1 || m.state_width < 1)
      fail("n_layers " + std::to_string(m.layers) + " and state_width " + std::to_string(m.state_width) +
           " must be >= 1");
  }
}

// An AOTInductor package (.pt2): the compiled model and the maskpot.* strings of its AOTInductor metadata
// (maskpot.export.aoti.c_metadata).
void read_package(MaskpotModel &m)
{
  auto fail = [&](const std::string &what) { model_failure(m.path, what); };
  // The package's compiled library needs libtorch.so (inductor links every model against it), which the plugin
  // does not link (in the CUDA wheel it pulls in libtorch_cuda and the CUDA runtime, slowing every lmp start).
  // Loaded here, found through the plugin's RUNPATH (torch/lib), it satisfies that dependency by its soname.
  if (!dlopen("libtorch.so", RTLD_NOW | RTLD_GLOBAL))
    fail(std::string("cannot load libtorch.so, which AOTInductor packages need: ") + dlerror());
  try {
    m.package = std::make_unique<torch::inductor::AOTIModelPackageLoader>(m.path);
  } catch (const std::exception &e) {
    fail("cannot be loaded as an AOTInductor package: " + one_line(e));
  }
  const auto meta = m.package->get_metadata();
  auto get = [&](const std::string &key) {
    const auto it = meta.find("maskpot." + key);
    if (it == meta.end()) fail("no maskpot." + key + " in its metadata: not a maskpot AOTInductor package");
    return it->second;
  };
  if (get("target") != "lammps") fail("model exported for " + get("target") + ": re-export with --target lammps");
  try {
    m.cutoff = std::stod(get("cutoff"));
  } catch (const std::exception &) {
    fail("maskpot.cutoff '" + get("cutoff") + "' is not a number");
  }
  std::istringstream species(get("species"));
  for (int64_t z; species >> z;) m.species.push_back(z);
  if (!species.eof() || m.species.empty())
    fail("maskpot.species '" + get("species") + "' is not a list of atomic numbers");
  std::istringstream symbols(get("species_symbols")), masses(get("species_masses"));
  for (std::string symbol; symbols >> symbol;) m.symbols.push_back(symbol);
  for (double mass; masses >> mass;) m.masses.push_back(mass);
  if (!masses.eof()) fail("maskpot.species_masses '" + get("species_masses") + "' is not a list of numbers");
  m.energy_centric = get("energy_centric") == "1";
  m.dtype = get("dtype");
}

// The model file and its metadata; throws std::runtime_error with the message of the ERROR line.
}    // namespace

std::unique_ptr<MaskpotModel> load_model(const std::string &path)
{
  auto m = std::make_unique<MaskpotModel>();
  m->path = path;
  if (!std::ifstream(path).good()) model_failure(path, "does not exist or cannot be read");
  if (is_package_path(path))
    read_package(*m);
  else
    read_torchscript(*m);
  if (m->symbols.size() != m->species.size() || m->masses.size() != m->species.size())
    model_failure(path, "its species (" + std::to_string(m->species.size()) + "), species_symbols (" +
                            std::to_string(m->symbols.size()) + ") and species_masses (" +
                            std::to_string(m->masses.size()) + ") differ in length");
  if (!(m->cutoff > 0.0 && std::isfinite(m->cutoff)))
    model_failure(path, "invalid cutoff " + std::to_string(m->cutoff));
  if (m->dtype != "float32" && m->dtype != "float64")
    model_failure(path, "dtype " + m->dtype + " is not float32 or float64");
  m->state_dtype = m->dtype == "float64" ? torch::kFloat64 : torch::kFloat32;
  return m;
}

}    // namespace LAMMPS_NS
