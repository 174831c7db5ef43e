/* pair_style maskpot: see pair_maskpot.h for the scheme. Settings, elements and devices, the edges, and the
   one-rank path (ghosts folded onto their owners); the model file is read by maskpot_model.cpp. */

#include "pair_maskpot.h"

#include "atom.h"
#include "comm.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include "maskpot_model.h"

#include <torch/cuda.h>

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <utility>

using namespace LAMMPS_NS;

extern "C" int maskpot_allocator_enable();    // caching_allocator.cpp

namespace {

// eV -> kcal/mol for `units real`: must equal maskpot.data.units.EV_TO_KCAL_PER_MOL (ASE's CODATA 2014 value,
// 1 / (ase.units.kcal / ase.units.mol)); tests/lammps compares `units real` against it at 1e-10.
constexpr double EV_TO_KCAL_PER_MOL = 23.060548012069496;
constexpr double MASS_TOLERANCE = 0.05;    // check_masses: relative difference from the element's mass

// liblammps.so exports a reference (unoptimised) dgemm_. When lmp loads it before libtorch, every call that
// libtorch makes to dgemm_ binds to it, and float64 models run several times slower (benchmarks/results).
// Returns {library whose dgemm_ is in use, libtorch_cpu's path} when that is not torch's own, else {"", ""}.
std::pair<std::string, std::string> shadowing_blas()
{
  void *used = dlsym(RTLD_DEFAULT, "dgemm_");
  void *torch_lib = dlopen("libtorch_cpu.so", RTLD_LAZY | RTLD_NOLOAD);
  void *own = torch_lib ? dlsym(torch_lib, "dgemm_") : nullptr;
  if (torch_lib) dlclose(torch_lib);
  Dl_info used_info, own_info;
  if (!used || !own || used == own || !dladdr(used, &used_info) || !dladdr(own, &own_info) ||
      !used_info.dli_fname || !own_info.dli_fname)
    return {"", ""};
  return {used_info.dli_fname, own_info.dli_fname};
}

}    // namespace

/* ---------------------------------------------------------------------- */

PairMaskpot::PairMaskpot(LAMMPS *lmp) : Pair(lmp)
{
  single_enable = 0;
  restartinfo = 0;
  one_coeff = 1;
  manybody_flag = 1;
  no_virial_fdotr_compute = 1;    // the module returns the virial itself
  centroidstressflag = CENTROID_NOTAVAIL;
  maskpot_allocator_enable();    // large tensors cached across steps: src/caching_allocator.cpp
}

PairMaskpot::~PairMaskpot()
{
  const char *timing = std::getenv("MASKPOT_TIMING");
  if (timing && std::strcmp(timing, "0") != 0 && compute_calls > 0) {
    std::string line = fmt::format("maskpot timing rank {} calls {} edges {} paired {}:", comm->me, compute_calls,
                                   edge_src.size(), paired_edges);
    for (const auto &[phase, seconds] : phase_seconds) line += fmt::format(" {} {:.4f}", phase, seconds);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
  }
}

void PairMaskpot::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

/* ----------------------------------------------------------------------
   pair_style maskpot [ghosts auto|fold|exchange] [check_masses yes|no] [device cpu|cuda|auto]; the model file
   goes in pair_coeff
------------------------------------------------------------------------- */

void PairMaskpot::settings(int narg, char **arg)
{
  ghost_mode = GhostMode::AUTO;
  check_masses = true;
  device_choice = DeviceChoice::CPU;
  for (int k = 0; k < narg; k += 2) {
    const std::string key = arg[k], value = k + 1 < narg ? arg[k + 1] : "";
    if (key == "ghosts" && (value == "auto" || value == "fold" || value == "exchange"))
      ghost_mode = value == "auto" ? GhostMode::AUTO : value == "fold" ? GhostMode::FOLD : GhostMode::EXCHANGE;
    else if (key == "ghosts")
      error->all(FLERR, "pair_style maskpot ghosts must be auto, fold or exchange, not '{}'", value);
    else if (key == "check_masses" && (value == "yes" || value == "no"))
      check_masses = value == "yes";
    else if (key == "check_masses")
      error->all(FLERR, "pair_style maskpot check_masses must be yes or no, not '{}'", value);
    else if (key == "device" && (value == "cpu" || value == "cuda" || value == "auto"))
      device_choice = value == "cpu" ? DeviceChoice::CPU : value == "cuda" ? DeviceChoice::CUDA : DeviceChoice::AUTO;
    else if (key == "device")
      error->all(FLERR, "pair_style maskpot device must be cpu, cuda or auto, not '{}'", value);
    else
      error->all(FLERR, "pair_style maskpot takes 'ghosts auto|fold|exchange', 'check_masses yes|no' and "
                 "'device cpu|cuda|auto' (got '{}'): the model file goes in pair_coeff", key);
  }
  choose_device();
}

// device_index for device_choice. The plugin links libtorch_cpu only (a CPU run never pays for the CUDA
// libraries), so cuda and auto first load the wheel's libtorch_cuda.so (found through the plugin's RUNPATH,
// torch/lib), which registers torch's CUDA backend; a CPU build of torch has none. One GPU per rank: the
// node-local rank (MPI_COMM_TYPE_SHARED) modulo the GPUs the rank sees.
void PairMaskpot::choose_device()
{
  device_index = -1;
  if (device_choice == DeviceChoice::CPU) return;
  std::string why_not;
  int gpus = 0;
  if (!dlopen("libtorch_cuda.so", RTLD_NOW | RTLD_GLOBAL)) {
    why_not = "this torch has no CUDA support (no libtorch_cuda.so: a CPU build)";
  } else {
    try {
      gpus = static_cast<int>(torch::cuda::device_count());
    } catch (const std::exception &e) {
      why_not = one_line(e);
    }
    if (gpus == 0 && why_not.empty()) why_not = "torch sees no CUDA GPU";
  }
  int fewest = gpus;
  MPI_Allreduce(&gpus, &fewest, 1, MPI_INT, MPI_MIN, world);
  if (fewest == 0 && device_choice == DeviceChoice::CUDA) {
    int first_without = gpus == 0 ? comm->me : comm->nprocs, lowest = comm->nprocs;
    MPI_Allreduce(&first_without, &lowest, 1, MPI_INT, MPI_MIN, world);
    // rank 0 writes the ERROR line: its own reason, or where it has a GPU, the rank that has none
    error->all(FLERR, "pair_style maskpot device cuda: {}; use device cpu or auto",
               gpus == 0 ? why_not + (comm->nprocs > 1 ? " (MPI rank 0)" : "")
                         : fmt::format("MPI rank {} sees no CUDA GPU", lowest));
  }
  if (fewest == 0) {
    if (comm->me == 0) utils::logmesg(lmp, "maskpot: device auto: {}, running on the CPU\n", why_not);
    return;
  }
  MPI_Comm node;
  int local_rank = 0;
  MPI_Comm_split_type(world, MPI_COMM_TYPE_SHARED, comm->me, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
  device_index = local_rank % gpus;
  if (comm->me == 0)
    utils::logmesg(lmp, "maskpot: device cuda, one GPU per rank (node-local rank modulo {} GPUs; rank 0 on "
                   "cuda:{})\n", gpus, device_index);
}

/* ----------------------------------------------------------------------
   pair_coeff * * model-lammps.pt El1 El2 ... (one element per LAMMPS type)
------------------------------------------------------------------------- */

void PairMaskpot::coeff(int narg, char **arg)
{
  const int ntypes = atom->ntypes;
  if (narg != 3 + ntypes)
    error->all(FLERR, "pair_coeff for maskpot: expected '* * model.pt' and {} element names (one per atom type), "
               "got {} arguments", ntypes, narg);
  if (strcmp(arg[0], "*") != 0 || strcmp(arg[1], "*") != 0)
    error->all(FLERR, "pair_coeff for maskpot must start with '* *'");
  if (!allocated) allocate();

  std::unique_ptr<MaskpotModel> m;
  std::string problem;
  try {
    m = load_model(arg[2]);
  } catch (const std::exception &e) {
    problem = one_line(e);
  } catch (...) {
    problem = std::string("maskpot model file ") + arg[2] + ": cannot be loaded";
  }
  if (!problem.empty()) error->all(FLERR, "{}", problem);
  if (device_index >= 0 && m->package)
    error->all(FLERR, "pair_style maskpot: model {} is an AOTInductor package (.pt2), compiled for the CPU: use "
               "device cpu, or export with --format torchscript for a GPU", m->path);
  if (device_index >= 0) m->module.to(device_of(device_index));

  std::string known;
  for (const auto &symbol : m->symbols) known += (known.empty() ? "" : " ") + symbol;
  type_to_z.assign(ntypes + 1, 0);
  for (int itype = 1; itype <= ntypes; ++itype) {
    const std::string symbol = arg[2 + itype];
    if (symbol == "NULL")
      error->all(FLERR, "pair_coeff for maskpot: NULL (pair_style hybrid) is not supported; name an element "
                 "for atom type {}", itype);
    const auto k = std::find(m->symbols.begin(), m->symbols.end(), symbol) - m->symbols.begin();
    if (k == static_cast<long>(m->symbols.size()))
      error->all(FLERR, "pair_coeff for maskpot: element {} (atom type {}) is not in the species of model {} ({})",
                 symbol, itype, m->path, known);
    type_to_z[itype] = m->species[k];
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;

  if (comm->me == 0)
    utils::logmesg(lmp, "maskpot: model {} (species {}, cutoff {} A, dtype {}, {}, {})\n", m->path, known, m->cutoff,
                   m->dtype, m->package ? std::string("AOTInductor package, one MPI rank")
                   : m->layerwise ? std::to_string(m->layers) + " layers" : "no layer-wise interface",
                   m->energy_centric ? "forces = -dE/dx" : "direct forces: energy is NOT conserved");
  const auto shadow = shadowing_blas();
  if (!shadow.first.empty() && comm->me == 0)
    error->warning(FLERR, "maskpot: dgemm_ of {} shadows libtorch's, so the model's float64 matrix products run "
                   "on an unoptimised BLAS (several times slower); start lmp with LD_PRELOAD={} (maskpot md does)",
                   shadow.first, shadow.second);
  model = std::move(m);
}

/* ---------------------------------------------------------------------- */

void PairMaskpot::init_style()
{
  if (!model) error->all(FLERR, "pair_style maskpot: no model loaded (use pair_coeff * * model.pt ...)");
  if (atom->tag_enable == 0) error->all(FLERR, "pair_style maskpot requires atom IDs");
  if (comm->mode != Comm::SINGLE)
    error->all(FLERR, "pair_style maskpot requires comm_modify mode single (one ghost cutoff)");

  const std::string units = update->unit_style;
  if (units == "metal")
    unit_factor = 1.0;
  else if (units == "real")
    unit_factor = EV_TO_KCAL_PER_MOL;
  else
    error->all(FLERR, "pair_style maskpot supports units metal and real, not units {}", units);

  // masses are per type (atom->mass) unless the atom style has per-atom masses, which are not checked
  for (int itype = 1; check_masses && atom->mass && itype <= atom->ntypes; ++itype) {
    const auto k = std::find(model->species.begin(), model->species.end(), type_to_z[itype]) - model->species.begin();
    const double mass = model->masses[k];
    if (atom->mass_setflag[itype] && std::fabs(atom->mass[itype] - mass) > MASS_TOLERANCE * mass)
      error->all(FLERR, "pair_coeff for maskpot: atom type {} has mass {:.6g} but is mapped to {} (mass {:.6g}): "
                 "fix the order of the elements in pair_coeff, or use pair_style maskpot check_masses no", itype,
                 atom->mass[itype], model->symbols[k], mass);
  }

  if (ghost_mode == GhostMode::FOLD && comm->nprocs > 1)
    error->all(FLERR, "pair_style maskpot ghosts fold needs one MPI rank (running on {})", comm->nprocs);
  exchange = ghost_mode == GhostMode::EXCHANGE || (ghost_mode == GhostMode::AUTO && comm->nprocs > 1);
  if (exchange && model->package)
    error->all(FLERR, "pair_style maskpot: model {} is an AOTInductor package (.pt2), which runs on one MPI rank "
               "(ghosts fold) only{}: export with --format torchscript for several ranks", model->path,
               comm->nprocs > 1 ? fmt::format(", not {}", comm->nprocs) : "");
  if (exchange && !model->layerwise)
    error->all(FLERR, "pair_style maskpot: model {} has no layer-wise interface of this version (node_outputs), "
               "which {}: re-export it with `maskpot export CHECKPOINT --target lammps` (one rank still runs it)",
               model->path, comm->nprocs > 1 ? "several MPI ranks need" : "ghosts exchange needs");
  // exchange: forces land on ghost atoms and reach their owners by LAMMPS' reverse communication of pair
  // forces, which needs newton on; fold puts every force on a local atom
  if (exchange && force->newton_pair == 0)
    error->all(FLERR, "pair_style maskpot requires newton pair on with several MPI ranks (ghosts exchange); only "
               "one rank (ghosts fold) runs with newton off");
  const int state_bytes = model->state_dtype == torch::kFloat64 ? 8 : 4;
  comm_slots = exchange ? (model->state_width * state_bytes + 7) / 8 : 0;
  comm_forward = comm_reverse = comm_slots;
  neighbor->add_request(this, NeighConst::REQ_FULL);
  if (comm->me == 0 && exchange)
    utils::logmesg(lmp, "maskpot: {} rank(s), node states of ghost atoms exchanged between the {} layers "
                   "({} values per atom)\n", comm->nprocs, model->layers, model->state_width);
  else if (comm->me == 0)
    utils::logmesg(lmp, "maskpot: one rank, ghost atoms folded onto their owners (graph of local atoms only)\n");
}

double PairMaskpot::init_one(int, int)
{
  return model->cutoff;
}

/* ---------------------------------------------------------------------- */

void PairMaskpot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "pair_style maskpot does not compute per-atom virials (compute stress/atom)");
  lap_start = MPI_Wtime();
  ++compute_calls;
  build_edges(!exchange);
  lap("edges");
  if (exchange)
    compute_exchange();
  else
    compute_fold();
  lap("forces");
}

void PairMaskpot::lap(const char *phase)
{
  const double now = MPI_Wtime();
  phase_seconds[phase] += now - lap_start;
  lap_start = now;
}

// This step's edges i <- j (edge_index (i, j): i receives j's message), in one pass over the full neighbour list
// of the local atoms (cutoff + skin): every local atom i and neighbour j (local or ghost) closer than the model's
// cutoff, vector x_j - x_i (kept in edge_vec without `shifts`).
// - A ghost that is a periodic image of a local atom is replaced by that atom: an image's state is its owner's, so
//   the graph needs no row for it (and rows stored apart from their neighbours cost time). With `shifts` (one rank:
//   every ghost is such an image, else an error) edge_shift holds x_ghost - x_owner per edge, so that the model's
//   vectors x_owner - x_i + shift are the edges'; without (several ranks) a ghost of another rank's atom keeps its
//   row and its edges come after the pairs, one by one (their ghosts receive nothing).
// - Edges between local atoms are laid out in pairs, edge 2k + 1 the reverse of edge 2k (i and j swapped, vector
//   and shift negated), so that maskpot::painn_message computes one filter per pair (half its work; for other
//   kernels the order is free). The full list holds each such pair from both ends: the end with the lower index
//   keeps it, an atom's edges to its own images keep the image with the lexicographically positive vector; the
//   pair is then in the graph when that end's distance test passed, one test per pair, so a pair at the cutoff
//   cannot be in one direction only.
void PairMaskpot::build_edges(bool shifts)
{
  double **x = atom->x;
  const int nlocal = atom->nlocal;
  const tagint *tag = atom->tag;
  const double cutsq_model = model->cutoff * model->cutoff;
  local_of_tag.clear();
  for (int i = 0; i < nlocal; ++i) local_of_tag.emplace(tag[i], i);
  // each ghost's owner looked up once (a ghost is read by many edges): NOT_LOOKED_UP, NO_OWNER or the local atom
  constexpr int NOT_LOOKED_UP = -2, NO_OWNER = -1;
  owner_of_ghost.assign(atom->nghost, NOT_LOOKED_UP);
  auto owner_of = [&](int j) {
    if (j < nlocal) return j;
    int &owner = owner_of_ghost[j - nlocal];
    if (owner == NOT_LOOKED_UP) {
      const auto found = local_of_tag.find(tag[j]);
      owner = found == local_of_tag.end() ? NO_OWNER : found->second;
    }
    return owner;
  };
  auto positive = [](double dx, double dy, double dz) {
    return dx > 0 || (dx == 0 && (dy > 0 || (dy == 0 && dz > 0)));
  };
  for (auto *v : {&edge_src, &edge_dst, &single_src, &single_dst}) v->clear();
  edge_vec.clear();
  edge_shift.clear();
  single_vec.clear();
  for (int ii = 0; ii < list->inum; ++ii) {
    const int i = list->ilist[ii];
    const int *jlist = list->firstneigh[i];
    for (int jj = 0; jj < list->numneigh[i]; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
      const int o = owner_of(j);
      if (o == NO_OWNER) {
        if (shifts) error->one(FLERR, "maskpot: ghost atom {} has no local owner", tag[j]);
        single_src.push_back(i);
        single_dst.push_back(j);
        single_vec.insert(single_vec.end(), {dx, dy, dz});
        continue;
      }
      if (i > o || (i == o && !positive(dx, dy, dz))) continue;
      edge_src.insert(edge_src.end(), {i, o});
      edge_dst.insert(edge_dst.end(), {o, i});
      if (shifts) {    // fold: the model forms the vectors from positions and shifts
        const double sx = x[j][0] - x[o][0], sy = x[j][1] - x[o][1], sz = x[j][2] - x[o][2];
        edge_shift.insert(edge_shift.end(), {sx, sy, sz, -sx, -sy, -sz});
      } else {
        edge_vec.insert(edge_vec.end(), {dx, dy, dz, -dx, -dy, -dz});
      }
    }
  }
  paired_edges = static_cast<int64_t>(edge_src.size());
  edge_src.insert(edge_src.end(), single_src.begin(), single_src.end());
  edge_dst.insert(edge_dst.end(), single_dst.begin(), single_dst.end());
  edge_vec.insert(edge_vec.end(), single_vec.begin(), single_vec.end());
}

// Any rank's failure this step becomes one ERROR line (from the lowest failing rank); collective.
void PairMaskpot::raise_failure()
{
  int mine = failure.empty() ? comm->nprocs : comm->me, first = comm->nprocs;
  MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, world);
  if (first == comm->nprocs) return;
  std::string message;
  if (comm->me == first)
    message = fmt::format("maskpot model {} failed at step {}{} ({} local atoms, {} ghosts): {}", model->path,
                          update->ntimestep, comm->nprocs > 1 ? fmt::format(" on MPI rank {}", first) : "",
                          atom->nlocal, atom->nghost, failure);
  int length = static_cast<int>(message.size());
  MPI_Bcast(&length, 1, MPI_INT, first, world);
  message.resize(length);
  MPI_Bcast(&message[0], length, MPI_CHAR, first, world);
  failure.clear();
  error->all(FLERR, "{}", message);
}

// One rank: the graph of the local atoms, every ghost folded onto its owner (one forward call).
void PairMaskpot::compute_fold()
{
  const int nlocal = atom->nlocal;
  if (nlocal == 0) return;
  double **x = atom->x;
  const tagint *tag = atom->tag;
  const auto nedges = static_cast<int64_t>(edge_src.size());

  torch::Tensor energy, node_energy, forces, virial_t;
  guarded(failure, [&] {
    const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
    const auto device = device_of(device_index);
    auto out = run_forward(*model, torch::from_blob(&x[0][0], {nlocal, 3}, f64).clone().to(device),
                           atomic_numbers_of(atom->type, nlocal, type_to_z).to(device),
                           edge_index_of(edge_src, edge_dst).to(device),
                           torch::from_blob(edge_shift.data(), {nedges, 3}, f64).to(device), nlocal, vflag_global != 0);
    for (auto &t : out) t = t.to(torch::kCPU);
    expect(out[0], "forward's energy", {}, torch::kFloat64);
    expect(out[1], "forward's node_energy", {nlocal}, torch::kFloat64);
    expect(out[2], "forward's forces", {nlocal, 3}, torch::kFloat64);
    expect(out[3], "forward's virial", {6}, torch::kFloat64);
    energy = out[0];
    node_energy = out[1].contiguous();
    forces = out[2].contiguous();
    virial_t = out[3].contiguous();
    for (auto [t, what, per_atom] : {std::make_tuple(node_energy, "energy", 1), std::make_tuple(forces, "force", 3)})
      if (const int64_t k = first_nonfinite(t); k >= 0)
        throw std::runtime_error(std::string("non-finite ") + what + " of atom ID " +
                                 std::to_string(tag[k / per_atom]));
    if (first_nonfinite(virial_t) >= 0 || !std::isfinite(energy.item<double>()))
      throw std::runtime_error("non-finite energy or virial");
  });
  lap("model");
  raise_failure();

  const double s = unit_factor;
  double **f = atom->f;
  const double *fptr = forces.data_ptr<double>();
  for (int i = 0; i < nlocal; ++i)
    for (int d = 0; d < 3; ++d) f[i][d] += s * fptr[3 * i + d];
  if (eflag_global) eng_vdwl += s * energy.item<double>();
  if (eflag_atom) {
    const double *eptr = node_energy.data_ptr<double>();
    for (int i = 0; i < nlocal; ++i) eatom[i] += s * eptr[i];
  }
  if (vflag_global) {
    const double *vptr = virial_t.data_ptr<double>();
    for (int k = 0; k < 6; ++k) virial[k] += s * vptr[k];
  }
}
