// session::Liveness: the keepalive decisions of the per-vhost sweep, on a
// made-up clock (no sockets, no sleeping).
#include <catch2/catch.hpp>

#include "session/keepalive.hpp"

using wsrelay::session::KeepaliveAction;
using wsrelay::session::KeepalivePolicy;
using wsrelay::session::Liveness;

namespace {
const KeepalivePolicy kPolicy{1000, 3000};  // heartbeat {"interval": 1, "timeout": 3}
}

TEST_CASE("keepalive: a silent client is pinged every interval, then hung up at the timeout", "[keepalive]") {
  Liveness live(10'000);
  CHECK(live.check(10'500, kPolicy) == KeepaliveAction::None);
  CHECK(live.check(11'000, kPolicy) == KeepaliveAction::Ping);
  CHECK(live.check(11'500, kPolicy) == KeepaliveAction::None);  // one ping per interval
  CHECK(live.check(12'000, kPolicy) == KeepaliveAction::Ping);
  CHECK(live.check(12'999, kPolicy) == KeepaliveAction::None);
  CHECK(live.check(13'000, kPolicy) == KeepaliveAction::HangUp);
  CHECK(live.check(20'000, kPolicy) == KeepaliveAction::HangUp);
}

TEST_CASE("keepalive: a client that answers pings (or sends anything) is never hung up", "[keepalive]") {
  Liveness live(0);
  for (std::int64_t now = 1000; now <= 60'000; now += 1000) {
    const KeepaliveAction action = live.check(now, kPolicy);
    REQUIRE(action != KeepaliveAction::HangUp);
    if (action == KeepaliveAction::Ping) live.seen(now + 20);  // its pong
  }
}

TEST_CASE("keepalive: a frame resets the silence; the next ping waits a full interval", "[keepalive]") {
  Liveness live(0);
  CHECK(live.check(1000, kPolicy) == KeepaliveAction::Ping);
  live.seen(1500);
  CHECK(live.check(2000, kPolicy) == KeepaliveAction::None);
  CHECK(live.check(2499, kPolicy) == KeepaliveAction::None);
  CHECK(live.check(2500, kPolicy) == KeepaliveAction::Ping);
  CHECK(live.check(4499, kPolicy) == KeepaliveAction::Ping);
  CHECK(live.check(4500, kPolicy) == KeepaliveAction::HangUp);
}
