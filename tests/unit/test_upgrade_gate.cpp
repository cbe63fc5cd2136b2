// server/upgrade_gate: the decision on a WebSocket upgrade, without lws.
#include <catch2/catch.hpp>

#include "fakes/fake_wire.hpp"
#include "server/upgrade_gate.hpp"

#include <set>
#include <string>

using wsrelay::fakes::RelayFixture;
using wsrelay::server::UpgradeRequest;
using wsrelay::server::UpgradeVerdict;
namespace server = wsrelay::server;

namespace {

const char* kScript = "return { ping = function() return { type = 'pong' } end }";

UpgradeRequest good(std::string path = "/ws") {
  UpgradeRequest r;
  r.head.version = "HTTP/1.1";
  r.head.websocket_key = "dGhlIHNhbXBsZSBub25jZQ==";
  r.head.websocket_version = "13";
  r.path = std::move(path);
  r.remote = "10.0.0.9";
  return r;
}

server::ProtocolServed listener(std::set<std::string> names) {
  return [names](const std::string& n) { return names.count(n) != 0; };
}

}  // namespace

TEST_CASE("upgrade gate: what is served, what is refused and with which answer", "[upgrade_gate]") {
  RelayFixture f(kScript, R"({"max_connections_per_ip":1})", R"("allowed_origins":["https://app.example"])");
  const auto served = listener({"wsrelay", "wsrelay-upstream", "chat"});
  UpgradeRequest ok = good();
  ok.origin = "https://app.example";
  CHECK(server::check_upgrade_request(&f.relay(), ok, served).kind == UpgradeVerdict::Kind::Relay);

  auto refused = [&](UpgradeRequest r) {
    const UpgradeVerdict v = server::check_upgrade_request(&f.relay(), r, served);
    REQUIRE(v.kind == UpgradeVerdict::Kind::Refuse);
    return v.refusal;
  };
  UpgradeRequest upstream = ok;
  upstream.protocols = "chat2, wsrelay-upstream";
  CHECK(refused(upstream).reason == "subprotocol not served");
  UpgradeRequest none = ok;
  none.protocols = "nope";
  CHECK(refused(none).reason == "no supported subprotocol");
  UpgradeRequest empty = ok;
  empty.protocols = " , ";
  CHECK(refused(empty).reason == "no supported subprotocol");
  UpgradeRequest junk = ok;
  junk.protocols = "a b";
  CHECK(refused(junk).reason == "invalid Sec-WebSocket-Protocol");
  UpgradeRequest chat = ok;
  chat.protocols = "chat";
  CHECK(server::check_upgrade_request(&f.relay(), chat, served).kind == UpgradeVerdict::Kind::OtherProtocol);
  UpgradeRequest path = ok;
  path.path = "/elsewhere";
  CHECK(refused(path).status == 404);
  UpgradeRequest origin = ok;
  origin.origin = "https://evil.example";
  CHECK(refused(origin).status == 403);
  UpgradeRequest old = ok;
  old.head.version = "HTTP/1.0";
  CHECK(refused(old).status == 400);
  UpgradeRequest framed = ok;
  framed.head.content_length = {"1", "2"};
  CHECK(refused(framed).reason == "duplicate Content-Length");
  // The caps: the one slot of this address is taken.
  wsrelay::fakes::FakeWire wire;
  auto holder = f.open(wire, 0, "10.0.0.9");
  REQUIRE(holder);
  CHECK(refused(ok).status == 503);
  // A vhost whose relay did not start still passes the host's own protocols.
  CHECK(server::check_upgrade_request(nullptr, chat, served).kind == UpgradeVerdict::Kind::OtherProtocol);
  const UpgradeVerdict no_relay = server::check_upgrade_request(nullptr, ok, served);
  CHECK(no_relay.kind == UpgradeVerdict::Kind::Refuse);
  CHECK(no_relay.refusal.status == 503);
}
