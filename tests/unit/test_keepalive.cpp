// session::Liveness: the keepalive decisions of the per-vhost sweep, on a
// made-up clock (no sockets, no sleeping).
#include <catch2/catch.hpp>

#include "session/keepalive.hpp"

#include <cstdint>
#include <limits>

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

// --- token expiry ---------------------------------------------------------------
// session::Expiry: when the sweep closes a session whose token ran out
// (wall-clock Unix milliseconds; docs/protocol.md, close code 4001).

using wsrelay::session::Expiry;

TEST_CASE("expiry: unset never fires; set fires from its instant on; clear undoes it", "[keepalive][expiry]") {
  Expiry e;
  CHECK_FALSE(e.set());
  CHECK_FALSE(e.due(0));
  CHECK_FALSE(e.due(INT64_MAX));
  e.expire_at(1'800'000'000'000);
  CHECK(e.set());
  CHECK(e.at_ms() == 1'800'000'000'000);
  CHECK_FALSE(e.due(1'799'999'999'999));
  CHECK(e.due(1'800'000'000'000));  // at exp the verifier refuses the token too (now >= exp)
  CHECK(e.due(1'900'000'000'000));
  // A refresh moves it; a token without exp clears it.
  e.expire_at(1'800'000'060'000);
  CHECK_FALSE(e.due(1'800'000'000'000));
  e.clear();
  CHECK_FALSE(e.set());
  CHECK_FALSE(e.due(INT64_MAX));
}

TEST_CASE("expiry: Unix seconds become milliseconds, rounded up, saturating", "[keepalive][expiry]") {
  CHECK(Expiry::ms_from_seconds(1'800'000'000) == 1'800'000'000'000);
  CHECK(Expiry::ms_from_seconds(1'800'000'000.25) == 1'800'000'000'250);
  // Rounded up: the session never ends before the verifier would refuse the token.
  CHECK(Expiry::ms_from_seconds(1'800'000'000.0004) == 1'800'000'000'001);
  CHECK(Expiry::ms_from_seconds(-1.5) == -1500);
  CHECK(Expiry::ms_from_seconds(0) == 0);
  // Times beyond int64 milliseconds: never (verify_hs256 never refuses
  // exp 1e300 either) or always.
  CHECK(Expiry::ms_from_seconds(1e300) == Expiry::kNever);
  CHECK(Expiry::ms_from_seconds(9.3e15) == Expiry::kNever);
  CHECK(Expiry::ms_from_seconds(std::numeric_limits<double>::infinity()) == Expiry::kNever);
  CHECK(Expiry::ms_from_seconds(-1e300) == std::numeric_limits<std::int64_t>::min());
  CHECK(Expiry::ms_from_seconds(-std::numeric_limits<double>::infinity()) ==
        std::numeric_limits<std::int64_t>::min());
  // Not a time at all.
  CHECK_FALSE(Expiry::ms_from_seconds(std::numeric_limits<double>::quiet_NaN()).has_value());

  Expiry e;
  e.expire_at(*Expiry::ms_from_seconds(1e300));
  CHECK_FALSE(e.set());  // as good as no exp
  e.expire_at(*Expiry::ms_from_seconds(-1e300));
  CHECK(e.due(std::numeric_limits<std::int64_t>::min()));
}

TEST_CASE("expiry: the close code is 4001, distinct from every code the relay sends", "[keepalive][expiry]") {
  CHECK(wsrelay::session::kTokenExpiredCloseCode == 4001);
  CHECK(wsrelay::session::kTokenExpiredCloseReason == "token expired");
}
