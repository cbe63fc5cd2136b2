// The wsrelay.v1 protocol (docs/protocol.md) against the real server running
// in-process, spoken by real WebSocket clients: welcome, auth (development mode
// and HS256 JWT), subscribe/unsubscribe, chat fan-out, typing, heartbeat and
// the id rule.
#include <catch2/catch.hpp>

#include <cjson/cJSON.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <string>
#include <vector>

#include "auth/jwt.hpp"
#include "support/server_fixture.hpp"

using namespace std::chrono_literals;
using namespace wsrelay::test;

namespace {

bool is_lower_hex16(const std::string& s) {
  return s.size() == 16 &&
         std::all_of(s.begin(), s.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

// A config in JWT mode with the given secret (dev mode otherwise identical).
wsrelay::config::Config jwt_config(const std::string& secret) {
  auto cfg = default_test_config();
  cfg.jwt.secret = secret;
  return cfg;
}

long long now_s() { return now_ms() / 1000; }

// Sends an auth with `token` and id 11 and returns the reply.
Json auth_with(WsClient& client, const std::string& token) {
  return request(client, R"({"type":"auth","id":11,"token":")" + token + "\"}");
}

// Checks that a connection is not authenticated: subscribe is refused.
void require_unauthenticated(WsClient& client) {
  Json reply = request(client, R"({"type":"subscribe","id":"u","channel":"room"})");
  INFO("subscribe reply: " << reply.print());
  REQUIRE(reply.str("type") == "error");
  REQUIRE(reply.str("code") == "unauthorized");
}

}  // namespace

TEST_CASE("server protocol: welcome carries session, protocol and heartbeat", "[integration]") {
  auto cfg = default_test_config();
  cfg.heartbeat.interval_s = 7;  // not the default 25: the field must come from the config
  cfg.heartbeat.timeout_s = 30;
  ServerFixture server(cfg);

  auto a = server.connect_raw();
  auto b = server.connect_raw();
  auto raw_a = a->recv_text();
  auto raw_b = b->recv_text();
  REQUIRE(raw_a.has_value());
  REQUIRE(raw_b.has_value());
  INFO("A welcome: " << *raw_a << "\nB welcome: " << *raw_b);
  // The encoder always writes "type" first.
  CHECK(raw_a->rfind(R"({"type":"welcome")", 0) == 0);

  Json wa = Json::parse(*raw_a);
  Json wb = Json::parse(*raw_b);
  CHECK(wa.str("type") == "welcome");
  CHECK(is_lower_hex16(wa.str("session")));
  CHECK(is_lower_hex16(wb.str("session")));
  CHECK(wa.str("session") != wb.str("session"));
  CHECK(wa.str("protocol") == "wsrelay.v1");
  CHECK(wa.num("heartbeat") == 7);
  CHECK(wa.size() == 4);  // type, session, protocol, heartbeat: nothing else
  CHECK_FALSE(wa.has("id"));
}

TEST_CASE("server protocol: auth in development mode takes the token as the user", "[integration]") {
  ServerFixture server;
  auto a = server.connect();
  auto b = server.connect_as("bob", "room");

  require_unauthenticated(*a);
  Json ok = request(*a, R"({"type":"auth","id":1,"token":"alice"})");
  INFO("auth reply: " << ok.print());
  CHECK(ok.str("type") == "auth.ok");
  CHECK(ok.num("id") == 1);
  CHECK(ok.str("user") == "alice");

  // The user is the one chats are sent from.
  Json reply = request(*a, R"({"type":"chat","id":2,"channel":"room","data":"hi"})");
  CHECK(reply.str("type") == "chat.ok");
  Json chat = recv_json(*b);
  CHECK(chat.str("type") == "chat");
  CHECK(chat.str("from") == "alice");

  // Auth again re-authenticates and replaces the user.
  Json again = request(*a, R"({"type":"auth","id":3,"token":"carol"})");
  CHECK(again.str("user") == "carol");
  REQUIRE(request(*a, R"({"type":"chat","id":4,"channel":"room","data":"hi"})").str("type") == "chat.ok");
  CHECK(recv_json(*b).str("from") == "carol");
}

TEST_CASE("server protocol: auth with a valid HS256 JWT", "[integration]") {
  const std::string secret = "integration-secret";
  ServerFixture server(jwt_config(secret));
  auto a = server.connect();

  const std::string token = wsrelay::auth::sign_hs256(
      R"({"sub":"alice","exp":)" + std::to_string(now_s() + 300) + "}", secret);
  REQUIRE_FALSE(token.empty());
  Json ok = auth_with(*a, token);
  INFO("auth reply: " << ok.print());
  CHECK(ok.str("type") == "auth.ok");
  CHECK(ok.num("id") == 11);
  CHECK(ok.str("user") == "alice");
  // Now authenticated: subscribe works.
  subscribe(*a, "room");

  // With a secret configured, a plain user name is no longer a token.
  auto b = server.connect();
  Json refused = auth_with(*b, "alice");
  INFO("dev-style token: " << refused.print());
  CHECK(refused.str("type") == "error");
  CHECK(refused.str("code") == "unauthorized");
  CHECK(refused.str("message") == "invalid token: malformed token");
  require_unauthenticated(*b);
}

TEST_CASE("server protocol: JWT with a bad signature is unauthorized", "[integration]") {
  const std::string secret = "integration-secret";
  ServerFixture server(jwt_config(secret));
  auto a = server.connect();

  const std::string forged = wsrelay::auth::sign_hs256(R"({"sub":"mallory"})", "some-other-secret");
  Json reply = auth_with(*a, forged);
  INFO("reply: " << reply.print());
  CHECK(reply.str("type") == "error");
  CHECK(reply.str("code") == "unauthorized");
  CHECK(reply.num("id") == 11);
  CHECK(reply.str("message") == "invalid token: bad signature");
  require_unauthenticated(*a);

  // A failed auth leaves a previous user in place.
  auto b = server.connect();
  const std::string good = wsrelay::auth::sign_hs256(R"({"sub":"alice"})", secret);
  REQUIRE(auth_with(*b, good).str("type") == "auth.ok");
  REQUIRE(auth_with(*b, forged).str("code") == "unauthorized");
  subscribe(*b, "room");
  Json own = request(*b, R"({"type":"chat","id":1,"channel":"room","data":1})");
  INFO("own broadcast: " << own.print());
  CHECK(own.str("type") == "chat");
  CHECK(own.str("from") == "alice");
}

TEST_CASE("server protocol: expired JWT is unauthorized", "[integration]") {
  const std::string secret = "integration-secret";
  ServerFixture server(jwt_config(secret));
  auto a = server.connect();
  const std::string token = wsrelay::auth::sign_hs256(
      R"({"sub":"alice","exp":)" + std::to_string(now_s() - 10) + "}", secret);
  Json reply = auth_with(*a, token);
  INFO("reply: " << reply.print());
  CHECK(reply.str("type") == "error");
  CHECK(reply.str("code") == "unauthorized");
  CHECK(reply.num("id") == 11);
  CHECK(reply.str("message") == "invalid token: token expired");
  require_unauthenticated(*a);
}

TEST_CASE("server protocol: JWT whose nbf is in the future is unauthorized", "[integration]") {
  const std::string secret = "integration-secret";
  ServerFixture server(jwt_config(secret));
  auto a = server.connect();
  const std::string token = wsrelay::auth::sign_hs256(
      R"({"sub":"alice","nbf":)" + std::to_string(now_s() + 3600) + "}", secret);
  Json reply = auth_with(*a, token);
  INFO("reply: " << reply.print());
  CHECK(reply.str("type") == "error");
  CHECK(reply.str("code") == "unauthorized");
  CHECK(reply.num("id") == 11);
  CHECK(reply.str("message") == "invalid token: token not yet valid");
  require_unauthenticated(*a);
}

TEST_CASE("server protocol: JWT without a subject is unauthorized", "[integration]") {
  const std::string secret = "integration-secret";
  ServerFixture server(jwt_config(secret));
  auto a = server.connect();
  for (const std::string& payload : {std::string(R"({"name":"alice"})"), std::string(R"({"sub":""})")}) {
    Json reply = auth_with(*a, wsrelay::auth::sign_hs256(payload, secret));
    INFO("payload " << payload << " -> " << reply.print());
    CHECK(reply.str("code") == "unauthorized");
    CHECK(reply.str("message") == "invalid token: no subject");
  }
  require_unauthenticated(*a);
}

TEST_CASE("server protocol: jwt.leeway tolerates clock skew on exp and nbf", "[integration]") {
  const std::string secret = "integration-secret";
  auto cfg = jwt_config(secret);
  cfg.jwt.leeway_s = 30;
  ServerFixture server(cfg);
  auto a = server.connect();
  // Expired 10 s ago, not valid for another 10 s: both within 30 s of leeway.
  Json late = auth_with(*a, wsrelay::auth::sign_hs256(
                                R"({"sub":"late","exp":)" + std::to_string(now_s() - 10) + "}", secret));
  CHECK(late.str("type") == "auth.ok");
  CHECK(late.str("user") == "late");
  Json early = auth_with(*a, wsrelay::auth::sign_hs256(
                                 R"({"sub":"early","nbf":)" + std::to_string(now_s() + 10) + "}", secret));
  CHECK(early.str("type") == "auth.ok");
  CHECK(early.str("user") == "early");
  // Beyond the leeway they are refused.
  Json too_late = auth_with(*a, wsrelay::auth::sign_hs256(
                                    R"({"sub":"x","exp":)" + std::to_string(now_s() - 120) + "}", secret));
  CHECK(too_late.str("message") == "invalid token: token expired");
}

TEST_CASE("server protocol: JWT audience and issuer are checked when configured", "[integration]") {
  const std::string secret = "integration-secret";
  auto cfg = jwt_config(secret);
  cfg.jwt.audience = "chat";
  cfg.jwt.issuer = "https://auth.example.org";
  ServerFixture server(cfg);
  auto a = server.connect();
  Json ok = auth_with(*a, wsrelay::auth::sign_hs256(
                              R"({"sub":"alice","aud":"chat","iss":"https://auth.example.org"})", secret));
  CHECK(ok.str("type") == "auth.ok");
  Json aud = auth_with(*a, wsrelay::auth::sign_hs256(
                               R"({"sub":"alice","aud":"other","iss":"https://auth.example.org"})", secret));
  CHECK(aud.str("code") == "unauthorized");
  CHECK(aud.str("message") == "invalid token: audience mismatch");
  Json iss = auth_with(*a, wsrelay::auth::sign_hs256(R"({"sub":"alice","aud":"chat","iss":"https://evil"})", secret));
  CHECK(iss.str("code") == "unauthorized");
  CHECK(iss.str("message") == "invalid token: issuer mismatch");
}

TEST_CASE("server protocol: subscribe and unsubscribe replies", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto speaker = server.connect_as("sam");

  Json sub = request(*a, R"({"type":"subscribe","id":2,"channel":"room1"})");
  INFO("subscribe: " << sub.print());
  CHECK(sub.str("type") == "subscribe.ok");
  CHECK(sub.num("id") == 2);
  CHECK(sub.str("channel") == "room1");
  // Idempotent: a second subscribe is still one subscription.
  Json sub2 = request(*a, R"({"type":"subscribe","id":3,"channel":"room1"})");
  CHECK(sub2.str("type") == "subscribe.ok");
  CHECK(server.status().num("subscriptions") == 1);

  REQUIRE(request(*speaker, R"({"type":"chat","id":1,"channel":"room1","data":"one"})").str("type") == "chat.ok");
  Json chat = recv_json(*a);
  CHECK(chat.str("data") == "one");
  CHECK(silent_for(*a));  // delivered once, not twice

  Json unsub = request(*a, R"({"type":"unsubscribe","id":4,"channel":"room1"})");
  INFO("unsubscribe: " << unsub.print());
  CHECK(unsub.str("type") == "unsubscribe.ok");
  CHECK(unsub.num("id") == 4);
  CHECK(unsub.str("channel") == "room1");
  // Unsubscribing from a channel we are not in still answers ok.
  Json unsub2 = request(*a, R"({"type":"unsubscribe","id":5,"channel":"never-joined"})");
  CHECK(unsub2.str("type") == "unsubscribe.ok");
  CHECK(unsub2.str("channel") == "never-joined");

  // After unsubscribing, broadcasts stop.
  REQUIRE(request(*speaker, R"({"type":"chat","id":2,"channel":"room1","data":"two"})").str("type") == "chat.ok");
  CHECK(silent_for(*a, 300ms));
}

TEST_CASE("server protocol: chat reaches every subscriber, the subscribed sender first", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "room1");
  auto b = server.connect_as("bob", "room1");

  REQUIRE(a->send_text(R"({"type":"chat","id":3,"channel":"room1","data":{"text":"hi"}})"));
  // The broadcast is queued before chat.ok.
  Json own = recv_json(*a);
  Json ok = recv_json(*a);
  Json other = recv_json(*b);
  INFO("A got: " << own.print() << " then " << ok.print() << "; B got: " << other.print());
  for (const Json* chat : {&own, &other}) {
    CHECK(chat->str("type") == "chat");
    CHECK(chat->str("channel") == "room1");
    CHECK(chat->str("from") == "alice");
    CHECK(chat->get("data").str("text") == "hi");
    CHECK(chat->num("seq") == 1);
    CHECK(chat->get("ts").is_number());
    CHECK_FALSE(chat->has("id"));  // broadcasts never carry an id
  }
  CHECK(ok.str("type") == "chat.ok");
  CHECK(ok.num("id") == 3);
  CHECK(ok.num("seq") == 1);
  CHECK(silent_for(*a));
  CHECK(silent_for(*b));
}

TEST_CASE("server protocol: chat from a sender that is not subscribed excludes the sender", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "room1");
  auto b = server.connect_as("bob", "room1");
  auto c = server.connect_as("carol");  // not subscribed: may still send

  Json ok = request(*c, R"({"type":"chat","id":"c1","channel":"room1","data":"from outside"})");
  INFO("C got: " << ok.print());
  CHECK(ok.str("type") == "chat.ok");  // the first thing C sees: no broadcast to C
  CHECK(ok.str("id") == "c1");
  CHECK(ok.num("seq") == 1);
  for (WsClient* client : {a.get(), b.get()}) {
    Json chat = recv_json(*client);
    CHECK(chat.str("type") == "chat");
    CHECK(chat.str("from") == "carol");
    CHECK(chat.str("data") == "from outside");
    CHECK(chat.num("seq") == 1);
  }
  CHECK(silent_for(*c));
}

TEST_CASE("server protocol: chat data round-trips exactly", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto b = server.connect_as("bob", "room");

  const std::vector<std::string> payloads = {
      R"({"nested":{"list":[1,2,{"deep":[null,true,false]}],"empty_obj":{},"empty_arr":[]},"n":null})",
      R"([1,"two",null,3.5,[],{},[[["x"]]]])",
      R"(null)",
      R"(false)",
      R"(0)",
      R"(-42)",
      R"(9007199254740991)",
      R"(3.14159)",
      R"(-0.001)",
      R"(1.5e+300)",
      R"(0.1)",
      R"("")",
      "\"h\xC3\xA9llo \xE2\x9C\x93 \xF0\x9F\x8E\x89 \xE6\x97\xA5\xE6\x9C\xAC\"",
      R"("esc \" \\ \/ \n \t \r \b \f \u00e9 \ud83c\udf89")",
      R"({"unicode key \u2713":"v","k":"\u65e5\u672c\u8a9e"})",
  };
  for (const std::string& data : payloads) {
    Json sent = Json::parse(data);
    REQUIRE(sent.ok());
    REQUIRE(request(*a, R"({"type":"chat","id":1,"channel":"room","data":)" + data + "}").str("type") ==
            "chat.ok");
    Json chat = recv_json(*b);
    Json got = chat.get("data");
    INFO("sent data: " << data << "\nreceived: " << chat.print());
    REQUIRE(got.ok());
    // Structural equality (object member order is not specified) ...
    CHECK(cJSON_Compare(sent.raw(), got.raw(), /*case_sensitive=*/1) != 0);
    // ... and numbers and strings bit for bit.
    if (sent.is_number()) CHECK(got.as_number() == sent.as_number());
    if (sent.is_string()) CHECK(got.as_string() == sent.as_string());
  }
  // Deep but legal nesting survives too (well under the 1000 limit).
  std::string deep;
  for (int i = 0; i < 200; ++i) deep += "[";
  deep += "\"bottom\"";
  for (int i = 0; i < 200; ++i) deep += "]";
  REQUIRE(request(*a, R"({"type":"chat","id":1,"channel":"room","data":)" + deep + "}").str("type") == "chat.ok");
  Json chat = recv_json(*b);
  Json node = chat.get("data");
  int depth = 0;
  while (node.is_array() && node.size() == 1) {
    node = node.at(0);
    ++depth;
  }
  CHECK(depth == 200);
  CHECK(node.as_string() == "bottom");
}

TEST_CASE("server protocol: seq counts per channel, independently across channels", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "r1");
  subscribe(*a, "r2");
  auto b = server.connect_as("bob", "r1");

  auto chat = [&](const std::string& channel) {
    REQUIRE(a->send_text(R"({"type":"chat","id":"x","channel":")" + channel + R"(","data":0})"));
    Json broadcast = recv_json(*a);
    Json ok = recv_json(*a);
    INFO("broadcast: " << broadcast.print() << " ok: " << ok.print());
    REQUIRE(broadcast.str("type") == "chat");
    REQUIRE(broadcast.str("channel") == channel);
    REQUIRE(ok.str("type") == "chat.ok");
    CHECK(ok.num("seq") == broadcast.num("seq"));  // chat.ok's seq is the broadcast's
    return static_cast<int>(ok.num("seq"));
  };
  CHECK(chat("r1") == 1);
  CHECK(chat("r1") == 2);
  CHECK(chat("r1") == 3);
  CHECK(chat("r2") == 1);
  CHECK(chat("r2") == 2);
  CHECK(chat("r1") == 4);

  // B sees r1's numbers only, in order.
  for (int expected : {1, 2, 3, 4}) {
    Json m = recv_json(*b);
    CHECK(m.str("channel") == "r1");
    CHECK(m.num("seq") == expected);
  }
  CHECK(silent_for(*b));
}

TEST_CASE("server protocol: seq starts again at 1 when the last subscriber leaves", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto seq_of = [&](const std::string& text) {
    Json ok = request(*a, text);
    INFO("reply: " << ok.print());
    REQUIRE(ok.str("type") == "chat.ok");
    return static_cast<int>(ok.num("seq"));
  };
  const std::string chat = R"({"type":"chat","id":1,"channel":"r","data":0})";
  auto watcher = server.connect_as("bob", "r");
  CHECK(seq_of(chat) == 1);
  CHECK(seq_of(chat) == 2);
  CHECK(recv_json(*watcher).num("seq") == 1);
  CHECK(recv_json(*watcher).num("seq") == 2);
  REQUIRE(request(*watcher, R"({"type":"unsubscribe","channel":"r"})").str("type") == "unsubscribe.ok");
  // The last subscriber left: the counter restarts. Numbers handed out while
  // nobody listens carry over to the next subscriber.
  CHECK(seq_of(chat) == 1);
  CHECK(seq_of(chat) == 2);
  subscribe(*watcher, "r");
  CHECK(seq_of(chat) == 3);
  CHECK(recv_json(*watcher).num("seq") == 3);
}

TEST_CASE("server protocol: chat ts is the server time in milliseconds", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "room");
  const long long before = now_ms();
  REQUIRE(a->send_text(R"({"type":"chat","id":1,"channel":"room","data":"t"})"));
  Json chat = recv_json(*a);
  const long long after = now_ms();
  INFO("chat: " << chat.print() << " window [" << before << ", " << after << "]");
  REQUIRE(chat.get("ts").is_number());
  const double ts = chat.num("ts");
  CHECK(ts == static_cast<double>(static_cast<long long>(ts)));  // an integer
  // Same clock, same machine: allow a little slack for rounding.
  CHECK(ts >= static_cast<double>(before - 50));
  CHECK(ts <= static_cast<double>(after + 50));
}

TEST_CASE("server protocol: typing reaches the other subscribers but not the sender", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "room");
  auto b = server.connect_as("bob", "room");
  auto c = server.connect_as("carol", "room");
  auto outsider = server.connect_as("olga", "elsewhere");

  REQUIRE(a->send_text(R"({"type":"typing","id":7,"channel":"room","typing":true})"));
  for (WsClient* client : {b.get(), c.get()}) {
    Json m = recv_json(*client);
    INFO("got: " << m.print());
    CHECK(m.str("type") == "typing");
    CHECK(m.str("channel") == "room");
    CHECK(m.str("from") == "alice");
    CHECK(m.get("typing").is_bool());
    CHECK(m.boolean("typing"));
    CHECK_FALSE(m.has("id"));
  }
  // No echo and no reply (even with an id): the next thing A sees is the
  // heartbeat answer.
  Json hb = request(*a, R"({"type":"heartbeat","id":"after-typing"})");
  CHECK(hb.str("type") == "heartbeat");
  CHECK(hb.str("id") == "after-typing");

  REQUIRE(b->send_text(R"({"type":"typing","channel":"room","typing":false})"));
  for (WsClient* client : {a.get(), c.get()}) {
    Json m = recv_json(*client);
    CHECK(m.str("type") == "typing");
    CHECK(m.str("from") == "bob");
    CHECK(m.get("typing").is_bool());
    CHECK_FALSE(m.boolean("typing"));
  }
  CHECK(silent_for(*b));
  CHECK(silent_for(*outsider, 50ms));
}

TEST_CASE("server protocol: heartbeat replies with the id and the time, before auth too", "[integration]") {
  ServerFixture server;
  auto a = server.connect();  // not authenticated
  const long long before = now_ms();
  Json hb = request(*a, R"({"type":"heartbeat","id":5})");
  const long long after = now_ms();
  INFO("reply: " << hb.print());
  CHECK(hb.str("type") == "heartbeat");
  CHECK(hb.num("id") == 5);
  REQUIRE(hb.get("ts").is_number());
  CHECK(hb.num("ts") >= static_cast<double>(before - 50));
  CHECK(hb.num("ts") <= static_cast<double>(after + 50));

  Json no_id = request(*a, R"({"type":"heartbeat"})");
  CHECK(no_id.str("type") == "heartbeat");
  CHECK_FALSE(no_id.has("id"));
}

TEST_CASE("server protocol: every reply echoes string, numeric and other ids unchanged", "[integration]") {
  ServerFixture server;
  auto a = server.connect();
  const std::vector<std::string> ids = {
      R"("abc")", R"("")", "\"\xE2\x9C\x93 id\"", "0", "42", "-7", "3.5", "12345678901", "true",
      R"({"k":[1,"x"]})", "[1,2]", "null",
  };
  int n = 0;
  for (const std::string& id : ids) {
    ++n;
    const std::string user = "u" + std::to_string(n);
    const std::vector<std::pair<std::string, std::string>> requests = {
        {R"({"type":"auth","token":")" + user + R"(","id":)" + id + "}", "auth.ok"},
        {R"({"type":"subscribe","channel":"r","id":)" + id + "}", "subscribe.ok"},
        {R"({"type":"unsubscribe","channel":"r","id":)" + id + "}", "unsubscribe.ok"},
        {R"({"type":"chat","channel":"r","data":1,"id":)" + id + "}", "chat.ok"},
        {R"({"type":"heartbeat","id":)" + id + "}", "heartbeat"},
        // Errors raised by a handler echo the id too.
        {R"({"type":"subscribe","channel":"","id":)" + id + "}", "error"},
    };
    Json expected = Json::parse(id);
    REQUIRE(expected.ok());
    for (const auto& [text, type] : requests) {
      Json reply = request(*a, text);
      INFO("request: " << text << "\nreply: " << reply.print());
      CHECK(reply.str("type") == type);
      REQUIRE(reply.has("id"));
      CHECK(cJSON_Compare(reply.get("id").raw(), expected.raw(), 1) != 0);
      if (expected.is_number()) CHECK(reply.num("id") == expected.as_number());
    }
  }
  // Without an id in the request, no reply has one.
  for (const auto& [text, type] : std::vector<std::pair<std::string, std::string>>{
           {R"({"type":"auth","token":"z"})", "auth.ok"},
           {R"({"type":"subscribe","channel":"r"})", "subscribe.ok"},
           {R"({"type":"unsubscribe","channel":"r"})", "unsubscribe.ok"},
           {R"({"type":"chat","channel":"r","data":1})", "chat.ok"},
           {R"({"type":"heartbeat"})", "heartbeat"},
           {R"({"type":"chat","channel":"r"})", "error"}}) {
    Json reply = request(*a, text);
    INFO("request: " << text << "\nreply: " << reply.print());
    CHECK(reply.str("type") == type);
    CHECK_FALSE(reply.has("id"));
  }
}

TEST_CASE("server protocol: 50 subscribers of one channel all receive a chat", "[integration]") {
  ServerFixture server;
  constexpr int kClients = 50;
  std::vector<std::unique_ptr<WsClient>> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(server.connect_as("user" + std::to_string(i), "crowd"));
  CHECK(server.status().num("subscriptions") == kClients);

  auto sender = server.connect_as("announcer");
  for (int round = 1; round <= 3; ++round) {
    const std::string text = "announcement " + std::to_string(round);
    Json ok = request(*sender, R"({"type":"chat","id":1,"channel":"crowd","data":")" + text + "\"}");
    REQUIRE(ok.str("type") == "chat.ok");
    REQUIRE(ok.num("seq") == round);
    int received = 0;
    for (auto& client : clients) {
      Json chat = recv_json(*client);
      if (chat.str("type") == "chat" && chat.str("data") == text && chat.num("seq") == round &&
          chat.str("from") == "announcer") {
        ++received;
      } else {
        UNSCOPED_INFO("unexpected: " << chat.print());
      }
    }
    CHECK(received == kClients);
  }
  CHECK(server.status().num("deliveries") == 3 * kClients);
}
