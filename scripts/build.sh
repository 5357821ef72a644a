#!/usr/bin/env bash
# Configure and build zerorl into build/ (or $ZERORL_BUILD_DIR) with Ninja and
# ccache.  Assumes scripts/setup.sh has run.  Extra arguments go to cmake
# configure (e.g. -DZERORL_CUDA=OFF).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
build=${ZERORL_BUILD_DIR:-build}
jobs=${ZERORL_JOBS:-$(nproc)}
export CCACHE_DIR=${CCACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/zerorl/ccache}
export CCACHE_MAXSIZE=${CCACHE_MAXSIZE:-8G}
export CCACHE_SLOPPINESS=${CCACHE_SLOPPINESS:-pch_defines,time_macros,include_file_mtime,include_file_ctime}
# Hits across clones in different folders (CI clones afresh each run): paths
# relative to the clone, and the working directory left out of the hash even
# with -g (debug info then names the first clone's folder; harmless).
export CCACHE_BASEDIR="$here"
export CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
if [ ! -f "$build/build.ninja" ]; then
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@"
fi
cmake --build "$build" -j "$jobs"
