#!/usr/bin/env bash
# Launch zerorl on many processes (and nodes) with Open MPI.
#   scripts/launch_mpirun.sh NP [--hostfile FILE] -- train recipes/r1zero-hf-moe.yaml key=value ...
# One rank per GPU on GPU nodes (the recipe's comm: auto picks NCCL); on CPU
# machines one rank per core pair, each with one OpenMP thread.
set -euo pipefail
np=${1:?usage: launch_mpirun.sh NP [mpirun options] -- zerorl-args...}
shift
mpi_args=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do mpi_args+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
root_flag=()
[ "$(id -u)" -eq 0 ] && root_flag=(--allow-run-as-root)
exec mpirun -np "$np" "${root_flag[@]}" --bind-to none \
  -x OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}" -x LD_LIBRARY_PATH \
  "${mpi_args[@]}" "$here/build/zerorl" "$@"
