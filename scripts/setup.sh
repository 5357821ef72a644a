#!/usr/bin/env bash
# Installs everything zerorl needs on a fresh Debian 12 machine (root, no GPU
# needed).  Idempotent: every step checks first and skips what is present, so
# it is safe to rerun and costs seconds when nothing is missing.
#
#   Debian packages : compilers' companions (Open MPI, yaml-cpp, HDF5, GoogleTest,
#                     ccache, GiNaC/CLN/GMP, RE2, protobuf, ISA-L); README's
#                     dependency table says why each is there
#   Python venv     : torch==2.11.0 (LibTorch for the C++ build) plus the test
#                     oracles (transformers, tokenizers, math-verify, trl,
#                     tensorboard)
#
# The venv is gigabytes (torch's CUDA 13 libraries), so it lives in a cache
# outside the clone, keyed by the pinned versions; `.venv` in the repository is
# a symbolic link to it.  A fresh clone on a warm machine links it in seconds;
# a new machine builds it once.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"

log() { printf '[setup] %s\n' "$*"; }

# ---- Debian packages ----------------------------------------------------------
apt_pkgs=(build-essential cmake ninja-build ccache pkg-config git
          openmpi-bin libopenmpi-dev libyaml-cpp-dev libhdf5-dev hdf5-tools
          libgtest-dev libgmock-dev libgmp-dev libginac-dev libcln-dev
          libpcre2-dev libicu-dev nlohmann-json3-dev libxxhash-dev libpng-dev zlib1g-dev
          libprotobuf-dev protobuf-compiler libisal-dev
          python3-venv clang libclang-rt-14-dev jq)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  log "installing Debian packages: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; else SUDO=; fi
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "Debian packages present"
fi

# ---- Python virtual environment (cached outside the clone) ---------------------
PY=${ZERORL_PYTHON:-python3}
reqs="$here/scripts/requirements.txt"
pyver=$($PY -c 'import sys; print(f"{sys.version_info[0]}{sys.version_info[1]}")')
key=$( (cat "$reqs"; echo "py$pyver") | sha256sum | cut -c1-12)
cache=${ZERORL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/zerorl}
venv="$cache/venv-py$pyver-$key"
if [ ! -f "$venv/.complete" ]; then
  log "building Python environment $venv (torch and test oracles; first time only)"
  rm -rf "$venv"
  mkdir -p "$cache"
  $PY -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q --progress-bar off -r "$reqs"
  touch "$venv/.complete"
else
  log "Python environment present ($venv)"
fi
if [ "$(readlink .venv 2>/dev/null)" != "$venv" ]; then
  rm -rf .venv
  ln -s "$venv" .venv
fi
"$venv/bin/python" - <<'PYEOF'
import torch
print(f"[setup] torch {torch.__version__} (CUDA variant {torch.version.cuda}), cmake prefix {torch.utils.cmake_prefix_path}")
PYEOF
