#!/usr/bin/env bash
# Install what is missing, build, and run the most complete end-to-end job
# zerorl has.  See README.md.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$here"
./scripts/setup.sh
./scripts/build.sh
echo "[demo] the R1-Zero trainer loop has not landed yet; running what exists:"
echo "[demo] generate a synthetic arithmetic task, then grade gold answers with the math grader"
mkdir -p runs/demo
./build/zerorl --help
