// Unit tests for util::TokenBucket: refill, refusal, and a retry time that
// saturates instead of overflowing (issue 12: a rate of 1e-300 answered
// "retry after -9223372036854775807 ms").
#include <catch2/catch.hpp>

#include "util/token_bucket.hpp"

#include <cstdint>
#include <limits>

using wsrelay::util::TokenBucket;

TEST_CASE("token bucket: burst, refusal, refill", "[token_bucket]") {
  TokenBucket b(2.0, 2.0);  // 2/s, burst 2
  CHECK(b.take(1000));
  CHECK(b.take(1000));
  CHECK_FALSE(b.take(1000));
  CHECK(b.retry_after_ms(1000) == 501);  // one token at 2/s: 500 ms, rounded up
  CHECK(b.take(1500));
  CHECK(TokenBucket().take(1));  // rate 0: off
  CHECK(TokenBucket().retry_after_ms(1) == 0);
}

TEST_CASE("token bucket: retry_after_ms saturates for a tiny rate", "[token_bucket]") {
  TokenBucket b(1e-300, 1.0);
  CHECK(b.take(1000));
  CHECK_FALSE(b.take(1000));
  CHECK(b.retry_after_ms(1000) == std::numeric_limits<std::int64_t>::max());
}

TEST_CASE("token bucket: the smallest accepted rate gives a finite wait", "[token_bucket]") {
  TokenBucket b(0.001, 1.0);
  CHECK(b.take(1000));
  CHECK(b.retry_after_ms(1000) == 1000001);
}
