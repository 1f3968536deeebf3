// Watches the test binary's own heap: alloc_guard.cpp replaces the global
// operator new, so every C++ allocation (std::string, std::vector, ...) made
// while a guard is alive is checked against its ceiling. An allocation above
// it fails with std::bad_alloc and is recorded, so a test can tell "refused
// cleanly" from "tried to allocate gigabytes and was stopped".
//
// msgpack-c's zone allocates with malloc, which this cannot see; the forked
// RLIMIT_AS tests in hostile_test.cpp cover that side.
#pragma once

#include <cstddef>

namespace proto_test {

class AllocGuard {
 public:
  explicit AllocGuard(std::size_t ceiling_bytes);
  ~AllocGuard();
  AllocGuard(const AllocGuard&) = delete;
  AllocGuard& operator=(const AllocGuard&) = delete;

  std::size_t largest() const;  // largest allocation seen while guarded
  std::size_t refused() const;  // allocations above the ceiling
};

}  // namespace proto_test
