// rate_gate: every message rate limit of one connection, and the one count
// of messages refused in a row that ends it.
// Owns: the connection's own token bucket and, once a limited type is seen,
// one bucket per limits.message_types entry. Uses: Admission's shared
// per-address and per-user buckets, Stats (rate_limited), the Session it
// closes with 1008 after limits.rate_limit_close_after refusals in a row.
// The count goes back to zero only when a handler actually runs: a client
// that alternates a refused type with one that fails to parse, or with
// another refused limit, still reaches the close (before, two counters reset
// each other's way). No clock, no lws: the caller passes monotonic ms.
#pragma once

#include "config/config.hpp"
#include "server/admission.hpp"
#include "session/message_gate.hpp"
#include "session/session.hpp"
#include "util/token_bucket.hpp"
#include "stats/stats.hpp"

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

namespace wsrelay::connection {

class RateGate final : public session::MessageGate {
 public:
  RateGate(server::Admission& admission, const config::Limits& limits, stats::Stats* stats);

  // The session refused messages close (set once it exists).
  void bind(session::Session& s) { session_ = &s; }

  // A whole message, before the script sees it: the connection's bucket,
  // then the shared per-address and per-user ones.
  Answer admit_message(std::int64_t now_ms);
  // A message whose type is limited (limits.message_types), once decoded.
  Answer admit_type(std::string_view type, std::int64_t now_ms) override;
  void handler_ran() override { refused_in_a_row_ = 0; }

  int refused_in_a_row() const { return refused_in_a_row_; }

 private:
  Answer refuse(std::int64_t retry_after_ms, std::string_view what);

  server::Admission& admission_;
  const config::Limits& limits_;
  stats::Stats* stats_;
  session::Session* session_ = nullptr;
  util::TokenBucket bucket_;
  // Made on the first limited message: connections of endpoints whose
  // clients never send a limited type pay one pointer.
  std::unique_ptr<std::vector<util::TokenBucket>> type_buckets_;
  int refused_in_a_row_ = 0;
};

}  // namespace wsrelay::connection
