#!/usr/bin/env bash
# Set up (idempotent), configure, build, and run the whole test suite.
# Exit status is ctest's: non-zero when any test fails.
#   ./scripts/test.sh            everything, as CI runs it
#   ./scripts/test.sh -L rewards only one label (ctest arguments pass through)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
t0=$(date +%s)
./scripts/setup.sh
t1=$(date +%s)
./scripts/build.sh
t2=$(date +%s)
build=${ZERORL_BUILD_DIR:-build}
# Torch's intra-op threads: two cores, and ctest runs two tests at once.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
rc=0
ctest --test-dir "$build" --output-on-failure -j "${ZERORL_TEST_JOBS:-2}" --timeout 900 "$@" || rc=$?
t3=$(date +%s)
echo "[test.sh] setup $((t1-t0)) s, build $((t2-t1)) s, tests $((t3-t2)) s"
exit $rc
