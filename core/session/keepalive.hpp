// keepalive: when to ping a silent client and when to give up on it.
// Owns: one connection's liveness stamps (last frame received, last ping
// sent). Uses: nothing (no lws, no clock): the protocol passes monotonic
// milliseconds in, and one coarse sweep per vhost (plugins/protocol_wsrelay)
// asks every connection once a second what to do.
//
// Why not lws's own validity timer (retry_and_idle_policy): lws 4.1 keeps it
// as one sorted-list entry per connection and inserts by walking the list, so
// opening N connections cost O(N²) and every received message re-inserted its
// connection's entry (bench/findings.md). Here a frame received costs one
// store, and the sweep is O(N) once a second.
//
// Also here: Expiry, the other question the sweep asks each connection once a
// second: has the token it authenticated with run out?
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <string_view>

namespace wsrelay::session {

struct KeepalivePolicy {
  std::int64_t interval_ms = 25000;  // heartbeat.interval: silence after which the client is pinged
  std::int64_t timeout_ms = 60000;   // heartbeat.timeout: silence after which it is hung up
};

enum class KeepaliveAction { None, Ping, HangUp };

class Liveness {
 public:
  explicit Liveness(std::int64_t now_ms = 0) : last_active_ms_(now_ms) {}

  // Any frame from the client (data or pong) is a sign of life.
  void seen(std::int64_t now_ms) { last_active_ms_ = now_ms; }
  std::int64_t last_active_ms() const { return last_active_ms_; }

  // Silent for `timeout` → HangUp. Silent for `interval` → Ping, then again
  // every `interval` while the silence lasts (a ping answered resets it).
  KeepaliveAction check(std::int64_t now_ms, const KeepalivePolicy& policy) {
    const std::int64_t silent = now_ms - last_active_ms_;
    if (silent >= policy.timeout_ms) return KeepaliveAction::HangUp;
    if (silent < policy.interval_ms) return KeepaliveAction::None;
    if (now_ms - std::max(last_active_ms_, last_ping_ms_) < policy.interval_ms) return KeepaliveAction::None;
    last_ping_ms_ = now_ms;
    return KeepaliveAction::Ping;
  }

 private:
  std::int64_t last_active_ms_;
  std::int64_t last_ping_ms_ = 0;
};

// The close a session gets when its token expires. In the application range
// (4000-4999, RFC 6455 7.4.2) so that a client library can tell it from every
// close the relay itself sends: 1008 already means "rate limit" or "slow
// consumer" (back off), 1001 "shutting down" (retry elsewhere), while this one
// means "fetch a fresh token, then reconnect". 4000 is taken by the example
// client libraries (their own "heartbeat timeout"/"handshake failed") and by
// examples/agent-chat ("replaced"); 4001 is used by no dialect shipped here.
inline constexpr int kTokenExpiredCloseCode = 4001;
inline constexpr std::string_view kTokenExpiredCloseReason = "token expired";

// When the credentials a session authenticated with stop holding: a JWT's
// exp plus jwt.leeway, set by the script that verified it (session:set_expiry,
// docs/lua-api.md). Wall-clock Unix milliseconds, unlike Liveness: exp is a
// NumericDate, and the monotonic clock has no relation to it. A session
// re-authenticating replaces it; a token without exp clears it.
class Expiry {
 public:
  static constexpr std::int64_t kNever = std::numeric_limits<std::int64_t>::max();

  // Unix seconds as a token or a script states them (fractional, huge or
  // negative all occur) to milliseconds. Rounded up, so the session never
  // ends before the verifier would refuse the token (it refuses once
  // now >= exp + leeway); beyond int64 milliseconds it saturates: kNever
  // (verify_hs256 never refuses exp 1e300 either) or the earliest time.
  // NaN is no time at all: nullopt.
  static std::optional<std::int64_t> ms_from_seconds(double unix_s) {
    if (std::isnan(unix_s)) return std::nullopt;
    const double ms = std::ceil(unix_s * 1000.0);
    // 2^63 exactly: every double below it converts without overflow.
    constexpr double kLimit = 9223372036854775808.0;
    if (ms >= kLimit) return kNever;
    if (ms < -kLimit) return std::numeric_limits<std::int64_t>::min();
    return static_cast<std::int64_t>(ms);
  }

  void expire_at(std::int64_t unix_ms) { at_ms_ = unix_ms; }
  void clear() { at_ms_ = kNever; }
  bool set() const { return at_ms_ != kNever; }
  std::int64_t at_ms() const { return at_ms_; }

  // True from the expiry instant on (the sweep then closes the session).
  bool due(std::int64_t now_unix_ms) const { return at_ms_ != kNever && now_unix_ms >= at_ms_; }

 private:
  std::int64_t at_ms_ = kNever;
};

}  // namespace wsrelay::session
