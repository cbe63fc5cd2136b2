// token_bucket: the rate limiter behind limits.*messages_per_second — a
// bucket of `burst` tokens refilled at `rate` per second; a message takes one.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace wsrelay::util {

class TokenBucket {
 public:
  TokenBucket() = default;
  TokenBucket(double rate_per_second, double burst) : rate_(rate_per_second), burst_(burst), tokens_(burst) {}

  bool enabled() const { return rate_ > 0; }

  // now_ms: a monotonic clock in milliseconds.
  bool take(std::int64_t now_ms) {
    if (!enabled()) return true;
    refill(now_ms);
    if (tokens_ < 1.0) return false;
    tokens_ -= 1.0;
    return true;
  }

  // Milliseconds until one token is back (after a refused take()).
  // Saturates at kMaxRetryMs: a tiny rate makes the quotient huge (1e-300 gives
  // ~1e303), and casting a double beyond int64's range is undefined behaviour.
  // The config refuses such rates; this keeps the bucket defined on its own.
  static constexpr std::int64_t kMaxRetryMs = std::numeric_limits<std::int64_t>::max();
  std::int64_t retry_after_ms(std::int64_t now_ms) {
    if (!enabled()) return 0;
    refill(now_ms);
    if (tokens_ >= 1.0) return 0;
    const double ms = (1.0 - tokens_) * 1000.0 / rate_ + 1.0;
    // 2^63 is the first double above int64's range; NaN fails the test too.
    if (!(ms < 9223372036854775808.0)) return kMaxRetryMs;
    return static_cast<std::int64_t>(ms);
  }

 private:
  void refill(std::int64_t now_ms) {
    if (last_ms_ != 0 && now_ms > last_ms_) {
      tokens_ = std::min(burst_, tokens_ + static_cast<double>(now_ms - last_ms_) * rate_ / 1000.0);
    }
    last_ms_ = now_ms;
  }

  double rate_ = 0;
  double burst_ = 1;
  double tokens_ = 1;
  std::int64_t last_ms_ = 0;
};


}  // namespace wsrelay::util
