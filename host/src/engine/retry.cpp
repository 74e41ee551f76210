#include "engine/retry.h"

#include <algorithm>
#include <cmath>

namespace jobhost::engine {

Duration backoff_ceiling(const config::RetryPolicy& policy, int retry) {
  double ms = static_cast<double>(policy.initial_delay.count()) *
              std::pow(policy.multiplier, std::max(0, retry - 1));
  double cap = static_cast<double>(policy.max_delay.count());
  return Duration(static_cast<Duration::rep>(std::min(ms, cap)));  // min() also tames inf
}

Duration retry_delay(const config::RetryPolicy& policy, int retry, std::mt19937_64& rng) {
  Duration ceiling = backoff_ceiling(policy, retry);
  auto uniform = [&](Duration::rep hi) {
    return std::uniform_int_distribution<Duration::rep>(0, std::max<Duration::rep>(0, hi))(rng);
  };
  switch (policy.jitter) {
    case config::Jitter::full:
      return Duration(uniform(ceiling.count()));
    case config::Jitter::equal:
      return Duration(ceiling.count() / 2 + uniform(ceiling.count() - ceiling.count() / 2));
    case config::Jitter::none:
      break;
  }
  return ceiling;
}

}  // namespace jobhost::engine
