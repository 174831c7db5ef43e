/* pair_style maskpot: a maskpot TorchScript potential (exported with --target lammps) as a LAMMPS pair style.

   Units: the model works in Angstrom and eV. `units metal` is native; `units real` converts energies, forces
   and the virial from eV to kcal/mol (positions are Angstrom in both); other unit styles are refused.

   The graph (built in compute) has one node per atom ID: local atoms, and on several ranks the other ranks'
   atoms in the halo; a ghost that is a periodic image of an atom already in the graph is that node, and an edge
   to it carries the image's shift (x_ghost - x_node), so a box smaller than the cutoff works and each atom passes
   through the network once however many images the halo holds. The graph grows breadth-first from the local
   atoms, and only nodes within layers - 1 hops get incoming edges (their features reach a local energy); nodes L
   hops away enter with their species only; farther ones are left out. Exact, and the network's work per rank is
   its local atoms plus a shell of (layers - 1) x cutoff.
   pair_style maskpot ghosts auto|fold|halo|exchange (auto = fold on one MPI rank; on several, exchange when the
   model has the layer-wise interface, halo for older exports):
   - fold (one rank, as pair_nequip / pair_mace's no_domain_decomposition): every ghost is an image of a local
     atom; the ghost cutoff stays cutoff + skin and forces live on local atoms only (newton on or off).
   - halo (several ranks, as pair_allegro / pair_mace): the ghost cutoff is raised to the receptive field
     (layers x cutoff) + skin and ghost neighbour lists are requested; the network returns the energy of the local
     atoms and its gradient with respect to every node, so forces land on local and ghost atoms and LAMMPS'
     reverse communication (newton_pair on) adds the ghost forces to their owners.
   - exchange (several ranks, as pair_allegro / MACE's ML-IAP path): the model runs one message-passing layer
     at a time (pair_maskpot_exchange.cpp). Local atoms receive messages from neighbours within the cutoff;
     between layers the node states of ghost atoms are copied from their owners (forward communication), and
     in the backward pass their gradients are summed back into their owners (reverse communication), layer by
     layer. So the ghost cutoff stays cutoff + skin and each rank's network works on its local atoms only.
   In fold and halo, the virial comes from the module (edge-based, exact with shifts). The torch part lives behind a
   pointer so that only pair_maskpot.cpp includes the libtorch headers.
*/

#ifndef MASKPOT_PAIR_MASKPOT_H
#define MASKPOT_PAIR_MASKPOT_H

#include "pair.h"

#include <memory>
#include <string>
#include <unordered_set>
#include <cstdint>
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
  int pack_forward_comm(int, int *, double *, int, int *) override;
  void unpack_forward_comm(int, int, double *) override;
  int pack_reverse_comm(int, int, double *) override;
  void unpack_reverse_comm(int, int *, double *) override;

 protected:
  std::unique_ptr<MaskpotModel> model;
  std::vector<long> type_to_z;    // atomic number for each LAMMPS type (index 0 unused)
  double energy_scale = 1.0;      // eV -> LAMMPS energy unit
  enum class GhostMode { AUTO, FOLD, HALO, EXCHANGE };
  GhostMode ghost_mode = GhostMode::AUTO;    // pair_style maskpot ghosts auto|fold|halo|exchange
  bool folded = false;                       // this run: graph of local atoms, ghosts folded onto owners
  bool exchange = false;                     // this run: one layer at a time, ghost states communicated
  std::vector<double> comm_rows;             // exchange: (atoms, state_width) values communicated per layer
  std::vector<int> node_of_tag;              // graph node of each atom ID (see compute)
  std::vector<int> first_image, next_image;  // ghost images of each other-rank atom ID, chained
  std::vector<int> node_atom;                // the atom (local, or one ghost image) each node takes x from
  std::vector<int> node_hops;                // graph distance of each node from the local atoms
  std::unordered_set<uint64_t> edge_seen;    // halo: edges already taken from another image of the same atom

  void allocate();
  void compute_exchange();    // pair_maskpot_exchange.cpp
};

}    // namespace LAMMPS_NS

#endif
