/* A caching CPU allocator for torch: large blocks are kept when freed and handed out again.

   Why: an energy+forces call allocates and frees tensors of edge size (E x 3F floats: 16 MB at 774 atoms,
   250 MB at 12k atoms). glibc serves every block above its mmap threshold (at most 32 MiB) with a fresh mmap,
   so each call maps, zero-fills (a page fault per 4 KiB page) and unmaps them: a third of the CPU time of a
   step, more at large sizes. glibc's own knobs do not fix it: with mmap off, torch's 64-byte-aligned
   posix_memalign blocks fragment the heap (it grew to 2.6x the peak at 12k atoms). torch's own CPU caching
   allocator is built for mobile only. So this one, by hand: blocks of at least MIN_CACHED bytes are rounded up
   to one of 8 size classes per power of two (<= 12.5 % waste), taken from a free list of their class when one
   is there, else mmapped (transparent huge pages asked for); freed blocks go back to their list. Memory is
   therefore the peak of one call, kept for the next; maskpot_allocator_release() returns the cached blocks.
   Smaller blocks go to the allocator it replaces (glibc handles those well).

   Used by the LAMMPS plugin (linked) and by maskpot's Python engines (loaded by maskpot.allocator);
   MASKPOT_ALLOCATOR=default leaves torch's allocator in place. */

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>

#include <sys/mman.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>
#include <unordered_map>
#include <vector>

namespace {

constexpr size_t MIN_CACHED = size_t(1) << 18;    // 256 KiB: glibc's default mmap threshold is 128 KiB
constexpr size_t PAGE = 4096;

size_t size_class(size_t n)
{
  size_t top = size_t(1) << (63 - __builtin_clzll(n));    // highest power of two <= n
  size_t step = std::max(top / 8, PAGE);
  return (n + step - 1) / step * step;
}

class CachingCPUAllocator final : public c10::Allocator {
 public:
  explicit CachingCPUAllocator(c10::Allocator *fallback) : fallback_(fallback) {}

  c10::DataPtr allocate(size_t n) override
  {
    if (n < MIN_CACHED) return fallback_->allocate(n);
    const size_t size = size_class(n);
    void *p = nullptr;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      auto &list = free_[size];
      if (!list.empty()) {
        p = list.back();
        list.pop_back();
        cached_bytes_ -= size;
      }
    }
    if (p == nullptr) {
      p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        release();    // give the cache back and try once more before failing like torch does
        p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) throw std::bad_alloc();
      }
      if (size >= (size_t(2) << 20)) madvise(p, size, MADV_HUGEPAGE);
      std::lock_guard<std::mutex> lock(mutex_);
      ++maps_;
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_[p] = size;
    }
    return {p, p, &CachingCPUAllocator::deleter, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &CachingCPUAllocator::deleter; }

  void copy_data(void *dest, const void *src, std::size_t count) const override
  {
    default_copy_data(dest, src, count);
  }

  void give_back(void *p)
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = live_.find(p);
    if (it == live_.end()) std::abort();    // not ours: a deleter mix-up, never expected
    free_[it->second].push_back(p);
    cached_bytes_ += it->second;
    live_.erase(it);
  }

  void release()
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto &[size, list] : free_)
      for (void *p : list) munmap(p, size);
    free_.clear();
    cached_bytes_ = 0;
  }

  size_t cached_bytes()
  {
    std::lock_guard<std::mutex> lock(mutex_);
    return cached_bytes_;
  }

  size_t maps()
  {
    std::lock_guard<std::mutex> lock(mutex_);
    return maps_;
  }

  static void deleter(void *p);

 private:
  c10::Allocator *fallback_;
  std::mutex mutex_;
  std::map<size_t, std::vector<void *>> free_;    // size class -> cached blocks
  std::unordered_map<void *, size_t> live_;       // handed-out block -> its size class
  size_t cached_bytes_ = 0;
  size_t maps_ = 0;
};

// Never destroyed: tensors may be freed during static destruction at exit.
CachingCPUAllocator *instance = nullptr;
std::mutex instance_mutex;

void CachingCPUAllocator::deleter(void *p)
{
  instance->give_back(p);
}

}    // namespace

extern "C" {

// Makes the caching allocator torch's CPU allocator (once per process); returns 1 when it is in place, 0 when
// MASKPOT_ALLOCATOR=default asks to leave torch's own.
__attribute__((visibility("default"))) int maskpot_allocator_enable()
{
  const char *env = std::getenv("MASKPOT_ALLOCATOR");
  if (env && std::strcmp(env, "default") == 0) return 0;
  std::lock_guard<std::mutex> lock(instance_mutex);
  if (instance == nullptr) {
    instance = new CachingCPUAllocator(c10::GetCPUAllocator());
    c10::SetCPUAllocator(instance, /*priority=*/1);
  }
  return c10::GetCPUAllocator() == instance ? 1 : 0;
}

// Bytes held in the cache (freed blocks waiting for reuse).
__attribute__((visibility("default"))) size_t maskpot_allocator_cached_bytes()
{
  return instance ? instance->cached_bytes() : 0;
}

// Blocks mapped from the system so far (a steady state maps none).
__attribute__((visibility("default"))) size_t maskpot_allocator_maps()
{
  return instance ? instance->maps() : 0;
}

// Returns the cached blocks to the system.
__attribute__((visibility("default"))) void maskpot_allocator_release()
{
  if (instance) instance->release();
}
}
