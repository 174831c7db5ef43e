/* pair_style maskpot: see pair_maskpot.h for the scheme. The only translation unit that includes libtorch. */

#include "pair_maskpot.h"

#include "atom.h"
#include "comm.h"
#include "domain.h"
#include "error.h"
#include "force.h"
#include "memory.h"
#include "neigh_list.h"
#include "neighbor.h"
#include "update.h"

#include "maskpot_model.h"

#include <dlfcn.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <utility>

using namespace LAMMPS_NS;

namespace {

// eV -> kcal/mol for `units real`: must equal maskpot.data.units.EV_TO_KCAL_PER_MOL (ASE's CODATA 2014 value,
// 1 / (ase.units.kcal / ase.units.mol)); tests/lammps compares `units real` against it at 1e-10.
constexpr double EV_TO_KCAL_PER_MOL = 23.060548012069496;

// Element symbols by atomic number; pair_coeff names elements, the model takes atomic numbers.
const char *const ELEMENTS[] = {
    "X",  "H",  "He", "Li", "Be", "B",  "C",  "N",  "O",  "F",  "Ne", "Na", "Mg", "Al", "Si", "P",
    "S",  "Cl", "Ar", "K",  "Ca", "Sc", "Ti", "V",  "Cr", "Mn", "Fe", "Co", "Ni", "Cu", "Zn", "Ga",
    "Ge", "As", "Se", "Br", "Kr", "Rb", "Sr", "Y",  "Zr", "Nb", "Mo", "Tc", "Ru", "Rh", "Pd", "Ag",
    "Cd", "In", "Sn", "Sb", "Te", "I",  "Xe", "Cs", "Ba", "La", "Ce", "Pr", "Nd", "Pm", "Sm", "Eu",
    "Gd", "Tb", "Dy", "Ho", "Er", "Tm", "Yb", "Lu", "Hf", "Ta", "W",  "Re", "Os", "Ir", "Pt", "Au",
    "Hg", "Tl", "Pb", "Bi", "Po", "At", "Rn", "Fr", "Ra", "Ac", "Th", "Pa", "U",  "Np", "Pu", "Am",
    "Cm", "Bk", "Cf", "Es", "Fm", "Md", "No", "Lr", "Rf", "Db", "Sg", "Bh", "Hs", "Mt", "Ds", "Rg",
    "Cn", "Nh", "Fl", "Mc", "Lv", "Ts", "Og"};
constexpr int N_ELEMENTS = sizeof(ELEMENTS) / sizeof(ELEMENTS[0]);

int atomic_number(const std::string &symbol)
{
  for (int z = 1; z < N_ELEMENTS; ++z)
    if (symbol == ELEMENTS[z]) return z;
  return 0;
}

// liblammps.so exports a reference (unoptimised) dgemm_. When lmp loads it before libtorch, every call that
// libtorch makes to dgemm_ binds to it, and float64 models run 2-4x slower (measured: benchmarks/speed.py).
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
  ghostneigh = 1;                  // the graph needs the neighbours of ghost atoms too
  no_virial_fdotr_compute = 1;     // the module returns the virial itself
  centroidstressflag = CENTROID_NOTAVAIL;
}

PairMaskpot::~PairMaskpot()
{
  if (allocated) {
    memory->destroy(setflag);
    memory->destroy(cutsq);
    memory->destroy(cutghost);
  }
}

void PairMaskpot::allocate()
{
  allocated = 1;
  const int n = atom->ntypes + 1;
  memory->create(setflag, n, n, "pair:setflag");
  memory->create(cutsq, n, n, "pair:cutsq");
  memory->create(cutghost, n, n, "pair:cutghost");
  for (int i = 0; i < n; ++i)
    for (int j = 0; j < n; ++j) setflag[i][j] = 0;
}

/* ---------------------------------------------------------------------- */

void PairMaskpot::settings(int narg, char **arg)
{
  // pair_style maskpot [ghosts auto|fold|halo|exchange]; the model file goes in pair_coeff
  ghost_mode = GhostMode::AUTO;
  if (narg == 0) return;
  if (narg != 2 || strcmp(arg[0], "ghosts") != 0)
    error->all(FLERR, "pair_style maskpot takes no arguments or 'ghosts auto|fold|halo|exchange' (got '{}'): the "
               "model file goes in pair_coeff", arg[0]);
  const std::string mode = arg[1];
  if (mode == "auto")
    ghost_mode = GhostMode::AUTO;
  else if (mode == "fold")
    ghost_mode = GhostMode::FOLD;
  else if (mode == "halo")
    ghost_mode = GhostMode::HALO;
  else if (mode == "exchange")
    ghost_mode = GhostMode::EXCHANGE;
  else
    error->all(FLERR, "pair_style maskpot ghosts must be auto, fold, halo or exchange, not '{}'", mode);
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

  auto m = std::make_unique<MaskpotModel>();
  m->path = arg[2];
  if (!std::ifstream(m->path).good())
    error->all(FLERR, "maskpot model file {} does not exist or cannot be read", m->path);
  try {
    m->module = torch::jit::load(m->path, torch::kCPU);
  } catch (const c10::Error &e) {
    error->all(FLERR, "cannot load maskpot model file {}: {}", m->path, first_line(e.what_without_backtrace()));
  }
  m->module.eval();

  for (const char *name : {"target", "cutoff", "receptive_field", "species", "energy_centric", "dtype"})
    if (!m->module.hasattr(name))
      error->all(FLERR, "maskpot model file {} has no '{}' attribute: not a maskpot TorchScript export", m->path,
                 name);
  try {
    const std::string target = m->module.attr("target").toStringRef();
    if (target != "lammps")
      error->all(FLERR, "maskpot model file {}: model exported for {}: re-export with --target lammps", m->path,
                 target);
    m->cutoff = m->module.attr("cutoff").toDouble();
    m->receptive_field = m->module.attr("receptive_field").toDouble();
    m->species = m->module.attr("species").toIntVector();
    m->energy_centric = m->module.attr("energy_centric").toBool();
    m->dtype = m->module.attr("dtype").toStringRef();
  } catch (const c10::Error &e) {
    error->all(FLERR, "maskpot model file {} has malformed metadata attributes: {}", m->path,
               first_line(e.what_without_backtrace()));
  }
  // forward(self, positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial): files exported
  // before edge_shift existed take one argument less and would fail on the first step with a cryptic message
  const auto nargs = m->module.get_method("forward").function().getSchema().arguments().size();
  if (nargs != 7)
    error->all(FLERR, "maskpot model file {}: its forward takes {} arguments, this pair style passes 6 "
               "(positions, atomic_numbers, edge_index, edge_shift, n_local, compute_virial): re-export the model "
               "with this maskpot version", m->path, nargs - 1);
  if (!(m->cutoff > 0.0) || m->receptive_field < m->cutoff)
    error->all(FLERR, "maskpot model file {}: invalid cutoff {} / receptive_field {}", m->path, m->cutoff,
               m->receptive_field);
  m->layers = static_cast<int>(std::lround(m->receptive_field / m->cutoff));
  // exports since the layer-wise interface also run one layer at a time (ghosts exchange)
  m->layerwise = m->module.hasattr("state_width") && m->module.hasattr("n_layers");
  for (const char *method : {"edge_features", "initial_state", "layer_step", "readout"})
    m->layerwise = m->layerwise && m->module.find_method(method).has_value();
  m->repulsion = m->layerwise && m->module.find_method("repulsion_energy").has_value();
  if (m->layerwise) {
    m->state_width = static_cast<int>(m->module.attr("state_width").toInt());
    if (m->module.attr("n_layers").toInt() != m->layers || m->state_width < 1)
      error->all(FLERR, "maskpot model file {}: n_layers {} / state_width {} do not match its receptive field "
                 "{} A / cutoff {} A", m->path, m->module.attr("n_layers").toInt(), m->state_width,
                 m->receptive_field, m->cutoff);
  }

  std::string known;
  for (auto z : m->species) known += std::string(known.empty() ? "" : " ") + ELEMENTS[z < N_ELEMENTS ? z : 0];

  type_to_z.assign(ntypes + 1, 0);
  for (int itype = 1; itype <= ntypes; ++itype) {
    const std::string symbol = arg[2 + itype];
    if (symbol == "NULL")
      error->all(FLERR, "pair_coeff for maskpot: NULL (pair_style hybrid) is not supported; name an element "
                 "for atom type {}", itype);
    const int z = atomic_number(symbol);
    if (z == 0) error->all(FLERR, "pair_coeff for maskpot: unknown element '{}' for atom type {}", symbol, itype);
    if (std::find(m->species.begin(), m->species.end(), z) == m->species.end())
      error->all(FLERR, "pair_coeff for maskpot: element {} (atom type {}) is not in the species of model {} ({})",
                 symbol, itype, m->path, known);
    type_to_z[itype] = z;
  }
  for (int i = 1; i <= ntypes; ++i)
    for (int j = i; j <= ntypes; ++j) setflag[i][j] = 1;

  if (comm->me == 0)
    utils::logmesg(lmp, "maskpot: model {} (species {}, cutoff {} A, receptive field {} A, dtype {}, {})\n",
                   m->path, known, m->cutoff, m->receptive_field, m->dtype,
                   m->energy_centric ? "forces = -dE/dx" : "direct forces: energy is NOT conserved");
  const auto shadow = shadowing_blas();
  if (!shadow.first.empty() && comm->me == 0)
    error->warning(FLERR, "maskpot: dgemm_ of {} shadows libtorch's, so the model's float64 matrix products run "
                   "on an unoptimised BLAS (2-4x slower); start lmp with LD_PRELOAD={} (maskpot md does)",
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
    energy_scale = 1.0;
  else if (units == "real")
    energy_scale = EV_TO_KCAL_PER_MOL;
  else
    error->all(FLERR, "pair_style maskpot supports units metal and real, not units {}", units);

  if (ghost_mode == GhostMode::FOLD && comm->nprocs > 1)
    error->all(FLERR, "pair_style maskpot ghosts fold needs one MPI rank (running on {})", comm->nprocs);
  if (ghost_mode == GhostMode::EXCHANGE && !model->layerwise)
    error->all(FLERR, "pair_style maskpot ghosts exchange: model {} has no layer-wise interface; re-export it "
               "with this maskpot version (or use ghosts halo)", model->path);
  folded = ghost_mode == GhostMode::FOLD || (ghost_mode == GhostMode::AUTO && comm->nprocs == 1);
  exchange = ghost_mode == GhostMode::EXCHANGE ||
             (ghost_mode == GhostMode::AUTO && comm->nprocs > 1 && model->layerwise);
  comm_forward = comm_reverse = exchange ? model->state_width : 0;

  if (exchange) {
    // One layer at a time: local atoms receive messages from neighbours within the cutoff, ghost atoms get
    // their node states from their owners between layers (forward communication) and return their gradients
    // in the backward pass (reverse communication). So the default ghost cutoff (cutoff + skin) is enough.
    // Forces on ghosts reach their owners by LAMMPS' reverse communication, done for pair forces with newton on.
    if (force->newton_pair == 0)
      error->all(FLERR, "pair_style maskpot ghosts exchange requires newton pair on (forces land on ghost atoms)");
    ghostneigh = 0;
    neighbor->add_request(this, NeighConst::REQ_FULL);
    if (comm->me == 0)
      utils::logmesg(lmp, "maskpot: {} rank(s), node states of ghost atoms exchanged between the {} layers "
                     "({} values per atom)\n", comm->nprocs, model->layers, model->state_width);
    return;
  }

  if (folded) {
    // One rank: every ghost is an image of a local atom. The graph holds the local atoms only; an edge to a
    // ghost goes to its owner with the image's shift. A full list of local atoms within cutoff + skin finds
    // every such pair, so the default ghost cutoff (cutoff + skin) is enough.
    ghostneigh = 0;
    neighbor->add_request(this, NeighConst::REQ_FULL);
    if (comm->me == 0)
      utils::logmesg(lmp, "maskpot: one rank, ghost atoms folded onto their owners (graph of local atoms only)\n");
    return;
  }

  // Several ranks: a full list over local AND ghost atoms, the graph spans the whole halo. Forces on ghosts
  // reach their owners through reverse communication, which LAMMPS does for pair forces only with newton on.
  if (force->newton_pair == 0)
    error->all(FLERR, "pair_style maskpot requires newton pair on with the ghost halo (several MPI ranks); "
               "only one rank (ghosts folded) runs with newton off");
  ghostneigh = 1;
  neighbor->add_request(this, NeighConst::REQ_FULL | NeighConst::REQ_GHOST);

  // The energy of a local atom depends on every atom within the receptive field (layers x cutoff), so the
  // ghost halo must reach that far, plus the skin because ghosts are refreshed only on re-neighbouring.
  // The neighbour lists themselves stay at cutoff + skin (init_one / cutghost).
  const double halo = model->receptive_field + neighbor->skin;
  if (comm->cutghostuser < halo) {
    comm->cutghostuser = halo;
    if (comm->me == 0)
      utils::logmesg(lmp, "maskpot: communication cutoff set to {:.6g} A (receptive field {:.6g} + skin {:.6g})\n",
                     halo, model->receptive_field, neighbor->skin);
  }
}

double PairMaskpot::init_one(int i, int j)
{
  cutghost[i][j] = cutghost[j][i] = model->cutoff;
  return model->cutoff;
}

/* ---------------------------------------------------------------------- */

void PairMaskpot::compute(int eflag, int vflag)
{
  ev_init(eflag, vflag);
  if (vflag_atom || cvflag_atom)
    error->all(FLERR, "pair_style maskpot does not compute per-atom virials (compute stress/atom)");
  if (exchange) {
    compute_exchange();
    return;
  }

  const int nlocal = atom->nlocal;
  const int nall = nlocal + atom->nghost;
  if (nlocal == 0) return;    // a rank whose domain holds no atoms contributes nothing

  double **x = atom->x;
  double **f = atom->f;
  const int *type = atom->type;

  // Graph nodes: one per atom ID. Local atoms are nodes 0..nlocal-1; a ghost that is an image of a local atom
  // (periodic wrap) IS that node; an other-rank atom (halo mode) is one node however many images of it the halo
  // holds. An edge i <- j (edge_index (i, j): i receives j's message; both directions are listed) carries the
  // shift (x_j - x_i) - (x_node(j) - x_node(i)), a lattice vector, so edge vectors stay geometric (self edges to
  // an image included).
  // The graph grows breadth-first from the local atoms: a local atom's energy after L message-passing layers
  // depends on the features of nodes up to L-1 hops away, which need their incoming edges, and on the species
  // of nodes L hops away, which need none. So only nodes within L-1 hops get edges and nodes beyond L hops are
  // left out: exact, and on several ranks most of the receptive-field halo (its outer shells and the periodic
  // images of the rank's own atoms) never reaches the network.
  const tagint *tag = atom->tag;
  const double cutsq_model = model->cutoff * model->cutoff;
  const int layers = model->layers;
  // node of each atom ID: a table of our own rather than atom->map, which atom_style atomic does not create
  // unless asked (atom_modify map), and which points at one image only
  tagint maxtag = 0;
  for (int i = 0; i < nall; ++i) maxtag = std::max(maxtag, tag[i]);
  node_of_tag.assign(static_cast<size_t>(maxtag) + 1, -1);
  first_image.assign(static_cast<size_t>(maxtag) + 1, -1);
  next_image.assign(nall, -1);
  node_atom.resize(nlocal);
  node_hops.assign(nlocal, 0);
  for (int i = 0; i < nlocal; ++i) {
    node_of_tag[tag[i]] = i;
    node_atom[i] = i;
  }
  for (int g = nlocal; g < nall; ++g) {    // other-rank atoms: their ghost images, chained per ID
    if (node_of_tag[tag[g]] >= 0) continue;
    if (folded) error->one(FLERR, "maskpot: ghost atom {} has no local owner on this rank", tag[g]);
    next_image[g] = first_image[tag[g]];
    first_image[tag[g]] = g;
  }

  // The halo holds several images of an other-rank atom and each may list the same neighbours: such edges are
  // kept once, keyed by (node i, node j, lattice shift in box vectors). A local atom lists each edge once.
  const double *h_inv = domain->h_inv;
  edge_seen.clear();
  std::vector<int64_t> src, dst;
  std::vector<double> shift;
  src.reserve(static_cast<size_t>(nlocal) * 48);
  dst.reserve(static_cast<size_t>(nlocal) * 48);
  shift.reserve(static_cast<size_t>(nlocal) * 144);
  auto add_edges = [&](const int ni, const int i) {    // edges into node ni from the neighbour list of atom i
    const int *jlist = list->firstneigh[i];
    const int jnum = list->numneigh[i];
    for (int jj = 0; jj < jnum; ++jj) {
      const int j = jlist[jj] & NEIGHMASK;
      const double dx = x[j][0] - x[i][0], dy = x[j][1] - x[i][1], dz = x[j][2] - x[i][2];
      if (dx * dx + dy * dy + dz * dz >= cutsq_model) continue;
      int nj = node_of_tag[tag[j]];
      if (nj < 0) {    // first reached: one hop further than ni
        nj = static_cast<int>(node_atom.size());
        node_of_tag[tag[j]] = nj;
        node_atom.push_back(j);
        node_hops.push_back(node_hops[ni] + 1);
      }
      const int ai = node_atom[ni], aj = node_atom[nj];
      const double sx = dx - (x[aj][0] - x[ai][0]), sy = dy - (x[aj][1] - x[ai][1]), sz = dz - (x[aj][2] - x[ai][2]);
      if (ni >= nlocal) {
        // lattice coordinates of the shift (h_inv is LAMMPS' upper-triangular inverse box, Voigt order)
        const long na = std::lround(h_inv[0] * sx + h_inv[5] * sy + h_inv[4] * sz);
        const long nb = std::lround(h_inv[1] * sy + h_inv[3] * sz);
        const long nc = std::lround(h_inv[2] * sz);
        if (std::max({std::labs(na), std::labs(nb), std::labs(nc)}) > 7)
          error->one(FLERR, "maskpot: an edge spans more than 7 box lengths (box far smaller than the cutoff)");
        const uint64_t cell = static_cast<uint64_t>(na + 8) << 8 | static_cast<uint64_t>(nb + 8) << 4 |
                              static_cast<uint64_t>(nc + 8);
        const uint64_t key = static_cast<uint64_t>(ni) << 38 | static_cast<uint64_t>(nj) << 12 | cell;
        if (!edge_seen.insert(key).second) continue;
      }
      src.push_back(ni);
      dst.push_back(nj);
      shift.push_back(sx);
      shift.push_back(sy);
      shift.push_back(sz);
    }
  };
  // breadth first: node_atom grows while it is walked; nodes are numbered in order of their hop count
  for (size_t k = 0; k < node_atom.size() && node_hops[k] < layers; ++k) {
    const int nk = static_cast<int>(k);
    if (nk < nlocal)
      add_edges(nk, nk);
    else
      for (int g = first_image[tag[node_atom[k]]]; g >= 0; g = next_image[g]) add_edges(nk, g);
  }
  const int nnodes = static_cast<int>(node_atom.size());
  if (static_cast<int64_t>(nnodes) >= (int64_t(1) << 26))
    error->one(FLERR, "maskpot: {} graph nodes on one rank: more than this pair style indexes (2^26)", nnodes);
  const int64_t nedges = static_cast<int64_t>(src.size());

  const auto f64 = torch::TensorOptions().dtype(torch::kFloat64);
  const auto i64 = torch::TensorOptions().dtype(torch::kInt64);
  torch::Tensor positions = torch::empty({nnodes, 3}, f64);
  torch::Tensor numbers = torch::empty({nnodes}, i64);
  auto *pptr = positions.data_ptr<double>();
  auto *zptr = numbers.data_ptr<int64_t>();
  for (int k = 0; k < nnodes; ++k) {
    const int a = node_atom[k];
    pptr[3 * k] = x[a][0];
    pptr[3 * k + 1] = x[a][1];
    pptr[3 * k + 2] = x[a][2];
    zptr[k] = type_to_z[type[a]];
  }
  torch::Tensor edge_index = torch::empty({2, nedges}, i64);
  std::copy(src.begin(), src.end(), edge_index.data_ptr<int64_t>());
  std::copy(dst.begin(), dst.end(), edge_index.data_ptr<int64_t>() + nedges);
  torch::Tensor edge_shift = torch::from_blob(shift.data(), {nedges, 3}, f64).clone();

  torch::Tensor energy, node_energy, forces, virial_t;
  try {
    std::vector<torch::jit::IValue> inputs{positions, numbers, edge_index, edge_shift, static_cast<int64_t>(nlocal),
                                           static_cast<bool>(vflag_global)};
    auto out = model->module.forward(inputs).toTuple();
    energy = out->elements().at(0).toTensor().to(torch::kFloat64);
    node_energy = out->elements().at(1).toTensor().to(torch::kFloat64).contiguous();
    forces = out->elements().at(2).toTensor().to(torch::kFloat64).contiguous();
    virial_t = out->elements().at(3).toTensor().to(torch::kFloat64).contiguous();
  } catch (const c10::Error &e) {
    error->one(FLERR, "maskpot model {} failed on {} atoms ({} local): {}", model->path, nnodes, nlocal,
               first_line(e.what_without_backtrace()));
  }
  if (forces.dim() != 2 || forces.size(0) != nnodes || forces.size(1) != 3 || node_energy.numel() != nlocal ||
      virial_t.numel() != 6)
    error->one(FLERR, "maskpot model {} returned wrong shapes (forces {}, node_energy {}, virial {})", model->path,
               forces.numel(), node_energy.numel(), virial_t.numel());

  const double s = energy_scale;
  const double *fptr = forces.data_ptr<double>();
  for (int k = 0; k < nnodes; ++k) {
    const int a = node_atom[k];    // a ghost node's force reaches its owner by reverse communication
    f[a][0] += s * fptr[3 * k];
    f[a][1] += s * fptr[3 * k + 1];
    f[a][2] += s * fptr[3 * k + 2];
  }
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
