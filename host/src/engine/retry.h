// Retry delays: bounded exponential backoff with jitter. Pure.
#pragma once

#include <random>

#include "common/time.h"
#include "config/config.h"

namespace jobhost::engine {

// The un-jittered wait before retry number `retry` (1 = the first retry, i.e.
// attempt 2): min(max_delay, initial_delay * multiplier^(retry-1)).
Duration backoff_ceiling(const config::RetryPolicy& policy, int retry);

// The wait before retry number `retry`, with the policy's jitter applied to
// the ceiling d: full = uniform in [0, d], equal = d/2 + uniform in [0, d/2],
// none = d.
Duration retry_delay(const config::RetryPolicy& policy, int retry, std::mt19937_64& rng);

}  // namespace jobhost::engine
