// Replacement global operator new/delete for the proto test binary (see
// alloc_guard.hpp). The array and nothrow forms of libstdc++ forward to these.
#include "alloc_guard.hpp"

#include <atomic>
#include <cstdlib>
#include <new>

namespace {
std::atomic<std::size_t> g_ceiling{0};  // 0: not guarded
std::atomic<std::size_t> g_largest{0};
std::atomic<std::size_t> g_refused{0};

void* checked_alloc(std::size_t n, std::size_t align) {
  if (const std::size_t ceiling = g_ceiling.load(std::memory_order_relaxed); ceiling != 0) {
    if (n > ceiling) {
      g_refused.fetch_add(1);
      throw std::bad_alloc();
    }
    std::size_t seen = g_largest.load(std::memory_order_relaxed);
    while (n > seen && !g_largest.compare_exchange_weak(seen, n)) {
    }
  }
  if (n == 0) n = 1;
  void* p = align > alignof(std::max_align_t)
                ? std::aligned_alloc(align, (n + align - 1) / align * align)
                : std::malloc(n);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace

void* operator new(std::size_t n) { return checked_alloc(n, 0); }
void* operator new(std::size_t n, std::align_val_t a) {
  return checked_alloc(n, static_cast<std::size_t>(a));
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }

namespace proto_test {

AllocGuard::AllocGuard(std::size_t ceiling_bytes) {
  g_largest = 0;
  g_refused = 0;
  g_ceiling = ceiling_bytes;
}
AllocGuard::~AllocGuard() { g_ceiling = 0; }
std::size_t AllocGuard::largest() const { return g_largest.load(); }
std::size_t AllocGuard::refused() const { return g_refused.load(); }

}  // namespace proto_test
