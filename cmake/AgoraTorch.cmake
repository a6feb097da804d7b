# Finds LibTorch inside the pinned torch wheel and undoes the wheel's known side effects
# (see ../shared/notes/libtorch.md §1.1). Provides the imported target agora::torch.

if(NOT AGORA_PYTHON)
  message(FATAL_ERROR "AGORA_PYTHON is not set: configure through `make` (tools/configure.sh) or pass "
                      "-DAGORA_PYTHON=<venv>/bin/python of the venv holding torch==2.11.0")
endif()
execute_process(
  COMMAND "${AGORA_PYTHON}" -c "import torch; print(torch.utils.cmake_prefix_path, end='')"
  OUTPUT_VARIABLE AGORA_TORCH_CMAKE_PREFIX
  RESULT_VARIABLE _agora_torch_rc)
if(NOT _agora_torch_rc EQUAL 0)
  message(FATAL_ERROR "${AGORA_PYTHON} cannot import torch; run tools/bootstrap.sh")
endif()
list(APPEND CMAKE_PREFIX_PATH "${AGORA_TORCH_CMAKE_PREFIX}")

# Without this, torch's cuda.cmake autodetects the local GPU via try_run, which fails on GPU-less machines.
# Our own kernels get their architectures per target (AGORA_CUDA_ARCHS); this list only feeds torch's flags,
# which we strip below.
set(TORCH_CUDA_ARCH_LIST "8.0;9.0")
find_package(Torch REQUIRED)
if(NOT Torch_VERSION VERSION_EQUAL AGORA_TORCH_VERSION)
  message(FATAL_ERROR "expected torch ${AGORA_TORCH_VERSION} (tools/versions.env), found ${Torch_VERSION}")
endif()

# torch appends -gencode flags to CMAKE_CUDA_FLAGS and turns CMAKE_CUDA_ARCHITECTURES off globally: undo both
# so every CUDA target builds exactly the architectures we ask for.
string(REGEX REPLACE "-gencode[= ]arch=[^ ]+ *" "" CMAKE_CUDA_FLAGS "${CMAKE_CUDA_FLAGS}")
set(CMAKE_CUDA_ARCHITECTURES "${AGORA_CUDA_ARCHS}")

# Never record a NEEDED libcuda.so.1: it does not exist on GPU-less machines and the runtime dlopens it anyway.
list(FILTER TORCH_LIBRARIES EXCLUDE REGEX "libcuda\\.so")

add_library(agora_torch INTERFACE)
add_library(agora::torch ALIAS agora_torch)
# TORCH_LIBRARIES wraps libtorch_cuda in --no-as-needed, so the CUDA backend registers itself when a GPU exists.
target_link_libraries(agora_torch INTERFACE ${TORCH_LIBRARIES})
# libtorch.so exports its own (manylinux-built) copies of std::filesystem functions, and its remove_all crashes
# when called from our code. Symbols bind to the first library in NEEDED order, so put the system libstdc++
# ahead of libtorch: link options come before the libraries on the link line.
target_link_options(agora_torch INTERFACE "LINKER:--push-state,--no-as-needed" "-lstdc++" "LINKER:--pop-state")
target_compile_options(agora_torch INTERFACE $<$<COMPILE_LANGUAGE:CXX>:${TORCH_CXX_FLAGS}>)
# The runtime path of the venv's torch libraries, so build/agora runs without LD_LIBRARY_PATH.
get_filename_component(AGORA_TORCH_LIB_DIR "${AGORA_TORCH_CMAKE_PREFIX}/../../lib" ABSOLUTE)
