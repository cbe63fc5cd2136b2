// Unit tests for session::new_session_id: 16 lowercase hex digits from the
// kernel's CSPRNG (getrandom), distinct from one connection to the next.
#include <catch2/catch.hpp>

#include "session/session.hpp"

#include <set>
#include <string>

TEST_CASE("session id: 16 lowercase hex digits, distinct", "[session]") {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = wsrelay::session::new_session_id();
    REQUIRE(id.size() == 16);
    CHECK(id.find_first_not_of("0123456789abcdef") == std::string::npos);
    seen.insert(id);
  }
  // 64 random bits: a repeat among 1,000 would mean the source is not random.
  CHECK(seen.size() == 1000);
  // Not every id the same shape: all 16 hex digits turn up somewhere.
  std::set<char> digits;
  for (const auto& id : seen) digits.insert(id.begin(), id.end());
  CHECK(digits.size() == 16);
}
