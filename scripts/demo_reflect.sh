#!/usr/bin/env bash
# The second CPU reproduction (issue 19): `scripts/demo.sh reflect`, pure RL
# on sums of 2-4 three-digit numbers from a tiny base that can reflect but rarely does.
# Results and the runs tried: docs/REPRODUCTION.md, "Reproduction II".
#
#   ./scripts/demo_reflect.sh                 # the whole thing
#   ./scripts/demo_reflect.sh train.steps=20  # overrides go to the train recipe
exec "$(dirname "${BASH_SOURCE[0]}")/demo.sh" reflect "$@"
