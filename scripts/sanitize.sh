#!/usr/bin/env bash
# The unit tests of the code that reads untrusted input (data/: JSONL, recipes'
# data sections, tokenizer.json, chat templates; rewards/: the math grader,
# command and plug-in rewards) built with AddressSanitizer and UBSan and run:
#
#   scripts/sanitize.sh [BUILD_DIR]      (default build-asan/)
#
# A second CMake build with -DZERORL_SANITIZE=address,undefined and no CUDA;
# only zr_data_tests and zr_rewards_tests (they link no LibTorch) are built.
# Exit 0: clean; 1: a test failed or a sanitizer reported (the report is in
# the output).  Run by ctest as sanitize.data_rewards (label sanitize).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${1:-$here/build-asan}
cd "$here"
export CCACHE_DIR=${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zerorl/ccache}
export CCACHE_BASEDIR="$here" CCACHE_NOHASHDIR=1
if [ ! -f "$out/build.ninja" ]; then
  cmake -S . -B "$out" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DZERORL_CUDA=OFF \
    -DZERORL_SANITIZE=address,undefined >"$out.configure.log" 2>&1 ||
    { cat "$out.configure.log"; exit 1; }
fi
cmake --build "$out" -j "${ZERORL_JOBS:-$(nproc)}" --target zr_data_tests zr_rewards_tests
# CLN (GiNaC's numbers) keeps cache allocations alive until exit (see fuzz.sh).
printf 'leak:libcln.so\nleak:libginac.so\n' >"$out/lsan.supp"
export LSAN_OPTIONS="suppressions=$out/lsan.supp"
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=0:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
rc=0
for t in zr_data_tests zr_rewards_tests; do
  echo "== $t under ASan+UBSan"
  (cd "$out" && "$out/$t" --gtest_brief=1) || rc=1
done
exit $rc
