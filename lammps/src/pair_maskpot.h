/* pair_style maskpot: a maskpot TorchScript potential (exported with --target lammps) as a LAMMPS pair style.

   Units: the model works in Angstrom and eV. `units metal` is native; `units real` converts energies, forces
   and the virial from eV to kcal/mol (positions are Angstrom in both); other unit styles are refused.

   pair_style maskpot [ghosts auto|fold|exchange] [check_masses yes|no] [device cpu|cuda|auto]
   Both ways of handling ghost atoms take their edges i <- j from LAMMPS' full neighbour list of the local atoms
   (build_edges: every pair closer than the model's cutoff), so the ghost cutoff stays cutoff + skin:
   - fold (auto on one MPI rank; as pair_nequip / pair_mace's no_domain_decomposition): every ghost is a periodic
     image of a local atom; the graph holds the local atoms only, an edge to a ghost goes to its owner with the
     image's shift (x_ghost - x_owner), and the module's forward returns energies, forces on the local atoms
     (newton on or off) and the virial.
   - exchange (auto on several ranks; as pair_allegro / MACE's ML-IAP path): the model runs one message-passing
     layer at a time (pair_maskpot_exchange.cpp). Between layers the node states of ghost atoms are copied from
     their owners (forward communication); in the backward pass their gradients are summed back into their
     owners (reverse communication), layer by layer. Edges to periodic images of the rank's own atoms go to
     those atoms, as in fold (build_edges), so only ghosts of other ranks' atoms are read, and only the
     ghosts some edge reads get a row in the graph. Needs the layer-wise interface of the export.
   In both, the edges between local atoms go to the model in pairs (build_edges: edge 2k + 1 the reverse of 2k),
   edges to other ranks' ghosts after them, so that the fused PaiNN kernel computes one filter per pair.
   Every call into the model is guarded: an exception, or an output of the wrong shape, dtype or with a
   non-finite value, is held until every rank has finished the step and then reported as one ERROR line
   (raise_failure). check_masses (default yes) refuses a type whose mass is not its element's.
   device (default cpu): where the model runs; cuda gives each MPI rank one GPU of its node (node-local rank
   modulo the GPUs visible), auto takes cuda where every rank sees a GPU, else the CPU. Inputs go to the device,
   outputs come back to the CPU (choose_device in pair_maskpot.cpp).
   With MASKPOT_TIMING=1 in the environment each rank prints, when the pair style is destroyed, the wall
   seconds its compute calls spent in each phase ("maskpot timing rank R calls N edges E paired P: phase seconds
   ..."; E and P: the last step's edges and how many of them lie in pairs; an exchange phase includes the wait for
   the other ranks), which benchmarks/rank_scaling.py reads.
   The torch part lives behind a pointer so that only the .cpp files include the libtorch headers.
*/

#ifndef MASKPOT_PAIR_MASKPOT_H
#define MASKPOT_PAIR_MASKPOT_H

#include "pair.h"

#include <cstdint>
#include <memory>
#include <map>
#include <string>
#include <unordered_map>
#include <vector>

namespace LAMMPS_NS {

struct MaskpotModel;    // the loaded TorchScript module and its metadata (maskpot_model.h)

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
  double unit_factor = 1.0;       // eV -> the deck's energy unit (1 for metal, kcal/mol per eV for real)
  enum class GhostMode { AUTO, FOLD, EXCHANGE };
  GhostMode ghost_mode = GhostMode::AUTO;    // pair_style maskpot ghosts auto|fold|exchange
  bool check_masses = true;                  // pair_style maskpot check_masses yes|no
  enum class DeviceChoice { CPU, CUDA, AUTO };
  DeviceChoice device_choice = DeviceChoice::CPU;    // pair_style maskpot device cpu|cuda|auto
  int device_index = -1;                     // the device this rank runs the model on: -1 the CPU, else cuda:index
  bool exchange = false;                     // this run: one layer at a time, ghost states communicated
  // exchange: one row per atom of the node states (or their gradients) communicated per layer, in the model's
  // dtype, each row padded to comm_slots doubles (LAMMPS' buffers count doubles): float32 states travel as
  // 4-byte values, half the bytes of float64 and no conversion
  std::vector<double> comm_rows;
  int comm_slots = 0;
  std::vector<int64_t> edge_src, edge_dst;   // this step's edges i <- j (atom indices; i local)
  std::vector<double> edge_vec;              // ghosts exchange: their vectors x_j - x_i (Angstrom), 3 per edge
  std::vector<double> edge_shift;            // ghosts fold: their shifts x_ghost - x_owner (Angstrom), 3 per edge
  // build_edges' edges to other ranks' ghosts before they join the pairs; members (as the edges are), so that no
  // step allocates (and page-faults) them anew
  std::vector<int64_t> single_src, single_dst;
  std::vector<double> single_vec;
  std::unordered_map<tagint, int> local_of_tag;    // the local atom of each ID (build_edges)
  std::vector<int> owner_of_ghost;                // build_edges: each ghost's local atom, looked up once
  std::string failure;                       // what went wrong in the model on this rank this step
  std::map<std::string, double> phase_seconds;    // MASKPOT_TIMING: wall seconds per phase of compute
  double lap_start = 0.0;
  int64_t compute_calls = 0;
  int64_t paired_edges = 0;                  // of this step's edges, how many lie in pairs (build_edges)

  void lap(const char *phase);    // adds the time since the last lap (or compute's start) to phase

  void allocate();
  void choose_device();
  void build_edges(bool shifts);
  void compute_fold();
  void compute_exchange();    // pair_maskpot_exchange.cpp
  void raise_failure();
};

}    // namespace LAMMPS_NS

#endif
