// Start-up checks that every rank of a job runs the same thing (issue 21,
// item 2).  Without them, ranks launched with a different optimizer.lr or
// policy.init train diverging replicas and exit 0, and ranks with a
// different train.steps hang in a collective at the end of the shorter run.
//
// Each function is a collective over `comm` (every rank calls it, in the same
// order) and throws the same zerorl::Error on every rank when the ranks
// disagree, so that whichever rank's message main() prints names the ranks
// and what differs.  Called from the training thread, like Comm itself.
#pragma once

#include <string>
#include <vector>

#include "trainer/checkpoint.h"

namespace zerorl {

class Comm;

// Keys a rank may set differently without changing what the job computes.
extern const std::vector<std::string> kPerRankKeys;  // log.level, rewards.threads

// Compares each rank's resolved recipe (Recipe::dump()) with rank 0's,
// ignoring kPerRankKeys; on a difference throws naming, per rank, the keys
// that differ (recipe_changed_keys).
void check_ranks_share_recipe(const std::string& recipe_yaml, Comm& comm);

// Compares the hash of each rank's weights (weights_hash) with rank 0's;
// on a difference throws naming the ranks and `what` (e.g. "policy.init X").
void check_ranks_share_weights(const NamedTensors& weights, const std::string& what, Comm& comm);

// Overwrites every rank's tensors with rank 0's, in place (as DDP does after
// loading): the replicas start bit-identical whatever each rank read.
void broadcast_from_rank0(const NamedTensors& tensors, Comm& comm);

}  // namespace zerorl
