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
#pragma once

#include <algorithm>
#include <cstdint>

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

}  // namespace wsrelay::session
