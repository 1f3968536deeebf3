# Finds libtorch (from the pinned PyPI wheel in the project venv) and, when
# asked, the CUDA toolchain. Included from the top-level CMakeLists.txt when
# MMGEN_WITH_TORCH is ON.
#
# Why not find_package(Torch): the wheel's TorchConfig.cmake pulls in
# Caffe2's CUDA detection (FindCUDAToolkit, cuDNN, NCCL, nvToolsExt...) and
# fails or slows configure on machines without the full toolkit, and its
# targets add link options for libraries we never call. We need only the
# headers and a handful of shared libraries, so we declare those as imported
# targets ourselves:
#   mmgen::torch_cpu  -> libtorch_cpu.so + libc10.so (always)
#   mmgen::torch_cuda -> libtorch_cuda.so + libc10_cuda.so (only when CUDA kernels are built)
# Search order for the wheel: -DTORCH_INSTALL_PREFIX=<site-packages/torch>,
# then the interpreter MMGEN_PYTHON (default: <repo>/.venv/bin/python), then
# any CMAKE_PREFIX_PATH entry that holds Torch/TorchConfig.cmake.
#
# Results:
#   TORCH_INSTALL_PREFIX   folder with lib/ and include/
#   MMGEN_TORCH_LIB_DIRS   folders test/bench binaries need in their RPATH
#   MMGEN_HAVE_CUDA        TRUE when the CUDA language is enabled (MMGEN_CUDA)

set(MMGEN_PYTHON "${CMAKE_CURRENT_LIST_DIR}/../.venv/bin/python" CACHE FILEPATH
    "Python interpreter whose torch package provides libtorch")

function(_mmgen_torch_from_python out_prefix out_abi)
  if(NOT EXISTS "${MMGEN_PYTHON}")
    return()
  endif()
  execute_process(
    COMMAND "${MMGEN_PYTHON}" -c
      "import os, torch; print(os.path.dirname(torch.__file__)); print(int(torch.compiled_with_cxx11_abi()))"
    OUTPUT_VARIABLE _out RESULT_VARIABLE _rc ERROR_QUIET OUTPUT_STRIP_TRAILING_WHITESPACE)
  if(_rc EQUAL 0)
    string(REPLACE "\n" ";" _lines "${_out}")
    list(GET _lines 0 _prefix)
    list(GET _lines 1 _abi)
    set(${out_prefix} "${_prefix}" PARENT_SCOPE)
    set(${out_abi} "${_abi}" PARENT_SCOPE)
  endif()
endfunction()

if(NOT TORCH_INSTALL_PREFIX)
  _mmgen_torch_from_python(_prefix _abi)
  if(NOT _prefix)
    foreach(p IN LISTS CMAKE_PREFIX_PATH)
      if(EXISTS "${p}/Torch/TorchConfig.cmake")
        get_filename_component(_prefix "${p}/../.." ABSOLUTE)
        break()
      endif()
    endforeach()
  endif()
  if(NOT _prefix OR NOT EXISTS "${_prefix}/include/torch/library.h")
    message(FATAL_ERROR
      "libtorch not found. Run scripts/setup.sh (creates .venv with the pinned torch), "
      "or pass -DMMGEN_PYTHON=<python with torch> or -DTORCH_INSTALL_PREFIX=<.../site-packages/torch>, "
      "or configure with -DMMGEN_WITH_TORCH=OFF.")
  endif()
  set(TORCH_INSTALL_PREFIX "${_prefix}" CACHE PATH "torch package folder (lib/, include/)")
  if(_abi STREQUAL "")
    set(_abi 1)  # every PyPI wheel since torch 2.7 uses the C++11 ABI
  endif()
  set(MMGEN_TORCH_CXX11_ABI "${_abi}" CACHE STRING "_GLIBCXX_USE_CXX11_ABI of the torch build")
endif()
if(NOT DEFINED MMGEN_TORCH_CXX11_ABI)
  set(MMGEN_TORCH_CXX11_ABI 1)
endif()

set(_torch_lib "${TORCH_INSTALL_PREFIX}/lib")
foreach(lib c10 torch_cpu)
  if(NOT EXISTS "${_torch_lib}/lib${lib}.so")
    message(FATAL_ERROR "lib${lib}.so missing in ${_torch_lib}")
  endif()
endforeach()
message(STATUS "libtorch: ${TORCH_INSTALL_PREFIX} (_GLIBCXX_USE_CXX11_ABI=${MMGEN_TORCH_CXX11_ABI})")

# Header-only facts shared by every torch consumer. The include folder comes in
# as SYSTEM (imported target), so -Werror never fires on torch's headers.
add_library(mmgen_torch_c10 SHARED IMPORTED GLOBAL)
set_target_properties(mmgen_torch_c10 PROPERTIES
  IMPORTED_LOCATION "${_torch_lib}/libc10.so"
  INTERFACE_INCLUDE_DIRECTORIES "${TORCH_INSTALL_PREFIX}/include"
  INTERFACE_COMPILE_DEFINITIONS "_GLIBCXX_USE_CXX11_ABI=${MMGEN_TORCH_CXX11_ABI}")
add_library(mmgen_torch_cpu_lib SHARED IMPORTED GLOBAL)
set_target_properties(mmgen_torch_cpu_lib PROPERTIES
  IMPORTED_LOCATION "${_torch_lib}/libtorch_cpu.so"
  INTERFACE_LINK_LIBRARIES mmgen_torch_c10)
add_library(mmgen::torch_cpu ALIAS mmgen_torch_cpu_lib)

# The wheel's own libraries carry RPATH $ORIGIN/../../nvidia/*/lib, so they find
# libcudart/libcupti/cuDNN... themselves; our binaries only need torch/lib.
set(MMGEN_TORCH_LIB_DIRS "${_torch_lib}")

# ---- CUDA -------------------------------------------------------------------
# MMGEN_CUDA=AUTO builds the .cu kernels when nvcc is found, ON requires it,
# OFF skips it. Without CUDA everything else (CPU ops, the emulator that runs
# the same .cu sources on the CPU, all unit tests) still builds and passes.
set(MMGEN_HAVE_CUDA FALSE)
if(NOT MMGEN_CUDA STREQUAL "OFF")
  if(NOT CMAKE_CUDA_COMPILER)
    find_program(MMGEN_NVCC nvcc
      HINTS ENV CUDACXX ENV CUDA_HOME ENV CUDA_PATH
      PATH_SUFFIXES bin
      PATHS /usr/local/cuda/bin)
    if(MMGEN_NVCC)
      set(CMAKE_CUDA_COMPILER "${MMGEN_NVCC}" CACHE FILEPATH "CUDA compiler" FORCE)
    endif()
  endif()
  include(CheckLanguage)
  check_language(CUDA)
  if(CMAKE_CUDA_COMPILER AND EXISTS "${_torch_lib}/libtorch_cuda.so")
    if(NOT CMAKE_CUDA_ARCHITECTURES)
      # SASS for A100 (sm_80) and H100/H200 (sm_90), plus compute_90 PTX so
      # newer GPUs can JIT the kernels.
      set(CMAKE_CUDA_ARCHITECTURES "80-real;90" CACHE STRING "CUDA architectures" FORCE)
    endif()
    # The CUDA runtime is linked explicitly below (the wheel's copy).
    set(CMAKE_CUDA_RUNTIME_LIBRARY None)
    enable_language(CUDA)
    # CMake 3.25 knows nvcc's flags only up to C++17; nvcc >= 12 takes -std=c++20.
    if(NOT CMAKE_CUDA20_STANDARD_COMPILE_OPTION AND CMAKE_CUDA_COMPILER_VERSION VERSION_GREATER_EQUAL 12.0)
      set(CMAKE_CUDA20_STANDARD_COMPILE_OPTION "-std=c++20")
      set(CMAKE_CUDA20_EXTENSION_COMPILE_OPTION "-std=c++20")
      list(APPEND CMAKE_CUDA_COMPILE_FEATURES cuda_std_20)
    endif()
    set(CMAKE_CUDA_STANDARD 20)
    set(CMAKE_CUDA_STANDARD_REQUIRED ON)
    set(MMGEN_HAVE_CUDA TRUE)
  elseif(MMGEN_CUDA STREQUAL "ON")
    message(FATAL_ERROR "MMGEN_CUDA=ON but no usable nvcc was found (or the torch build has no libtorch_cuda.so)")
  endif()
endif()

if(MMGEN_HAVE_CUDA)
  # libcudart: the wheel's own copy (nvidia/cu13/lib), the one libtorch loads.
  # Linking the toolkit's instead would put the toolkit's lib64 in our RPATH,
  # and with it the toolkit's older NCCL/cuDNN ahead of the wheel's.
  file(GLOB _wheel_cudart "${TORCH_INSTALL_PREFIX}/../nvidia/cu*/lib/libcudart.so.*"
                          "${TORCH_INSTALL_PREFIX}/../nvidia/cuda_runtime/lib/libcudart.so.*")
  if(_wheel_cudart)
    list(GET _wheel_cudart 0 _cudart)
  else()
    find_library(_cudart NAMES cudart HINTS ${CMAKE_CUDA_IMPLICIT_LINK_DIRECTORIES} REQUIRED)
  endif()
  add_library(mmgen_cudart SHARED IMPORTED GLOBAL)
  set_target_properties(mmgen_cudart PROPERTIES
    IMPORTED_LOCATION "${_cudart}"
    INTERFACE_INCLUDE_DIRECTORIES "${CMAKE_CUDA_TOOLKIT_INCLUDE_DIRECTORIES}")
  add_library(mmgen_torch_c10_cuda SHARED IMPORTED GLOBAL)
  set_target_properties(mmgen_torch_c10_cuda PROPERTIES
    IMPORTED_LOCATION "${_torch_lib}/libc10_cuda.so"
    INTERFACE_LINK_LIBRARIES "mmgen_torch_c10;mmgen_cudart")
  # libtorch_cuda.so is linked with --no-as-needed: nothing references its
  # symbols directly, but loading it registers ATen's CUDA backend (allocator,
  # streams, CUDA kernels of the ATen ops the tests and benchmarks call).
  add_library(mmgen_torch_cuda_lib INTERFACE IMPORTED GLOBAL)
  set_target_properties(mmgen_torch_cuda_lib PROPERTIES
    INTERFACE_LINK_LIBRARIES
      "-Wl,--no-as-needed,${_torch_lib}/libtorch_cuda.so -Wl,--as-needed;mmgen_torch_c10_cuda;mmgen_torch_cpu_lib")
  add_library(mmgen::torch_cuda ALIAS mmgen_torch_cuda_lib)
  message(STATUS "CUDA kernels: ON (nvcc ${CMAKE_CUDA_COMPILER_VERSION}, architectures ${CMAKE_CUDA_ARCHITECTURES}, runtime ${_cudart})")
else()
  message(STATUS "CUDA kernels: OFF (MMGEN_CUDA=${MMGEN_CUDA}); .cu kernels still run under the CPU emulator")
endif()

# at::parallel_for is inline in ATen's headers, and its parallel path exists
# only where _OPENMP is defined: in a file compiled without -fopenmp it runs
# the whole range on the calling thread, whatever at::set_num_threads says.
# mmgen_torch_openmp(<target> <sources>...) builds those sources with -fopenmp
# (without the target's precompiled header, which was parsed without it) and
# links the libgomp libtorch itself loads, so our loops and ATen's share one
# thread pool and one thread count. Without that libgomp the sources stay
# serial (and say so at configure time).
function(mmgen_torch_openmp target)
  set(_gomp "${TORCH_INSTALL_PREFIX}/lib/libgomp.so.1")
  if(NOT EXISTS "${_gomp}")
    message(WARNING "${_gomp} not found: ${ARGN} of ${target} run single-threaded")
    return()
  endif()
  set_source_files_properties(${ARGN} TARGET_DIRECTORY ${target} PROPERTIES
    COMPILE_OPTIONS -fopenmp SKIP_PRECOMPILE_HEADERS ON)
  target_link_libraries(${target} PRIVATE "${_gomp}")
endfunction()

