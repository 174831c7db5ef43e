/* The loaded maskpot TorchScript module and its metadata, shared by pair_maskpot.cpp and
   pair_maskpot_exchange.cpp (the only files that include libtorch). */

#ifndef MASKPOT_MODEL_H
#define MASKPOT_MODEL_H

#include <torch/script.h>

#include <cstdint>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct MaskpotModel {
  torch::jit::Module module;
  std::string path;
  double cutoff = 0.0;             // Angstrom: graph edges are pairs closer than this
  double receptive_field = 0.0;    // Angstrom: layers x cutoff, the ghost halo the energy depends on
  int layers = 1;                  // message-passing steps: receptive_field / cutoff
  std::vector<int64_t> species;    // atomic numbers the model knows
  bool energy_centric = true;
  std::string dtype;
  bool layerwise = false;          // has edge_features / initial_state / layer_step / readout (ghosts exchange)
  int state_width = 0;             // values per atom exchanged between layers
  bool repulsion = false;          // has repulsion_energy (short-range repulsion; ghosts exchange adds it)
};

// c10::Error messages carry a C++ backtrace; LAMMPS error lines should be one line.
inline std::string first_line(const char *what)
{
  std::string s(what);
  auto end = s.find('\n');
  return end == std::string::npos ? s : s.substr(0, end);
}

}    // namespace LAMMPS_NS

#endif
