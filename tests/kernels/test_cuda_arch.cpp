// The CUDA build must hold device code for every configured architecture
// (sm_80 and sm_90 by default). Checked on the built library file itself:
// with cuobjdump --list-elf where it is installed, and always by scanning the
// embedded fatbinary, where each cubin keeps its ptxas options ("-arch sm_XX").
// Needs no GPU.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace {

std::vector<std::string> expected_archs() {
  std::vector<std::string> out;
  std::stringstream ss(MMGEN_EXPECTED_CUDA_ARCHS);  // e.g. "80-real,90"
  for (std::string item; std::getline(ss, item, ',');) {
    const auto dash = item.find('-');
    if (!item.empty()) out.push_back("sm_" + item.substr(0, dash));
  }
  return out;
}

std::string read_file(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

TEST(KernelsCudaArch, LibraryHoldsDeviceCodeForEveryConfiguredArch) {
  const auto archs = expected_archs();
  if (archs.empty()) GTEST_SKIP() << "built without CUDA kernels (MMGEN_CUDA=OFF or no nvcc): no device code to check";
  const std::string bytes = read_file(MMGEN_KERNELS_LIBRARY);
  ASSERT_FALSE(bytes.empty()) << "cannot read " << MMGEN_KERNELS_LIBRARY;
  for (const auto& arch : archs) {
    EXPECT_NE(bytes.find("-arch " + arch + " "), std::string::npos)
        << MMGEN_KERNELS_LIBRARY << " holds no cubin built for " << arch;
  }
}

TEST(KernelsCudaArch, CuobjdumpListsACubinPerArch) {
  const auto archs = expected_archs();
  if (archs.empty()) GTEST_SKIP() << "built without CUDA kernels (MMGEN_CUDA=OFF or no nvcc)";
  const std::string tool = MMGEN_CUOBJDUMP;
  if (tool.empty()) GTEST_SKIP() << "cuobjdump is not installed; the fatbinary scan above covers this";
  const std::string cmd = "'" + tool + "' --list-elf '" + MMGEN_KERNELS_LIBRARY + "' 2>&1";
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), pclose);
  ASSERT_TRUE(pipe) << cmd;
  std::string listing;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, pipe.get())) > 0;) listing.append(buf, n);
  for (const auto& arch : archs) EXPECT_NE(listing.find("." + arch + ".cubin"), std::string::npos) << listing;
}

}  // namespace
