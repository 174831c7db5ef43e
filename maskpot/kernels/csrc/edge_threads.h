/* How the fused edge operators (painn_message.cpp, egnn_message.cpp) share their edges between torch's intra-op
   threads: even shares, and per-thread copies of the outputs the edges scatter into. */

#ifndef MASKPOT_EDGE_THREADS_H
#define MASKPOT_EDGE_THREADS_H

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <utility>
#include <vector>

namespace maskpot {

// Threads for E edges: torch's thread count, at most one per MIN_EDGES_PER_THREAD edges.
inline constexpr int64_t MIN_EDGES_PER_THREAD = 2048;

inline int64_t threads_for(int64_t E)
{
  if (at::in_parallel_region()) return 1;
  return std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), E / MIN_EDGES_PER_THREAD));
}

// Thread t's share [begin, end) of n items split evenly between `parts` threads.
inline std::pair<int64_t, int64_t> share(int64_t n, int64_t t, int64_t parts)
{
  return {n * t / parts, n * (t + 1) / parts};
}

// Per-thread copies of the (zeroed) outputs `out`: the first thread's are the outputs themselves; `add_parts`
// sums the others into them in thread order.
inline std::vector<at::Tensor> thread_copies(const at::Tensor &out, int64_t parts)
{
  std::vector<at::Tensor> copies{out};
  for (int64_t t = 1; t < parts; ++t) copies.push_back(at::zeros_like(out));
  return copies;
}

inline void add_parts(const std::vector<at::Tensor> &copies)
{
  for (size_t t = 1; t < copies.size(); ++t) copies[0].add_(copies[t]);
}

}    // namespace maskpot

#endif
