// core/connection without sockets: the test is the transport (tests/fakes/
// fake_wire.hpp). Open, receive and close in order; reassembly and the size
// cap; every rate limit feeding one count of refusals in a row; the
// once-a-second check; the closing handshake's state.
#include <catch2/catch.hpp>

#include "fakes/fake_wire.hpp"
#include "json/json.hpp"

#include <string>
#include <vector>

using wsrelay::connection::Connection;
using wsrelay::connection::Piece;
using wsrelay::connection::TickAction;
using wsrelay::fakes::drain;
using wsrelay::fakes::FakeWire;
using wsrelay::fakes::RelayFixture;
using wsrelay::fakes::whole;

namespace {

// Every event the script sees, in order, readable by any session.
const char* kRecorder = R"(
  local events = {}
  local function note(e) events[#events + 1] = e end
  return {
    on_open = function(s) note("open " .. s.id); return { type = "welcome" } end,
    ping = function(s, msg) note("ping " .. tostring(msg.n)); return { type = "pong", n = msg.n, len = msg.pad and #msg.pad } end,
    chat = function(s, msg) return { type = "chat.ok" } end,
    events = function(s) return { type = "events", list = table.concat(events, ",") } end,
    on_close = function(s, code, reason) note("close " .. s.id .. " " .. code .. " " .. reason) end,
  }
)";

std::string field(const std::string& json_text, const char* name) {
  auto root = wsrelay::json::parse(json_text);
  if (!root) return "<not json>";
  const cJSON* v = cJSON_GetObjectItemCaseSensitive(root.get(), name);
  if (v == nullptr) return "<missing>";
  if (cJSON_IsString(v)) return v->valuestring;
  char* printed = cJSON_PrintUnformatted(v);
  std::string out = printed;
  cJSON_free(printed);
  return out;
}

std::string ask(Connection& c, const std::string& text, std::int64_t now = 0) {
  drain(c.session());
  c.receive(whole(text), now);
  const auto out = drain(c.session());
  return out.empty() ? std::string() : out.back();
}

}  // namespace

TEST_CASE("connection: open, receive and close run in order and release everything", "[connection]") {
  RelayFixture f(kRecorder);
  FakeWire wire, other_wire;
  auto a = f.open(wire);
  REQUIRE(a);
  const std::string a_id = a->session().id();
  CHECK(field(drain(a->session()).at(0), "type") == "welcome");  // on_open's reply is queued first
  CHECK(wire.write_requests > 0);
  CHECK(f.relay().stats().connections == 1);
  CHECK(f.endpoint().connections == 1);
  CHECK(f.relay().registry().size() == 1);
  CHECK(field(ask(*a, R"({"type":"ping","n":1})"), "n") == "1");
  a->peer_closed(std::string("\x03\xe8" "bye", 5));  // 1000 "bye"
  a->closed();
  CHECK(f.relay().stats().connections == 0);
  CHECK(f.endpoint().connections == 0);
  CHECK(f.relay().registry().size() == 0);
  auto b = f.open(other_wire);
  REQUIRE(b);
  CHECK(field(ask(*b, R"({"type":"events"})"), "list") ==
        "open " + a_id + ",ping 1,close " + a_id + " 1000 bye,open " + b->session().id());
  // Closed without a close frame either way: on_close sees 1006.
  const std::string b_id = b->session().id();
  b.reset();  // the destructor runs closed() when the transport did not
  auto c = f.open(wire);
  CHECK(field(ask(*c, R"({"type":"events"})"), "list").find("close " + b_id + " 1006 ") != std::string::npos);
}

TEST_CASE("connection: pieces are reassembled; over max_message_size the client gets too_large and 1009", "[connection]") {
  RelayFixture f(kRecorder, "{}", R"("max_message_size":100)");
  FakeWire wire;
  auto c = f.open(wire);
  drain(c->session());
  const std::string pad(60, 'x');
  const std::string text = R"({"type":"ping","n":2,"pad":")" + pad + R"("})";
  REQUIRE(text.size() <= 100);
  Piece p1{std::string_view(text).substr(0, 10), true, false, false, 0};
  Piece p2{std::string_view(text).substr(10, 30), false, false, false, 0};
  Piece p3{std::string_view(text).substr(40), false, true, false, 0};
  c->receive(p1, 0);
  c->receive(p2, 0);
  CHECK(drain(c->session()).empty());  // nothing until the message is whole
  c->receive(p3, 0);
  const auto out = drain(c->session());
  REQUIRE(out.size() == 1);
  CHECK(field(out[0], "len") == "60");

  // A frame that announces more than the cap: refused on its first piece.
  const std::string big(50, 'y');
  c->receive(Piece{big, true, false, false, 80}, 0);
  const auto refused = drain(c->session());
  REQUIRE(refused.size() == 1);
  CHECK(field(refused[0], "code") == "too_large");
  CHECK(c->session().closing());
  CHECK(c->session().close_code() == 1009);
  CHECK(wire.reading_paused);
  CHECK(wire.close_deadline_s == wsrelay::connection::kCloseFlushSeconds);
  // The rest is read and dropped; past 16 MiB after the close began, hung up.
  const std::string chunk(1 << 20, 'z');
  for (int i = 0; i < 16; ++i) c->receive(Piece{chunk, false, false, false, 0}, 0);
  CHECK(wire.hang_ups == 0);
  c->receive(Piece{chunk, false, false, false, 0}, 0);
  CHECK(wire.hang_ups == 1);
  // Our close frame out: reading resumes (the client's close is behind the rest).
  CHECK(c->close_frame_written());
  CHECK(c->peer_closed(std::string("\x03\xe8", 2)));  // it answers ours
}

TEST_CASE("connection: every rate limit feeds one count of refusals in a row; only a handler resets it", "[connection]") {
  // The connection allows 3 messages, then none for a long while; chat
  // allows 1. Before, the connection and the message types kept a count each
  // and this client was never closed.
  RelayFixture f(kRecorder,
                 R"({"messages_per_second":0.001,"message_burst":3,"rate_limit_close_after":3,)"
                 R"("message_types":{"chat":{"per_second":0.001,"burst":1}}})");
  FakeWire wire;
  auto c = f.open(wire);
  drain(c->session());
  CHECK(field(ask(*c, R"({"type":"chat","id":1})"), "type") == "chat.ok");
  CHECK(field(ask(*c, R"({"type":"chat","id":2})"), "code") == "rate_limited");  // chat's bucket
  CHECK(c->gate().refused_in_a_row() == 1);
  CHECK(field(ask(*c, R"({"type":"chat","id":3})"), "code") == "rate_limited");  // chat's bucket
  CHECK(c->gate().refused_in_a_row() == 2);
  CHECK_FALSE(c->session().closing());
  ask(*c, R"({"type":"chat","id":4})");  // the connection's bucket is empty too
  CHECK(c->session().closing());
  CHECK(c->session().close_code() == 1008);
  CHECK(c->session().close_reason() == "rate limit exceeded");
  CHECK(f.relay().stats().rate_limited == 3);
}

TEST_CASE("connection: a message that reaches no handler does not reset the count", "[connection]") {
  RelayFixture f(kRecorder, R"({"messages_per_second":0,"rate_limit_close_after":3,)"
                            R"("message_types":{"chat":{"per_second":0.001,"burst":1}}})");
  FakeWire wire;
  auto c = f.open(wire);
  drain(c->session());
  ask(*c, R"({"type":"chat"})");
  CHECK(field(ask(*c, R"({"type":"chat"})"), "code") == "rate_limited");
  CHECK(field(ask(*c, R"({"type":)"), "code") == "bad_json");   // no handler ran
  CHECK(field(ask(*c, R"({"type":"nope"})"), "code") == "unknown_type");
  CHECK(c->gate().refused_in_a_row() == 1);
  CHECK(field(ask(*c, R"({"type":"ping","n":5})"), "n") == "5");  // a handler ran
  CHECK(c->gate().refused_in_a_row() == 0);
  ask(*c, R"({"type":"chat"})");
  ask(*c, R"({"type":"chat"})");
  CHECK_FALSE(c->session().closing());
  ask(*c, R"({"type":"chat"})");
  CHECK(c->session().close_code() == 1008);
}

TEST_CASE("connection: the once-a-second check pings, hangs up and ends expired sessions", "[connection]") {
  RelayFixture f(kRecorder);
  FakeWire wire;
  auto c = f.open(wire, /*now_ms=*/1000);
  const wsrelay::session::KeepalivePolicy policy{25000, 60000};
  CHECK(c->tick(20000, 0, policy) == TickAction::None);
  CHECK(c->tick(26000, 0, policy) == TickAction::Ping);
  c->saw_life(30000);  // the pong
  CHECK(c->tick(54000, 0, policy) == TickAction::None);
  CHECK(c->tick(56000, 0, policy) == TickAction::Ping);   // silent for the interval again
  CHECK(c->tick(70000, 0, policy) == TickAction::None);   // pinged less than an interval ago
  CHECK(wire.hang_ups == 0);
  CHECK(c->tick(90000, 0, policy) == TickAction::None);   // silent for heartbeat.timeout
  CHECK(wire.hang_ups == 1);

  FakeWire other;
  auto e = f.open(other, 0);
  e->session().expiry.expire_at(5000);  // Unix ms
  e->tick(1, 4999, policy);
  CHECK_FALSE(e->session().closing());
  e->tick(2, 5000, policy);
  CHECK(e->session().close_code() == wsrelay::session::kTokenExpiredCloseCode);
}

TEST_CASE("connection: the connection caps refuse at open", "[connection]") {
  RelayFixture f(kRecorder, R"({"max_connections_per_ip":1})");
  FakeWire w1, w2, w3;
  auto first = f.open(w1, 0, "10.0.0.7");
  REQUIRE(first);
  CHECK_FALSE(f.open(w2, 0, "10.0.0.7"));
  CHECK(f.relay().stats().refused_connections == 1);
  first->closed();
  CHECK(f.open(w3, 0, "10.0.0.7"));  // the slot was released
}
