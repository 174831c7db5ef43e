/* pair_style maskpot: a maskpot TorchScript potential (exported with --target lammps) as a LAMMPS pair style.

   Units: the model works in Angstrom and eV. `units metal` is native; `units real` converts energies, forces
   and the virial from eV to kcal/mol (positions are Angstrom in both); other unit styles are refused.

   Two ways to hand the periodic/parallel structure to the network (pair_style maskpot ghosts auto|fold|halo;
   auto = fold on one MPI rank, halo on several):
   - fold (one rank, as pair_nequip / pair_mace's no_domain_decomposition): the graph holds the local atoms
     only; an edge to a ghost atom goes to the ghost's owner (the local atom with the same ID) and carries the shift
     x_ghost - x_owner. The network runs on N atoms, forces live on local atoms only (newton on or off), the
     ghost cutoff stays cutoff + skin.
   - halo (several ranks, as pair_allegro / pair_mace): every rank sends its local atoms AND the ghost atoms
     within the model's receptive field (layers x cutoff) to the network, with a graph over all of them (edge
     shifts zero); the network returns the energy of the local atoms and its gradient with respect to every
     node, so forces land on local and ghost atoms and LAMMPS' reverse communication (newton_pair on) adds the
     ghost forces to their owners.
   In both, the virial comes from the module (edge-based, exact with shifts). The torch part lives behind a
   pointer so that only pair_maskpot.cpp includes the libtorch headers.
*/

#ifndef MASKPOT_PAIR_MASKPOT_H
#define MASKPOT_PAIR_MASKPOT_H

#include "pair.h"

#include <memory>
#include <string>
#include <vector>

namespace LAMMPS_NS {

struct MaskpotModel;    // the loaded TorchScript module and its metadata (pair_maskpot.cpp)

class PairMaskpot : public Pair {
 public:
  PairMaskpot(class LAMMPS *);
  ~PairMaskpot() override;

  void compute(int, int) override;
  void settings(int, char **) override;
  void coeff(int, char **) override;
  void init_style() override;
  double init_one(int, int) override;

 protected:
  std::unique_ptr<MaskpotModel> model;
  std::vector<long> type_to_z;    // atomic number for each LAMMPS type (index 0 unused)
  double energy_scale = 1.0;      // eV -> LAMMPS energy unit
  enum class GhostMode { AUTO, FOLD, HALO };
  GhostMode ghost_mode = GhostMode::AUTO;    // pair_style maskpot ghosts auto|fold|halo
  bool folded = false;                       // this run: graph of local atoms, ghosts folded onto owners
  std::vector<int> owner_of_tag;             // folded: local index of each atom ID

  void allocate();
};

}    // namespace LAMMPS_NS

#endif
