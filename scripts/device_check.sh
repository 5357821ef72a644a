#!/usr/bin/env bash
# GPU checks for kernels/ (and one GRPO step when the whole build is possible).
#
#   scripts/device_check.sh prepare   # HERE, on the CPU machine with internet:
#                                     # fills .device/ (git-ignored via
#                                     # .git/info/exclude) with googletest's
#                                     # sources and the Debian .deb files the
#                                     # full build needs.
#   scripts/device_check.sh run       # ON THE GPU MACHINE (no internet, torch
#                                     # 2.11 in python3, nvcc, cmake, ninja;
#                                     # no Debian -dev packages), with .device
#                                     # carried along.  Under 8 minutes.
#
# `run` does, in order, and prints a table at the end:
#   1. a kernels-only build (kernels/ + core/error.cpp + the kernel tests and
#      benchmarks) against the machine's torch and carried googletest, with
#      CUDA for sm_90: needs nothing else, so it always works;
#   2. `ctest -L gpu`: every CUDA kernel against its CPU reference;
#   3. the kernel benchmarks (logprob, moe, rmsnorm) in bf16;
#   4. if .device/debs holds the Debian packages and at most 200 s have
#      gone: the full zerorl build (180 s at most) with them unpacked under
#      /tmp/zr-deps, and one GRPO step of the tiny recipe (60 s at most);
#      otherwise it says it skipped this and why.  Steps 1-3 take about
#      3-4 minutes on 16 cores (estimate: never run on a GPU machine yet);
#      the whole script stays under 8 minutes by these bounds.
# Output also goes to $OUT (when set) so the logs come back.  Knobs (for a
# dry run of step 1 on a CPU machine): ZR_PYTHON (python with torch; default
# python3), ZR_SKIP_FULL=1 (skip step 4).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
dev=.device
mode=${1:-run}

# Debian (bookworm) packages the full build needs beyond what the CUDA +
# PyTorch image has: the -dev packages of scripts/setup.sh and the libraries
# they link, picked from `apt-cache depends --recurse` by hand (the automatic
# closure drags in LLVM, flang and X11: 325 MB, over the 64 MiB carry limit).
# About 40 MB of .deb files.
full_pkgs=(hdf5-helpers libaec0 libcln-dev libcln6 libcurl3-gnutls libevent-2.1-7 libevent-core-2.1-7
           libevent-pthreads-2.1-7 libfabric1 libginac-dev libginac11 libgmp-dev libgmp10 libgmpxx4ldbl
           libgtest-dev libhdf5-103-1 libhdf5-cpp-103-1 libhdf5-dev libhdf5-hl-100 libhdf5-hl-cpp-100
           libhwloc15 libibverbs1 libjpeg62-turbo libltdl7 libmunge2 libnl-3-200 libnl-route-3-200
           libnuma-dev libnuma1 libopenmpi-dev libopenmpi3 libpciaccess0 libpcre2-16-0 libpcre2-32-0
           libpcre2-8-0 libpcre2-dev libpcre2-posix3 libpmix-dev libpmix2 libpng-dev libpng16-16
           libpsm-infinipath1 libpsm2-2 librdmacm1 libsz2 libtextwrap1 libucx0 libxxhash-dev libxxhash0
           libyaml-cpp-dev libyaml-cpp0.7 nlohmann-json3-dev openmpi-bin openmpi-common
           libicu-dev libicu72 icu-devtools)

if [ "$mode" = prepare ]; then
  rm -rf "$dev/debs" && mkdir -p "$dev/debs"
  grep -qx '/.device/' .git/info/exclude 2>/dev/null || echo '/.device/' >> .git/info/exclude
  rm -rf "$dev/googletest" && cp -r /usr/src/googletest "$dev/googletest"
  (cd "$dev/debs" && apt-get download "${full_pkgs[@]}" >/dev/null 2>&1) ||
    { echo "apt-get download failed (apt-get update first?)" >&2; exit 1; }
  echo "prepared $dev: $(ls "$dev/debs" | wc -l) packages; $(du -sh "$dev" | cut -f1) in all"
  echo "carry it: run(command='scripts/device_check.sh run', carry=['.device'], timeout_s=540)"
  exit 0
fi
[ "$mode" = run ] || { echo "usage: $0 prepare|run" >&2; exit 2; }

out=${OUT:-/tmp/zr-device-out}
mkdir -p "$out"
log=$out/device_check.log
exec > >(tee "$log") 2>&1
t_start=$(date +%s)
declare -a rows
row() { rows+=("$(printf '%-34s %-8s %s' "$1" "$2" "$3")"); }
elapsed() { echo "$(( $(date +%s) - t_start ))s"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
py=${ZR_PYTHON:-$(command -v python3)}
torch_prefix=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
echo "torch $("$py" -c 'import torch; print(torch.__version__, torch.cuda.is_available())') at $torch_prefix"
jobs=$(nproc)

# ---- 1. kernels-only build ------------------------------------------------------
kb=/tmp/zr-kernels-build
mkdir -p "$kb/src"
cat > "$kb/src/CMakeLists.txt" <<CMAKE
cmake_minimum_required(VERSION 3.25)
project(zr_kernels_device LANGUAGES C CXX CUDA)
set(CMAKE_CXX_STANDARD 17)
set(CMAKE_CUDA_STANDARD 17)
set(CMAKE_POSITION_INDEPENDENT_CODE ON)
set(ZR $here)
list(APPEND CMAKE_PREFIX_PATH $torch_prefix)
find_package(CUDAToolkit REQUIRED)
find_package(Torch REQUIRED)
string(REGEX REPLACE "-gencode[= ]arch=compute_[0-9a-z]+,code=[a-z_0-9]+" "" CMAKE_CUDA_FLAGS "\${CMAKE_CUDA_FLAGS}")
file(GLOB_RECURSE ksrc \${ZR}/kernels/*.cpp \${ZR}/kernels/*.cu)
add_library(zr_kernels STATIC \${ksrc} \${ZR}/core/error.cpp)
set_property(TARGET zr_kernels PROPERTY CUDA_ARCHITECTURES OFF)
target_compile_options(zr_kernels PRIVATE \$<\$<COMPILE_LANGUAGE:CUDA>:-gencode=arch=compute_90,code=sm_90 -lineinfo --expt-relaxed-constexpr>)
target_include_directories(zr_kernels PUBLIC \${ZR})
target_compile_definitions(zr_kernels PUBLIC ZERORL_WITH_CUDA=1)
target_link_libraries(zr_kernels PUBLIC \${TORCH_LIBRARIES} CUDA::cublas CUDA::cudart)
set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
add_subdirectory($here/$dev/googletest googletest)
enable_testing()
include(GoogleTest)
file(GLOB cpu_tests \${ZR}/tests/kernels/*_test.cpp)
list(REMOVE_ITEM cpu_tests \${ZR}/tests/kernels/gpu_kernels_test.cpp \${ZR}/tests/kernels/router_hf_python_test.cpp)
add_executable(zr_kernels_tests \${cpu_tests})
add_executable(zr_kernels_gpu_tests \${ZR}/tests/kernels/gpu_kernels_test.cpp)
foreach(t zr_kernels_tests zr_kernels_gpu_tests)
  target_link_libraries(\${t} PRIVATE zr_kernels GTest::gtest GTest::gtest_main)
endforeach()
gtest_discover_tests(zr_kernels_tests DISCOVERY_MODE PRE_TEST PROPERTIES LABELS kernels)
gtest_discover_tests(zr_kernels_gpu_tests DISCOVERY_MODE PRE_TEST PROPERTIES LABELS gpu)
foreach(b logprob moe rmsnorm)
  add_executable(bench_kernels_\${b} \${ZR}/bench/kernels_\${b}.cpp)
  target_link_libraries(bench_kernels_\${b} PRIVATE zr_kernels)
endforeach()
CMAKE
if [ ! -d "$dev/googletest" ]; then
  echo "no $dev/googletest: run 'scripts/device_check.sh prepare' here first and carry .device"
  row "kernels build" FAIL "googletest sources not carried"
else
  t0=$(date +%s)
  if cmake -S "$kb/src" -B "$kb/build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CUDA_COMPILER=$(command -v nvcc || echo /usr/local/cuda/bin/nvcc) >"$out/kernels_configure.log" 2>&1 &&
     cmake --build "$kb/build" -j "$jobs" >"$out/kernels_build.log" 2>&1; then
    row "kernels build (sm_90)" ok "$(( $(date +%s) - t0 ))s"
  else
    tail -40 "$out/kernels_configure.log" "$out/kernels_build.log" 2>/dev/null
    row "kernels build (sm_90)" FAIL "see kernels_build.log"
  fi
fi

# ---- 2. gpu tests --------------------------------------------------------------
if [ -x "$kb/build/zr_kernels_gpu_tests" ]; then
  if ctest --test-dir "$kb/build" -L gpu --no-tests=error --output-on-failure --timeout 300 >"$out/ctest_gpu.log" 2>&1; then
    row "ctest -L gpu" ok "$(grep -Eo '[0-9]+ tests passed|100% tests passed.*' "$out/ctest_gpu.log" | head -1)"
  else
    grep -E "Failure|FAILED|Expected|Which is|error" "$out/ctest_gpu.log" | head -60
    row "ctest -L gpu" FAIL "$(grep -Eo '[0-9]+ tests failed out of [0-9]+' "$out/ctest_gpu.log" | head -1)"
  fi
  grep -q "SKIPPED\|Skipped" "$out/ctest_gpu.log" && row "  (skips)" WARN "some gpu tests skipped: $(grep -c Skipped "$out/ctest_gpu.log")"
  "$kb/build/zr_kernels_tests" >"$out/kernels_cpu_tests.log" 2>&1 && row "kernels CPU tests" ok "" ||
    row "kernels CPU tests" FAIL "see kernels_cpu_tests.log"
fi

# ---- 3. benchmarks -------------------------------------------------------------
bench() {  # name, command...
  local name=$1; shift
  if [ -x "$1" ] && timeout 120 "$@" >"$out/$name.log" 2>&1; then
    cat "$out/$name.log"
    row "$name" ok "$(grep -E 'speed-up|^chunked|^naive' "$out/$name.log" | tr -s ' ' | paste -sd ';' -)"
  else
    cat "$out/$name.log" 2>/dev/null | tail -20
    row "$name" FAIL "see $name.log"
  fi
}
bench bench_logprob_bf16 "$kb/build/bench_kernels_logprob" --device cuda --dtype bfloat16 --N 16384 --V 32768 --D 1024 --chunk 4096 --reps 3
bench bench_logprob_bf16_v152k "$kb/build/bench_kernels_logprob" --device cuda --dtype bfloat16 --N 16384 --V 151936 --D 2048 --chunk 2048 --reps 2
bench bench_moe_bf16 "$kb/build/bench_kernels_moe" --device cuda --dtype bfloat16 --T 8192 --D 2048 --F 1408 --E 64 --K 6 --reps 5
bench bench_rmsnorm_bf16 "$kb/build/bench_kernels_rmsnorm" --device cuda --dtype bfloat16 --rows 16384 --D 4096 --reps 20

# ---- 4. full build + one GRPO step ----------------------------------------------
if [ -n "${ZR_SKIP_FULL:-}" ]; then
  row "GRPO step (tiny recipe)" SKIP "ZR_SKIP_FULL set"
elif ! ls "$dev"/debs/*.deb >/dev/null 2>&1; then
  row "GRPO step (tiny recipe)" SKIP "no .device/debs carried: run 'prepare' here"
elif [ $(( $(date +%s) - t_start )) -gt 200 ]; then
  row "GRPO step (tiny recipe)" SKIP "time: $(elapsed) already spent"
else
  deps=/tmp/zr-deps
  mkdir -p "$deps"
  for f in "$dev"/debs/*.deb; do dpkg -x "$f" "$deps"; done
  multi=$deps/usr/lib/x86_64-linux-gnu
  # Absolute symlinks inside the unpacked packages point at /usr/...; repoint them.
  find "$deps" -type l -lname '/*' | while read -r l; do ln -sfn "$deps$(readlink "$l")" "$l"; done
  export PKG_CONFIG_PATH=$multi/pkgconfig:$deps/usr/share/pkgconfig
  export LD_LIBRARY_PATH=$multi:$multi/openmpi/lib:$multi/hdf5/serial${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  export OPAL_PREFIX=$deps/usr/lib/x86_64-linux-gnu/openmpi PATH=$deps/usr/bin:$PATH
  fb=/tmp/zr-full-build
  t0=$(date +%s)
  if cmake -S . -B "$fb" -G Ninja -DCMAKE_BUILD_TYPE=Release -DZERORL_PYTHON="$py" \
        -DCMAKE_PREFIX_PATH="$deps/usr;$multi/cmake" -DCMAKE_INCLUDE_PATH="$deps/usr/include;$deps/usr/include/hdf5/serial" \
        -DCMAKE_LIBRARY_PATH="$multi;$multi/hdf5/serial" -DMPI_C_COMPILER="$deps/usr/bin/mpicc" \
        -DHDF5_C_COMPILER_EXECUTABLE="$deps/usr/bin/h5cc" >"$out/full_configure.log" 2>&1 &&
     timeout 180 cmake --build "$fb" -j "$jobs" --target zerorl >"$out/full_build.log" 2>&1; then
    row "full build" ok "$(( $(date +%s) - t0 ))s"
    run_dir=/tmp/zr-grpo-step
    # The tiny recipe names no device (at the time of writing the recipe has
    # no such key); ZR_GRPO_OVERRIDES adds e.g. "device=cuda" once it exists.
    # Its policy.init (recipes/base-tiny.h5) must exist: `zerorl pretrain`.
    if timeout 60 "$fb/zerorl" train recipes/r1zero-tiny.yaml train.steps=1 run.dir="$run_dir" \
          ${ZR_GRPO_OVERRIDES:-} >"$out/grpo_step.log" 2>&1; then
      row "GRPO step (tiny recipe)" ok "$(tail -1 "$out/grpo_step.log" | cut -c1-80)"
    else
      tail -30 "$out/grpo_step.log"
      row "GRPO step (tiny recipe)" FAIL "see grpo_step.log"
    fi
  else
    tail -30 "$out/full_configure.log" "$out/full_build.log" 2>/dev/null
    row "full build" FAIL "see full_configure.log / full_build.log"
  fi
fi

echo
echo "==== device check ($(elapsed)) ===="
printf '%-34s %-8s %s\n' "step" "result" "detail"
for r in "${rows[@]}"; do echo "$r"; done
