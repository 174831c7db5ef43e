/* maskpot::neighbor_pairs: maskpot.models.neighbors.neighbor_pairs (the neighbour search of exported ASE and
   OpenMM files) as a C++ cell list, with the same contract and the same edge set.

   Hand-written because an exported file must find its neighbours without Python libraries: vesin, which maskpot
   uses in Python, has a torch operator build, but that is a separate binary per torch release which every
   exported file would then depend on; this operator ships in maskpot's own kernels library, built next to the
   LAMMPS plugin for the running torch. The pure-torch search it replaces builds (atoms x 125 bins) candidate
   tensors; here each atom loops over the points of the bins around its own.

   positions (N,3) Angstrom, float32 or float64; cell (3,3) lattice vectors as rows or None; pbc (3,) bool;
   cutoff Angstrom. Returns edge_index (2,E) int64 and shifts (E,3) integer-valued cell-shift counts in positions'
   dtype: every pair (i, j, shift), in both directions, except i == j at zero shift, whose edge vector
   d = positions[j] - positions[i] + shift @ cell passes the test of the torch version, in positions' dtype T:
       d_c = (x[j,c] - x[i,c]) + ((s0 * cell[0,c] + s1 * cell[1,c]) + s2 * cell[2,c])
       (d_0 * d_0 + d_1 * d_1) + d_2 * d_2 < T(cutoff * cutoff)
   (what torch's elementwise ops, its 3x3 matmul and its sum over 3 round to; this file is compiled without FMA
   contraction, see lammps/CMakeLists.txt, so that the compiler keeps that rounding). Non-periodic directions get
   zero shifts; a cell shorter than the cutoff gives several images of one neighbour. Edges are sorted by
   (i, j, shift), lexicographically; with `paired`, the same edges laid out as pairs instead: edge 2k = (i, j,
   shift) with (j, shift) > (i, 0) lexicographically, sorted by (i, j, shift), and edge 2k + 1 its reverse (j, i,
   -shift), the layout whose pairs maskpot::painn_message computes with one filter. CPU only, no autograd (callers
   pass detached positions).

   The search itself (wrapping into the cell, which images can matter, bins) runs in double with a skin, so that
   its candidates are a superset of the pairs that pass the test in T.
*/

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

namespace maskpot {
namespace {

using at::Tensor;
using Vec = std::array<double, 3>;
using Shift = std::array<int64_t, 3>;

// A point of the search: atom `atom` at positions[atom] + shift @ cell (wrapped into the cell, or an image).
struct Point {
  Vec x;
  int64_t atom;
  Shift shift;
};

struct Edge {
  int64_t j;
  Shift shift;
  bool operator<(const Edge &o) const { return j != o.j ? j < o.j : shift < o.shift; }
};

Vec cross(const Vec &a, const Vec &b)
{
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

double dot(const Vec &a, const Vec &b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }

// The points to search: first every atom as a query (wrapped into the cell along its periodic directions), then,
// with periodic directions, the images that can lie within `reach` (Angstrom) of the cell.
std::vector<Point> search_points(const std::vector<Vec> &x, const std::array<Vec, 3> &cell,
                                 const std::array<bool, 3> &periodic, double reach)
{
  const int64_t n = static_cast<int64_t>(x.size());
  std::vector<Point> points;
  points.reserve(n);
  if (!(periodic[0] || periodic[1] || periodic[2])) {
    for (int64_t a = 0; a < n; ++a) points.push_back({x[a], a, {0, 0, 0}});
    return points;
  }
  // fractional coordinates: frac = x @ inv(cell), the rows of inv(cell)^T being (b x c, c x a, a x b) / volume
  const std::array<Vec, 3> dual{cross(cell[1], cell[2]), cross(cell[2], cell[0]), cross(cell[0], cell[1])};
  const double volume = dot(cell[0], dual[0]);
  std::array<double, 3> margin;  // reach in fractional units: reach / (the cell's height along direction k)
  std::array<int64_t, 3> n_img;
  for (int k = 0; k < 3; ++k) {
    margin[k] = periodic[k] ? reach * std::sqrt(dot(dual[k], dual[k])) / std::abs(volume) : 0.0;
    n_img[k] = periodic[k] ? static_cast<int64_t>(std::ceil(margin[k])) : 0;
  }
  std::vector<Vec> frac(n);
  for (int64_t a = 0; a < n; ++a) {
    Shift wrap{0, 0, 0};
    for (int k = 0; k < 3; ++k) {
      frac[a][k] = dot(x[a], dual[k]) / volume;
      if (periodic[k]) wrap[k] = static_cast<int64_t>(std::floor(frac[a][k]));
      frac[a][k] -= static_cast<double>(wrap[k]);
    }
    Vec p = x[a];
    for (int k = 0; k < 3; ++k)
      for (int c = 0; c < 3; ++c) p[c] -= static_cast<double>(wrap[k]) * cell[k][c];
    points.push_back({p, a, {-wrap[0], -wrap[1], -wrap[2]}});
  }
  for (int64_t m0 = -n_img[0]; m0 <= n_img[0]; ++m0)
    for (int64_t m1 = -n_img[1]; m1 <= n_img[1]; ++m1)
      for (int64_t m2 = -n_img[2]; m2 <= n_img[2]; ++m2) {
        const Shift m{m0, m1, m2};
        if (m0 == 0 && m1 == 0 && m2 == 0) continue;
        for (int64_t a = 0; a < n; ++a) {
          bool inside = true;
          for (int k = 0; k < 3 && inside; ++k) {
            const double f = frac[a][k] + static_cast<double>(m[k]);
            inside = !periodic[k] || (f > -margin[k] && f < 1.0 + margin[k]);
          }
          if (!inside) continue;
          const Point &home = points[a];
          Point image{home.x, a, home.shift};
          for (int k = 0; k < 3; ++k) {
            image.shift[k] += m[k];
            for (int c = 0; c < 3; ++c) image.x[c] += static_cast<double>(m[k]) * cell[k][c];
          }
          points.push_back(image);
        }
      }
  return points;
}

// Points counting-sorted into a grid of cubic bins of side reach / B, or wider where the points' bounding box would
// need more than MAX_BINS_PER_POINT bins per point (atoms spread far apart: wider bins cost time, never edges).
// The (2B+1)^3 bins around a bin hold every point within the reach; in the grid's row-major order they are
// (2B+1)^2 runs of 2B+1 consecutive bins. B = 2: less volume to look through than the 27 bins of side reach
// (125 / 8 against 27 reach^3).
constexpr int64_t B = 2;
constexpr double MAX_BINS_PER_POINT = 16;

class CellList {
 public:
  explicit CellList(const std::vector<Point> &points, double reach)
  {
    const int64_t m = static_cast<int64_t>(points.size());
    lo_ = m ? points[0].x : Vec{0, 0, 0};
    Vec hi = lo_;
    for (const Point &p : points)
      for (int c = 0; c < 3; ++c) {
        lo_[c] = std::min(lo_[c], p.x[c]);
        hi[c] = std::max(hi[c], p.x[c]);
      }
    for (int c = 0; c < 3; ++c)
      TORCH_CHECK_VALUE(std::isfinite(hi[c] - lo_[c]), "maskpot::neighbor_pairs: the atoms are spread too far");
    const double cap = MAX_BINS_PER_POINT * static_cast<double>(m) + 4096;  // at least (2B+1)^3
    std::array<double, 3> nb;
    for (side_ = reach / B;; side_ *= 1.25) {
      for (int c = 0; c < 3; ++c) nb[c] = std::floor((hi[c] - lo_[c]) / side_) + 1 + 2 * B;  // room for -B..B
      if (nb[0] * nb[1] * nb[2] <= cap) break;
    }
    for (int c = 0; c < 3; ++c) nb_[c] = static_cast<int64_t>(nb[c]);
    // counting sort of the points by bin
    start_.assign(nb_[0] * nb_[1] * nb_[2] + 1, 0);
    std::vector<int64_t> bin(m);
    for (int64_t p = 0; p < m; ++p) ++start_[(bin[p] = id(bin_of(points[p].x), 0, 0, 0)) + 1];
    for (size_t b = 1; b < start_.size(); ++b) start_[b] += start_[b - 1];
    std::vector<int64_t> fill(start_.begin(), start_.end() - 1);
    binned_.resize(m);
    for (int64_t p = 0; p < m; ++p) binned_[fill[bin[p]]++] = points[p];
    for (int c = 0; c < 3; ++c) coordinates_[c].resize(m);
    atoms_.resize(m);
    for (int64_t p = 0; p < m; ++p) {
      for (int c = 0; c < 3; ++c) coordinates_[c][p] = binned_[p].x[c];
      atoms_[p] = binned_[p].atom;
    }
  }

  // f(first, last) for the runs [first, last) of binned() around x
  template <typename F>
  void for_each_run(const Vec &x, F &&f) const
  {
    const Shift b = bin_of(x);
    for (int64_t d0 = -B; d0 <= B; ++d0)
      for (int64_t d1 = -B; d1 <= B; ++d1) f(start_[id(b, d0, d1, -B)], start_[id(b, d0, d1, B) + 1]);
  }
  const std::vector<Point> &binned() const { return binned_; }  // the points in bin order
  // binned()'s coordinates, one array per axis, and atoms: what the scan of every candidate reads, contiguous
  const std::array<std::vector<double>, 3> &coordinates() const { return coordinates_; }
  const std::vector<int64_t> &atoms() const { return atoms_; }

 private:
  Shift bin_of(const Vec &x) const
  {
    Shift b;
    for (int c = 0; c < 3; ++c) b[c] = static_cast<int64_t>(std::floor((x[c] - lo_[c]) / side_)) + B;
    return b;
  }
  int64_t id(const Shift &b, int64_t d0, int64_t d1, int64_t d2) const
  {
    return ((b[0] + d0) * nb_[1] + (b[1] + d1)) * nb_[2] + (b[2] + d2);
  }

  double side_;
  Vec lo_;
  std::array<int64_t, 3> nb_;
  std::vector<int64_t> start_;  // the points of bin b are [start_[b], start_[b + 1])
  std::vector<Point> binned_;
  std::array<std::vector<double>, 3> coordinates_;
  std::vector<int64_t> atoms_;
};

// The edges one thread finds, in output order: edge e is (i[e], j[e]) with cell shift shift[3e..3e+2].
template <typename T>
struct EdgeRows {
  std::vector<int64_t> i, j;
  std::vector<T> shift;
  void clear()
  {
    i.clear();
    j.clear();
    shift.clear();
  }
  void add(int64_t a, int64_t b, const Shift &s)
  {
    i.push_back(a);
    j.push_back(b);
    for (int k = 0; k < 3; ++k) shift.push_back(static_cast<T>(s[k]));
  }
};

// Edges of queries [q0, q1) (atom q is points[q]), sorted by (i, j, shift) (with `paired`, in pairs), appended
// to `out`. A candidate closer than the reach in double goes on to the test in T of the header; with `paired`
// only candidates of atoms j >= i can be a pair's first edge, so the others are dropped in the scan already.
// x: positions (N, 3) in T; xb: the positions of binned()'s atoms in bin order (the test reads the candidates'
// rows close together).
template <typename T>
void query_edges(const std::vector<Point> &points, const CellList &bins, double reach, const T *x, const T *xb,
                 const std::array<T, 9> &cell, double cutoff, bool paired, int64_t q0, int64_t q1,
                 EdgeRows<T> &out)
{
  const T cutoff2 = static_cast<T>(cutoff * cutoff);
  const double reach2 = reach * reach;
  const std::vector<Point> &binned = bins.binned();
  const double *c0 = bins.coordinates()[0].data(), *c1 = bins.coordinates()[1].data(),
               *c2 = bins.coordinates()[2].data();
  const int64_t *atom = bins.atoms().data();
  std::vector<Edge> edges;
  std::vector<int64_t> near(binned.size());  // every candidate of one query: at most all points
  for (int64_t i = q0; i < q1; ++i) {
    const Point &q = points[i];
    const int64_t lowest = paired ? i : 0;
    int64_t *kept = near.data();
    bins.for_each_run(q.x, [&](int64_t first, int64_t last) {
      for (int64_t k = first; k < last; ++k) {  // without branches: most candidates are rejected
        const double e0 = c0[k] - q.x[0], e1 = c1[k] - q.x[1], e2 = c2[k] - q.x[2];
        *kept = k;
        kept += (e0 * e0 + e1 * e1 + e2 * e2 < reach2) & (atom[k] >= lowest);
      }
    });
    edges.clear();
    const T xi0 = x[3 * i], xi1 = x[3 * i + 1], xi2 = x[3 * i + 2];
    for (const int64_t *it = near.data(); it != kept; ++it) {
      const Point &c = binned[*it];
      const int64_t j = c.atom;
      const Shift s{c.shift[0] - q.shift[0], c.shift[1] - q.shift[1], c.shift[2] - q.shift[2]};
      if (j == i && s[0] == 0 && s[1] == 0 && s[2] == 0) continue;
      const T s0 = static_cast<T>(s[0]), s1 = static_cast<T>(s[1]), s2 = static_cast<T>(s[2]);
      const T *xj = xb + 3 * *it;
      const T d0 = (xj[0] - xi0) + ((s0 * cell[0] + s1 * cell[3]) + s2 * cell[6]);
      const T d1 = (xj[1] - xi1) + ((s0 * cell[1] + s1 * cell[4]) + s2 * cell[7]);
      const T d2 = (xj[2] - xi2) + ((s0 * cell[2] + s1 * cell[5]) + s2 * cell[8]);
      if ((d0 * d0 + d1 * d1) + d2 * d2 < cutoff2) edges.push_back({j, s});
    }
    std::sort(edges.begin(), edges.end());
    const Edge self{i, {0, 0, 0}};
    for (const Edge &e : edges) {
      if (!paired) {
        out.add(i, e.j, e.shift);
      } else if (self < e) {    // the pair's first edge here, its reverse next; the reverse's own query skips it
        out.add(i, e.j, e.shift);
        out.add(e.j, i, {-e.shift[0], -e.shift[1], -e.shift[2]});
      }
    }
  }
}

std::tuple<Tensor, Tensor> neighbor_pairs_cpu(const Tensor &positions_in, const std::optional<Tensor> &cell_in,
                                              const Tensor &pbc_in, double cutoff, bool paired)
{
  TORCH_CHECK_VALUE(positions_in.dim() == 2 && positions_in.size(1) == 3,
                    "maskpot::neighbor_pairs: positions must be (N, 3), got ", positions_in.sizes());
  const auto dtype = positions_in.scalar_type();
  TORCH_CHECK_VALUE(dtype == at::kFloat || dtype == at::kDouble,
                    "maskpot::neighbor_pairs: positions must be float32 or float64, got ", dtype);
  TORCH_CHECK_VALUE(positions_in.device().is_cpu(), "maskpot::neighbor_pairs: CPU tensors only");
  TORCH_CHECK_VALUE(pbc_in.numel() == 3, "maskpot::neighbor_pairs: pbc must have 3 entries, got ", pbc_in.sizes());
  TORCH_CHECK_VALUE(cutoff > 0, "maskpot::neighbor_pairs: the cutoff must be positive, got ", cutoff);
  const Tensor positions = positions_in.contiguous();
  const Tensor pbc = pbc_in.to(at::kCPU, at::kBool).contiguous();
  const int64_t n = positions.size(0);
  std::array<bool, 3> periodic;
  for (int k = 0; k < 3; ++k) periodic[k] = pbc.data_ptr<bool>()[k];
  const bool any_periodic = periodic[0] || periodic[1] || periodic[2];
  const bool has_cell = cell_in.has_value() && cell_in->defined();
  TORCH_CHECK_VALUE(has_cell || !any_periodic,
                    "periodic boundaries were requested but no cell was given");
  if (!any_periodic || n == 0) periodic = {false, false, false};  // no cell used, as in the torch version

  Tensor cell_t = at::zeros({3, 3}, positions.options());
  if (has_cell && (periodic[0] || periodic[1] || periodic[2])) {
    TORCH_CHECK_VALUE(cell_in->dim() == 2 && cell_in->size(0) == 3 && cell_in->size(1) == 3,
                      "maskpot::neighbor_pairs: cell must be (3, 3), got ", cell_in->sizes());
    cell_t = cell_in->to(at::kCPU, dtype).contiguous();
  }
  const Tensor cell64 = cell_t.to(at::kDouble).contiguous(), x64 = positions.to(at::kDouble).contiguous();
  const double *cp = cell64.data_ptr<double>(), *xp = x64.data_ptr<double>();
  const std::array<Vec, 3> cell{Vec{cp[0], cp[1], cp[2]}, Vec{cp[3], cp[4], cp[5]}, Vec{cp[6], cp[7], cp[8]}};
  if (periodic[0] || periodic[1] || periodic[2])
    TORCH_CHECK_VALUE(std::abs(dot(cell[0], cross(cell[1], cell[2]))) >= 1e-6,
                      "the cell is singular (zero volume); give three independent lattice vectors");
  std::vector<Vec> x(n);
  double scale = 0.0;  // the largest coordinate magnitude, for the skin below
  for (int64_t a = 0; a < n; ++a) {
    for (int c = 0; c < 3; ++c) {
      x[a][c] = xp[3 * a + c];
      TORCH_CHECK_VALUE(std::isfinite(x[a][c]), "maskpot::neighbor_pairs: the position of atom ", a,
                        " is not finite (NaN or inf)");
      scale = std::max(scale, std::abs(x[a][c]));
    }
  }
  for (const Vec &row : cell) scale += std::sqrt(dot(row, row));
  scale += cutoff;  // images several cells away (a cell shorter than the cutoff)

  // skin: the search in double must find every pair that passes the test in T, whose rounding errors are a few
  // eps(T) times the coordinates and shifts involved
  const double eps =
      dtype == at::kFloat ? std::numeric_limits<float>::epsilon() : std::numeric_limits<double>::epsilon();
  const double reach = cutoff + 1e-3 + 64.0 * eps * scale;
  const std::vector<Point> points = search_points(x, cell, periodic, reach);
  const CellList bins(points, reach);

  Tensor edge_index, shifts;
  AT_DISPATCH_FLOATING_TYPES(dtype, "maskpot::neighbor_pairs", [&] {
    const Tensor cell_s = cell_t.to(dtype).contiguous();
    std::array<scalar_t, 9> c;
    std::copy_n(cell_s.data_ptr<scalar_t>(), 9, c.begin());
    const scalar_t *xs = positions.data_ptr<scalar_t>();
    const std::vector<Point> &binned = bins.binned();
    std::vector<scalar_t> xb(3 * binned.size());
    for (size_t p = 0; p < binned.size(); ++p)
      for (int k = 0; k < 3; ++k) xb[3 * p + k] = xs[3 * binned[p].atom + k];
    // queries split into contiguous ranges, one per thread, concatenated in order: the same output for any
    // thread count
    const int64_t threads = at::in_parallel_region() ? 1 : at::get_num_threads();
    const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(threads, n / 256));
    // kept between calls of this thread (cleared, not freed): after the first call of a size an MD step's search
    // allocates no edge-sized memory (fresh vectors were mapped, zero-filled and unmapped by malloc on every call)
    thread_local std::vector<EdgeRows<scalar_t>> part;
    part.resize(parts);
    for (auto &p : part) p.clear();
    at::parallel_for(0, parts, 1, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        query_edges<scalar_t>(points, bins, reach, xs, xb.data(), c, cutoff, paired, n * t / parts,
                              n * (t + 1) / parts, part[t]);
    });
    int64_t E = 0;
    for (const auto &p : part) E += static_cast<int64_t>(p.i.size());
    edge_index = at::empty({2, E}, positions.options().dtype(at::kLong));
    shifts = at::empty({E, 3}, positions.options());
    int64_t *ip = edge_index.data_ptr<int64_t>(), *jp = ip + E;
    scalar_t *sp = shifts.data_ptr<scalar_t>();
    for (const auto &p : part) {
      ip = std::copy(p.i.begin(), p.i.end(), ip);
      jp = std::copy(p.j.begin(), p.j.end(), jp);
      sp = std::copy(p.shift.begin(), p.shift.end(), sp);
    }
  });
  return {edge_index, shifts};
}

}    // namespace

TORCH_LIBRARY_FRAGMENT(maskpot, m)
{
  // paired last and defaulted: calls written before it existed (older exports) keep their meaning
  m.def("neighbor_pairs(Tensor positions, Tensor? cell, Tensor pbc, float cutoff, bool paired=False) -> "
        "(Tensor edge_index, Tensor shifts)");
}

TORCH_LIBRARY_IMPL(maskpot, CPU, m) { m.impl("neighbor_pairs", &neighbor_pairs_cpu); }

}    // namespace maskpot
