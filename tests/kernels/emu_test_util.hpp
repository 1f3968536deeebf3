// Shared by the tests that run the .cu kernels under the CPU emulator.
#pragma once

#include <gtest/gtest.h>

#include "cuda/launch.hpp"  // error_string

// A launcher returns 0 or an error code; a failure prints the emulator's text.
#define EXPECT_LAUNCH_OK(expr)                                         \
  do {                                                                 \
    const int err_ = (expr);                                           \
    EXPECT_EQ(err_, 0) << mmgen::cuda_kernels::error_string(err_);     \
  } while (0)
