// Unit tests for core/script: the ScriptEngine driven as the lws protocol
// drives it (open, message, close), with real Sessions on fake transports,
// a real Hub and Registry. Part 1 runs scripts/standard.lua; part 2 runs
// small inline scripts for the sandbox, limits, error containment and the
// relay.* / session API.
#include <catch2/catch.hpp>

#include "fakes/engine_fixture.hpp"

#include "auth/jwt.hpp"
#include "connection/rate_gate.hpp"
#include "script/engine_internal.hpp"  // the Lua state, for collect_garbage's test

#include <lua.hpp>  // LUA_NOREF: the "no script userdata" value of Session::script_ref

#include <chrono>
#include <string>
#include <vector>

namespace config = wsrelay::config;
namespace connection = wsrelay::connection;
namespace server = wsrelay::server;
using wsrelay::fakes::Client;
using wsrelay::fakes::EngineFixture;
using wsrelay::fakes::Msg;
using wsrelay::fakes::same_json;

namespace {

// Checks an error reply's shape; id is the raw JSON expected ("" = absent).
void check_error(const Msg& m, const std::string& code, const std::string& message, const std::string& id = "") {
  INFO("reply: " << m.text());
  CHECK(m.str("type") == "error");
  CHECK(m.str("code") == code);
  CHECK(m.str("message") == message);
  if (id.empty()) {
    CHECK_FALSE(m.has("id"));
  } else {
    CHECK(m.raw("id") == id);
  }
}

long long now_ms() {
  using namespace std::chrono;
  return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
}

// Standard protocol helpers.
void open_standard(EngineFixture& f) { f.load_standard(); }

Client& authed(EngineFixture& f, const std::string& user) {
  Client& c = f.connect();
  f.received(c);  // welcome
  const Msg ok = f.ask(c, R"({"type":"auth","token":")" + user + R"("})");
  REQUIRE(ok.str("type") == "auth.ok");
  return c;
}

}  // namespace

// =============================================================================
// Part 1: scripts/standard.lua
// =============================================================================

TEST_CASE("standard: welcome on open carries session id, protocol and heartbeat", "[script]") {
  EngineFixture f;
  f.context.heartbeat_interval_s = 17;
  open_standard(f);
  Client& c = f.connect("abc123");
  const Msg w = f.only(c);
  CHECK(w.str("type") == "welcome");
  CHECK(w.str("session") == "abc123");
  CHECK(w.str("protocol") == "wsrelay.v1");
  CHECK(w.raw("heartbeat") == "17");
  CHECK(w.size() == 4);
  CHECK_THAT(w.text(), Catch::StartsWith("{\"type\":\"welcome\","));
  CHECK(c.transport.write_requests == 1);
  CHECK(f.engine().name() == "standard.lua");
}

TEST_CASE("standard: auth in development mode (no JWT secret) takes the token as the user", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  const Msg ok = f.ask(c, R"({"type":"auth","id":1,"token":"alice"})");
  CHECK(ok.str("type") == "auth.ok");
  CHECK(ok.raw("id") == "1");
  CHECK(ok.str("user") == "alice");
  REQUIRE(c.s().user().has_value());
  CHECK(*c.s().user() == "alice");

  check_error(f.ask(c, R"({"type":"auth","id":"a2"})"), "bad_request",
              "field 'token' must be a non-empty string", "\"a2\"");
  check_error(f.ask(c, R"({"type":"auth","id":3,"token":""})"), "bad_request",
              "field 'token' must be a non-empty string", "3");
  check_error(f.ask(c, R"({"type":"auth","id":4,"token":42})"), "bad_request",
              "field 'token' must be a non-empty string", "4");
  CHECK(*c.s().user() == "alice");  // failed attempts change nothing
}

TEST_CASE("standard: auth with a JWT secret verifies the token", "[script]") {
  EngineFixture f;
  f.context.jwt.secret = "s3cret";
  open_standard(f);
  Client& c = f.connect();
  f.received(c);

  const std::string good = wsrelay::auth::sign_hs256(R"({"sub":"bob","exp":4102444800})", "s3cret");
  REQUIRE_FALSE(good.empty());
  const std::string forged = wsrelay::auth::sign_hs256(R"({"sub":"bob","exp":4102444800})", "other");
  const std::string expired = wsrelay::auth::sign_hs256(R"({"sub":"bob","exp":1000})", "s3cret");
  const std::string no_subject = wsrelay::auth::sign_hs256(R"({"exp":4102444800})", "s3cret");

  check_error(f.ask(c, R"({"type":"auth","id":1,"token":")" + forged + "\"}"), "unauthorized",
              "invalid token: bad signature", "1");
  check_error(f.ask(c, R"({"type":"auth","id":2,"token":")" + expired + "\"}"), "unauthorized",
              "invalid token: token expired", "2");
  check_error(f.ask(c, R"({"type":"auth","id":3,"token":")" + no_subject + "\"}"), "unauthorized",
              "invalid token: no subject", "3");
  check_error(f.ask(c, R"({"type":"auth","id":4,"token":"bob"})"), "unauthorized",
              "invalid token: malformed token", "4");
  CHECK_FALSE(c.s().user().has_value());
  // Still unauthenticated: subscribe is refused.
  check_error(f.ask(c, R"({"type":"subscribe","id":5,"channel":"x"})"), "unauthorized", "authenticate first", "5");

  const Msg ok = f.ask(c, R"({"type":"auth","id":6,"token":")" + good + "\"}");
  CHECK(ok.str("type") == "auth.ok");
  CHECK(ok.str("user") == "bob");
  CHECK(ok.raw("id") == "6");
  CHECK(*c.s().user() == "bob");
}

TEST_CASE("standard: a channels claim that is not an array of strings fails auth, whatever its shape",
          "[script][channels]") {
  EngineFixture f;
  f.context.jwt.secret = "s3cret";
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  // Every JSON shape that is not an array of strings (docs/protocol.md,
  // channel permissions). An object decodes to a Lua table too, and one with
  // keys "1", "2" or none at all looked like an array to ipairs.
  int id = 0;
  for (const char* claim : {R"({})", R"({"a":"news"})", R"({"1":"news"})", R"("news.*")", R"(42)", R"(true)",
                            R"(null)", R"(["news",1])", R"([null])", R"(["a",["b"]])", R"([{"x":"y"}])"}) {
    INFO("channels " << claim);
    const std::string token =
        wsrelay::auth::sign_hs256(std::string(R"({"sub":"eve","channels":)") + claim + "}", "s3cret");
    ++id;
    check_error(f.ask(c, R"({"type":"auth","id":)" + std::to_string(id) + R"(,"token":")" + token + "\"}"),
                "unauthorized", "invalid token: 'channels' must be an array of strings", std::to_string(id));
    CHECK_FALSE(c.s().user().has_value());
  }
  // An array of strings, the empty one included, is a grant.
  for (const char* claim : {R"([])", R"(["news.*","lobby"])"}) {
    INFO("channels " << claim);
    const std::string token =
        wsrelay::auth::sign_hs256(std::string(R"({"sub":"eve","channels":)") + claim + "}", "s3cret");
    CHECK(f.ask(c, R"({"type":"auth","token":")" + token + "\"}").str("type") == "auth.ok");
  }
}

TEST_CASE("standard: auth sets the session's expiry to the token's exp plus jwt.leeway; re-auth refreshes it",
          "[script][expiry]") {
  EngineFixture f;
  f.context.jwt.secret = "s3cret";
  f.context.jwt.leeway_s = 30;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  const auto auth = [&](const std::string& claims) {
    return f.ask(c, R"({"type":"auth","token":")" + wsrelay::auth::sign_hs256(claims, "s3cret") + "\"}");
  };
  CHECK_FALSE(c.s().expiry.set());  // nothing to expire before an auth

  REQUIRE(auth(R"({"sub":"bob","exp":4102444800})").str("type") == "auth.ok");
  // The verifier refuses from exp + leeway on; the session ends at the same instant.
  CHECK(c.s().expiry.at_ms() == (4102444800LL + 30) * 1000);

  // Re-auth is the refresh: the new token's exp replaces the old one, later or earlier.
  REQUIRE(auth(R"({"sub":"bob","exp":4102448400.5})").str("type") == "auth.ok");
  CHECK(c.s().expiry.at_ms() == (4102448400LL + 30) * 1000 + 500);
  REQUIRE(auth(R"({"sub":"bob","exp":4102444000})").str("type") == "auth.ok");
  CHECK(c.s().expiry.at_ms() == (4102444000LL + 30) * 1000);

  // A failed auth changes nothing, the expiry included.
  CHECK(auth(R"({"sub":"bob","exp":1000})").str("code") == "unauthorized");
  CHECK(auth(R"({"sub":"eve","exp":4102444800,"channels":{}})").str("code") == "unauthorized");
  CHECK(c.s().expiry.at_ms() == (4102444000LL + 30) * 1000);

  // A token without exp clears it.
  REQUIRE(auth(R"({"sub":"bob"})").str("type") == "auth.ok");
  CHECK_FALSE(c.s().expiry.set());

  // Within the leeway a just-expired token is still accepted, and expires
  // leeway seconds after its exp, not at once.
  const long long exp = now_ms() / 1000 - 10;
  REQUIRE(auth(R"({"sub":"bob","exp":)" + std::to_string(exp) + "}").str("type") == "auth.ok");
  CHECK(c.s().expiry.at_ms() == (exp + 30) * 1000);
  CHECK_FALSE(c.s().expiry.due(now_ms()));
}

TEST_CASE("standard: development mode sets no expiry (its tokens have none)", "[script][expiry]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  c.s().expiry.expire_at(1);  // as if an earlier dialect had set one
  REQUIRE(f.ask(c, R"({"type":"auth","token":"alice"})").str("type") == "auth.ok");
  CHECK_FALSE(c.s().expiry.set());
}

TEST_CASE("standard: subscribe, chat, typing and unsubscribe need auth", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  check_error(f.ask(c, R"({"type":"subscribe","id":1,"channel":"room"})"), "unauthorized", "authenticate first", "1");
  check_error(f.ask(c, R"({"type":"chat","id":2,"channel":"room","data":"hi"})"), "unauthorized",
              "authenticate first", "2");
  check_error(f.ask(c, R"({"type":"typing","id":3,"channel":"room","typing":true})"), "unauthorized",
              "authenticate first", "3");
  check_error(f.ask(c, R"({"type":"unsubscribe","id":4,"channel":"room"})"), "unauthorized",
              "authenticate first", "4");
  CHECK(f.hub.channel_count() == 0);
  CHECK(f.stats.errors_sent == 4);
}

TEST_CASE("standard: subscribe and unsubscribe replies", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = authed(f, "alice");

  const Msg sub = f.ask(c, R"({"type":"subscribe","id":"s1","channel":"room"})");
  CHECK(sub.str("type") == "subscribe.ok");
  CHECK(sub.raw("id") == "\"s1\"");
  CHECK(sub.str("channel") == "room");
  CHECK(f.hub.subscriber_count("room") == 1);
  CHECK(c.s().channels().contains("room"));

  // Subscribing twice is harmless.
  CHECK(f.ask(c, R"({"type":"subscribe","channel":"room"})").str("type") == "subscribe.ok");
  CHECK(f.hub.subscriber_count("room") == 1);

  check_error(f.ask(c, R"({"type":"subscribe","id":7,"channel":""})"), "bad_request",
              "field 'channel' must be a non-empty string", "7");
  check_error(f.ask(c, R"({"type":"subscribe","id":8,"channel":["room"]})"), "bad_request",
              "field 'channel' must be a non-empty string", "8");
  check_error(f.ask(c, R"({"type":"subscribe","id":9,"channel":")" + std::string(129, 'c') + "\"}"),
              "bad_request", "channel name longer than 128 bytes", "9");
  CHECK(f.ask(c, R"({"type":"subscribe","channel":")" + std::string(128, 'c') + "\"}").str("type") ==
        "subscribe.ok");
  check_error(f.ask(c, R"({"type":"subscribe","id":10,"channel":"a\nb"})"), "bad_request",
              "channel name contains a control character", "10");
  check_error(f.ask(c, R"({"type":"chat","id":11,"channel":"a\u007fb","data":1})"), "bad_request",
              "channel name contains a control character", "11");

  const Msg unsub = f.ask(c, R"({"type":"unsubscribe","id":2,"channel":"room"})");
  CHECK(unsub.str("type") == "unsubscribe.ok");
  CHECK(unsub.raw("id") == "2");
  CHECK(unsub.str("channel") == "room");
  CHECK(f.hub.subscriber_count("room") == 0);
  CHECK_FALSE(c.s().channels().contains("room"));
  // Idempotent: leaving a channel you are not in still answers unsubscribe.ok.
  CHECK(f.ask(c, R"({"type":"unsubscribe","id":3,"channel":"never"})").str("type") == "unsubscribe.ok");
}

TEST_CASE("standard: chat fans out with increasing seq, sender gets chat.ok", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& alice = authed(f, "alice");
  Client& bob = authed(f, "bob");
  Client& carol = authed(f, "carol");  // not subscribed
  f.ask(alice, R"({"type":"subscribe","channel":"room"})");
  f.ask(bob, R"({"type":"subscribe","channel":"room"})");

  const long long before = now_ms();
  f.send(alice, R"({"type":"chat","id":10,"channel":"room","data":{"text":"hello","n":[1,2]}})");
  const long long after = now_ms();

  const std::vector<std::string> to_alice = f.received(alice);
  REQUIRE(to_alice.size() == 2);
  const Msg echo(to_alice[0]);
  const Msg ok(to_alice[1]);
  CHECK(ok.str("type") == "chat.ok");
  CHECK(ok.raw("id") == "10");
  CHECK(ok.raw("seq") == "1");

  const Msg to_bob = f.only(bob);
  for (const Msg* m : {&echo, &to_bob}) {
    INFO(m->text());
    CHECK(m->str("type") == "chat");
    CHECK(m->str("channel") == "room");
    CHECK(m->str("from") == "alice");
    CHECK(same_json(m->raw("data"), R"({"text":"hello","n":[1,2]})"));
    CHECK(m->raw("seq") == "1");
    CHECK(m->num("ts") >= static_cast<double>(before));
    CHECK(m->num("ts") <= static_cast<double>(after));
    CHECK_FALSE(m->has("id"));
  }
  CHECK(to_alice[0] == to_bob.text());  // one encoding for everyone
  f.expect_nothing(carol);

  f.send(bob, R"({"type":"chat","id":11,"channel":"room","data":"second"})");
  const Msg second = f.only(alice);
  CHECK(second.raw("seq") == "2");
  CHECK(second.str("from") == "bob");
  CHECK(second.str("data") == "second");
  const std::vector<std::string> to_bob2 = f.received(bob);
  REQUIRE(to_bob2.size() == 2);
  CHECK(Msg(to_bob2[1]).raw("seq") == "2");

  check_error(f.ask(carol, R"({"type":"chat","id":12,"channel":"room"})"), "bad_request",
              "field 'data' is required", "12");
  // null is data too.
  f.send(carol, R"({"type":"chat","id":13,"channel":"room","data":null})");
  const Msg ok3 = f.only(carol);
  CHECK(ok3.str("type") == "chat.ok");
  CHECK(ok3.raw("seq") == "3");
  CHECK(f.only(alice).raw("data") == "null");
  f.received(bob);
}

TEST_CASE("standard: typing reaches the channel but not the sender", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& alice = authed(f, "alice");
  Client& bob = authed(f, "bob");
  f.ask(alice, R"({"type":"subscribe","channel":"room"})");
  f.ask(bob, R"({"type":"subscribe","channel":"room"})");

  f.send(alice, R"({"type":"typing","id":1,"channel":"room","typing":true})");
  f.expect_nothing(alice);  // no reply, no echo
  const Msg t = f.only(bob);
  CHECK(t.str("type") == "typing");
  CHECK(t.str("channel") == "room");
  CHECK(t.str("from") == "alice");
  CHECK(t.is_true("typing"));

  check_error(f.ask(alice, R"({"type":"typing","id":2,"channel":"room","typing":"yes"})"), "bad_request",
              "field 'typing' must be a boolean", "2");
  f.expect_nothing(bob);
}

TEST_CASE("standard: heartbeat echoes the id", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  const long long before = now_ms();
  const Msg hb = f.ask(c, R"({"type":"heartbeat","id":"h1"})");
  CHECK(hb.str("type") == "heartbeat");
  CHECK(hb.raw("id") == "\"h1\"");
  CHECK(hb.num("ts") >= static_cast<double>(before));
  CHECK(hb.num("ts") <= static_cast<double>(now_ms()));
  CHECK(f.ask(c, R"({"type":"heartbeat","id":42})").raw("id") == "42");
  CHECK_FALSE(f.ask(c, R"({"type":"heartbeat"})").has("id"));
}

TEST_CASE("standard: error codes bad_json, bad_request, unknown_type", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);

  // The byte is where cJSON stopped: the offending byte, or the last byte
  // when the input ends early.
  check_error(f.ask(c, "{"), "bad_json", "invalid JSON at byte 0 (or nested deeper than 1000 levels)");
  check_error(f.ask(c, R"({"type":"heartbeat",})"), "bad_json",
              "invalid JSON at byte 20 (or nested deeper than 1000 levels)");
  check_error(f.ask(c, "{\"type\":\"heartbeat\"} trailing"), "bad_json",
              "invalid JSON at byte 21 (or nested deeper than 1000 levels)");
  check_error(f.ask(c, ""), "bad_json", "invalid JSON at byte 0 (or nested deeper than 1000 levels)");
  check_error(f.ask(c, R"({"a":)" + std::string(1000, '[') + std::string(1000, ']') + "}"), "bad_json",
              "invalid JSON at byte 1004 (or nested deeper than 1000 levels)");

  check_error(f.ask(c, "[1,2]"), "bad_request", "a message must be a JSON object");
  check_error(f.ask(c, "\"heartbeat\""), "bad_request", "a message must be a JSON object");
  check_error(f.ask(c, "42"), "bad_request", "a message must be a JSON object");
  check_error(f.ask(c, "null"), "bad_request", "a message must be a JSON object");

  // Without ids here; the id rule has its own test below.
  CHECK(f.ask(c, R"({"channel":"x"})").str("message") == "missing field 'type'");
  CHECK(f.ask(c, R"({"type":5})").str("message") == "field 'type' must be a string");
  CHECK(f.ask(c, R"({"type":null})").str("message") == "field 'type' must be a string");
  CHECK(f.ask(c, R"({"type":"nope"})").str("message") == "unknown message type 'nope'");
  CHECK(f.ask(c, R"({"type":"nope"})").str("code") == "unknown_type");
  CHECK(f.ask(c, R"({"type":""})").str("code") == "unknown_type");
  // Lifecycle hooks are not message types.
  check_error(f.ask(c, R"({"type":"on_open"})"), "unknown_type", "unknown message type 'on_open'");
  check_error(f.ask(c, R"({"type":"on_error"})"), "unknown_type", "unknown message type 'on_error'");
  CHECK(f.stats.errors_sent == 17);
  CHECK(f.stats.script_errors == 0);
}

// docs/protocol.md "The id rule": every error reply echoes the request's id
// when the request had one, including errors found before a handler is
// chosen (the decoded message is handed to on_error for those too).
TEST_CASE("standard: errors found before a handler is chosen echo the id (the id rule)", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  check_error(f.ask(c, R"({"type":"nope","id":9})"), "unknown_type", "unknown message type 'nope'", "9");
  check_error(f.ask(c, R"({"id":"x1"})"), "bad_request", "missing field 'type'", R"("x1")");
  check_error(f.ask(c, R"({"type":7,"id":10})"), "bad_request", "field 'type' must be a string", "10");
  check_error(f.ask(c, R"({"type":"on_open","id":11})"), "unknown_type", "unknown message type 'on_open'", "11");
}

TEST_CASE("script: the engine's default error shape echoes the id when there is no on_error", "[script]") {
  EngineFixture f;
  f.load("return { ping = function() return {type = 'pong'} end }");
  Client& c = f.connect();
  check_error(f.ask(c, R"({"type":"nope","id":9})"), "unknown_type", "unknown message type 'nope'", "9");
  check_error(f.ask(c, R"({"id":{"k":[1]}})"), "bad_request", "missing field 'type'", R"({"k":[1]})");
  check_error(f.ask(c, "[1]"), "bad_request", "a message must be a JSON object");
}

TEST_CASE("standard: script_error when the message does not fit the script's memory, id echoed", "[script]") {
  EngineFixture f;
  f.limits.memory_bytes = 1u << 20;
  open_standard(f);
  Client& c = authed(f, "alice");
  const std::string big(2u << 20, 'x');
  check_error(f.ask(c, R"({"type":"chat","id":77,"channel":"room","data":")" + big + "\"}"), "script_error",
              "the script failed", "77");
  CHECK(f.stats.script_errors == 1);
  // Still serving.
  CHECK(f.ask(c, R"({"type":"heartbeat","id":78})").raw("id") == "78");
}

TEST_CASE("standard: send_error goes through on_error", "[script]") {
  EngineFixture f;
  open_standard(f);
  Client& c = f.connect();
  f.received(c);
  f.engine().send_error(c.s(), "too_large", "message larger than 1048576 bytes");
  check_error(f.only(c), "too_large", "message larger than 1048576 bytes");
  CHECK(f.stats.errors_sent == 1);
}

// =============================================================================
// Part 2: inline scripts
// =============================================================================

TEST_CASE("script: a handler runtime error is contained", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.boom(session, msg) local t = nil; return t.field end
    function h.ok(session, msg) return {type = "ok", id = msg.id} end
    return h
  )");
  Client& a = f.connect();
  Client& b = f.connect();
  check_error(f.ask(a, R"({"type":"boom","id":1})"), "script_error", "the handler 'boom' failed", "1");
  CHECK(f.stats.script_errors == 1);
  CHECK(f.stats.errors_sent == 1);
  CHECK(f.ask(a, R"({"type":"ok","id":2})").str("type") == "ok");
  CHECK(f.ask(b, R"({"type":"ok","id":3})").raw("id") == "3");
  check_error(f.ask(b, R"({"type":"boom"})"), "script_error", "the handler 'boom' failed");
  CHECK(f.stats.script_errors == 2);
  CHECK(f.ask(a, R"({"type":"ok"})").str("type") == "ok");
}

TEST_CASE("script: handler return conventions", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.table(s, msg) return {type = "t", id = msg.id} end
    function h.text(s, msg) return "raw text, not JSON" end
    function h.none(s, msg) end
    function h.falsy(s, msg) return false end
    function h.fail(s, msg) return nil, "custom_code", "custom message" end
    function h.code_only(s, msg) return nil, "just_code" end
    function h.unencodable(s, msg) return {f = function() end} end
    function h.bad_close(s, msg) s:close(1005) end
    return h
  )");
  Client& c = f.connect();
  CHECK(f.ask(c, R"({"type":"table","id":[1]})").raw("id") == "[1]");
  f.send(c, R"({"type":"text"})");
  CHECK(f.received(c) == std::vector<std::string>{"raw text, not JSON"});
  f.send(c, R"({"type":"none"})");
  f.expect_nothing(c);
  f.send(c, R"({"type":"falsy"})");
  f.expect_nothing(c);
  check_error(f.ask(c, R"({"type":"fail","id":5})"), "custom_code", "custom message", "5");
  check_error(f.ask(c, R"({"type":"code_only"})"), "just_code", "just_code");
  CHECK(f.stats.script_errors == 0);
  check_error(f.ask(c, R"({"type":"unencodable","id":6})"), "script_error",
              "the handler's reply could not be encoded", "6");
  CHECK(f.stats.script_errors == 1);
  check_error(f.ask(c, R"({"type":"bad_close"})"), "script_error", "the handler 'bad_close' failed");
  CHECK_FALSE(c.s().closing());
}

TEST_CASE("script: on_error shapes every error", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.fail(s, msg) return nil, "nope", "not today" end
    function h.boom(s, msg) error("kaboom") end
    function h.on_error(session, code, message, msg)
      if code == "silent" then return nil end
      return {type = "problem", what = code, why = message, ref = type(msg) == "table" and msg.id or nil,
              who = session.id}
    end
    return h
  )");
  Client& c = f.connect("sess-1");
  const Msg e1 = f.ask(c, R"({"type":"fail","id":4})");
  CHECK(e1.str("type") == "problem");
  CHECK(e1.str("what") == "nope");
  CHECK(e1.str("why") == "not today");
  CHECK(e1.raw("ref") == "4");
  CHECK(e1.str("who") == "sess-1");

  const Msg e2 = f.ask(c, R"({"type":"boom","id":5})");
  CHECK(e2.str("what") == "script_error");
  CHECK(e2.str("why") == "the handler 'boom' failed");
  CHECK(e2.raw("ref") == "5");

  const Msg e3 = f.ask(c, "not json");
  CHECK(e3.str("what") == "bad_json");
  CHECK_FALSE(e3.has("ref"));

  f.engine().send_error(c.s(), "silent", "nobody hears this");
  f.expect_nothing(c);
  CHECK(f.stats.errors_sent == 4);
}

TEST_CASE("script: a failing on_error falls back to the default shape", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      fail = function() return nil, "nope", "not today" end,
      on_error = function() error("on_error is broken too") end,
    }
  )");
  Client& c = f.connect();
  check_error(f.ask(c, R"({"type":"fail","id":1})"), "nope", "not today", "1");
}

TEST_CASE("script: on_message is the fallback handler", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      known = function(s, msg) return {type = "known"} end,
      on_message = function(s, msg) return {type = "fallback", got = msg} end,
    }
  )");
  Client& c = f.connect();
  CHECK(f.ask(c, R"({"type":"known"})").str("type") == "known");
  const Msg fb = f.ask(c, R"({"type":"other","x":[]})");
  CHECK(fb.str("type") == "fallback");
  CHECK(fb.raw("got") == R"({"type":"other","x":[]})");
  CHECK(f.ask(c, R"({"no_type":1})").str("type") == "fallback");
  CHECK(f.ask(c, R"({"type":"on_open"})").str("type") == "fallback");
  // Not JSON objects are still refused before any handler.
  CHECK(f.ask(c, "[]").str("code") == "bad_request");
  CHECK(f.ask(c, "{").str("code") == "bad_json");
}

TEST_CASE("script: type_field picks the handler from another field", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      type_field = "op",
      ping = function(s, msg) return {op = "pong", seq = msg.seq} end,
    }
  )");
  Client& c = f.connect();
  const Msg pong = f.ask(c, R"({"op":"ping","seq":3})");
  CHECK(pong.str("op") == "pong");
  CHECK(pong.raw("seq") == "3");
  check_error(f.ask(c, R"({"type":"ping"})"), "bad_request", "missing field 'op'");
  check_error(f.ask(c, R"({"op":1})"), "bad_request", "field 'op' must be a string");
  check_error(f.ask(c, R"({"op":"pang"})"), "unknown_type", "unknown message type 'pang'");
}

TEST_CASE("script: an infinite loop times out and the engine carries on", "[script]") {
  EngineFixture f;
  f.limits.instructions_per_call = 100000;
  f.load(R"(
    local h = {}
    function h.spin(s, msg) while true do end end
    function h.sneaky(s, msg)
      local ok = pcall(function() while true do end end)
      return {type = "survived", ok = ok}
    end
    function h.stubborn(s, msg)
      while true do pcall(function() while true do end end) end
    end
    function h.xsneaky(s, msg)
      xpcall(function() while true do end end, function(e) return e end)
      return {type = "survived"}
    end
    function h.coro(s, msg)
      local co = coroutine.wrap(function() while true do end end)
      co()
      return {type = "survived"}
    end
    function h.work(s, msg)
      local n = 0
      for i = 1, 10000 do n = n + i end  -- well under the budget
      return {type = "done", n = n}
    end
    function h.on_error(s, code, message, msg) return {type = "shaped", code = code} end
    return h
  )");
  Client& c = f.connect();
  const auto timeout = [&](const char* type) {
    INFO("handler " << type);
    const Msg m = f.ask(c, std::string(R"({"type":")") + type + R"(","id":1})");
    // on_error is skipped once the budget is spent: the default shape.
    check_error(m, "script_timeout", "the handler ran past its instruction budget", "1");
  };
  timeout("spin");
  CHECK(f.stats.script_errors == 1);
  CHECK(f.ask(c, R"({"type":"work"})").raw("n") == "50005000");
  timeout("sneaky");
  timeout("stubborn");
  timeout("xsneaky");
  timeout("coro");
  CHECK(f.stats.script_errors == 5);
  // The budget is per call: many calls of cheap work are fine.
  for (int i = 0; i < 20; ++i) CHECK(f.ask(c, R"({"type":"work"})").str("type") == "done");
  // And errors after a timeout are shaped by on_error again.
  CHECK(f.ask(c, R"({"type":"nope"})").str("type") == "shaped");
}

TEST_CASE("script: an infinite loop at load time is a load error", "[script]") {
  EngineFixture f;
  f.limits.instructions_per_call = 100000;
  const std::string error = f.try_load("while true do end\nreturn {}", "spin.lua");
  CHECK_THAT(error, Catch::Contains("script_timeout: instruction budget exceeded"));
}

// Errors raised without a position (the budget, memory) get the script's name.
TEST_CASE("script: a load-time timeout names the script", "[script]") {
  EngineFixture f;
  f.limits.instructions_per_call = 100000;
  CHECK(f.try_load("while true do end\nreturn {}", "spin.lua") == "spin.lua: script_timeout: instruction budget exceeded");
  f.limits.instructions_per_call = 20000000;
  f.limits.memory_bytes = 1u << 20;
  CHECK(f.try_load("local s = string.rep('x', 1e8)\nreturn {}", "big.lua") ==
        "big.lua: not enough memory (script memory limit reached)");
  CHECK_THAT(f.try_load("local t = nil\nlocal x = t.y\nreturn {}", "nil.lua"),
             Catch::StartsWith("nil.lua:2: attempt to index a nil value"));
}

// Regression: a budget trip inside a coroutine used to re-arm only that
// coroutine's hook, so a pcall loop on the main thread swallowed every later
// raise and `while true do pcall(function() while true do end end) end` never
// returned. The loop here stops itself after 2000 rounds to stay finite.
TEST_CASE("script: a timeout inside a coroutine cannot be swallowed", "[script]") {
  EngineFixture f;
  f.limits.instructions_per_call = 100000;
  f.load(R"(
    return {
      escape = function(s, msg)
        pcall(coroutine.wrap(function() while true do end end))
        local rounds = 0
        while rounds < 2000 do
          rounds = rounds + 1
          pcall(function() while true do end end)
        end
        return {type = "escaped", rounds = rounds}
      end,
    }
  )");
  Client& c = f.connect();
  const Msg m = f.ask(c, R"({"type":"escape","id":1})");
  check_error(m, "script_timeout", "the handler ran past its instruction budget", "1");
}

TEST_CASE("script: the memory cap turns a memory bomb into script_error", "[script]") {
  EngineFixture f;
  f.limits.memory_bytes = 8u << 20;
  f.load(R"(
    local h = {}
    function h.rep(s, msg) local x = string.rep("x", 1e9); return {type = "rep", n = #x} end
    function h.grow(s, msg)
      local t = {}
      for i = 1, 1e8 do t[i] = i end
      return {type = "grow", n = #t}
    end
    function h.strings(s, msg)
      local t = {}
      for i = 1, 1e7 do t[i] = tostring(i) .. "-padding-padding-padding" end
      return {type = "strings"}
    end
    function h.ok(s, msg)
      local t = {}
      for i = 1, 1000 do t[i] = i end
      return {type = "ok", n = #t}
    end
    return h
  )");
  Client& c = f.connect();
  check_error(f.ask(c, R"({"type":"rep","id":1})"), "script_error", "the handler 'rep' failed", "1");
  CHECK(f.ask(c, R"({"type":"ok"})").raw("n") == "1000");
  check_error(f.ask(c, R"({"type":"grow","id":2})"), "script_error", "the handler 'grow' failed", "2");
  CHECK(f.ask(c, R"({"type":"ok"})").raw("n") == "1000");
  check_error(f.ask(c, R"({"type":"strings","id":3})"), "script_error", "the handler 'strings' failed", "3");
  CHECK(f.ask(c, R"({"type":"ok"})").raw("n") == "1000");
  CHECK(f.stats.script_errors == 3);
  // Other sessions are served too.
  Client& d = f.connect();
  CHECK(f.ask(d, R"({"type":"ok"})").str("type") == "ok");
}

TEST_CASE("script: the sandbox offers no way out", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.probe(s, msg)
      return {
        type = "probe",
        io = type(io), os_execute = type(os.execute), os_getenv = type(os.getenv),
        os_exit = type(os.exit), os_remove = type(os.remove), os_time = type(os.time),
        require = type(require), dofile = type(dofile), loadfile = type(loadfile),
        debug = type(debug), package = type(package), print = type(print),
        collectgarbage = type(collectgarbage), string_dump = type(string.dump),
        method_dump = type(("").dump), loadstring = type(loadstring),
        rawget_io = type(rawget(_G, "io")), g_is_env = (_G == _ENV),
        string = type(string), table = type(table), math = type(math), utf8 = type(utf8),
        coroutine = type(coroutine), pcall = type(pcall), setmetatable = type(setmetatable),
      }
    end
    function h.load_text(s, msg)
      local f, err = load("return 1 + 1")
      return {type = "load", value = f and f() or err}
    end
    function h.load_binary(s, msg)
      local f, err = load("\27LuaT\0\25\147\13\10\26\10")
      return {type = "load", loaded = f ~= nil, err = err}
    end
    function h.load_binary_mode(s, msg)
      local f, err = load("\27Lua", "x", "b")
      return {type = "load", loaded = f ~= nil, err = err}
    end
    function h.load_env(s, msg)
      local f = load("return io, relay ~= nil")
      local a, b = f()
      local g = load("return x", "chunk", "t", {x = 7})
      return {type = "load", io = type(a), relay = b, custom = g()}
    end
    function h.global(s, msg) leaked = 1 end
    function h.global_via_load(s, msg) load("leaked = 1")() end
    function h.check(s, msg) return {type = "check", leaked = type(rawget(_G, "leaked"))} end
    return h
  )");
  Client& c = f.connect();
  const Msg p = f.ask(c, R"({"type":"probe"})");
  INFO(p.text());
  for (const char* absent : {"io", "os_execute", "os_getenv", "os_exit", "os_remove", "require", "dofile",
                             "loadfile", "debug", "package", "print", "collectgarbage", "string_dump",
                             "method_dump", "loadstring", "rawget_io"}) {
    INFO(absent);
    CHECK(p.str(absent) == "nil");
  }
  for (const char* present : {"os_time", "pcall", "setmetatable"}) {
    INFO(present);
    CHECK(p.str(present) == "function");
  }
  for (const char* lib : {"string", "table", "math", "utf8", "coroutine"}) {
    INFO(lib);
    CHECK(p.str(lib) == "table");
  }
  CHECK(p.is_true("g_is_env"));

  CHECK(f.ask(c, R"({"type":"load_text"})").raw("value") == "2");
  const Msg bin = f.ask(c, R"({"type":"load_binary"})");
  CHECK(bin.is_false("loaded"));
  CHECK_THAT(bin.str("err"), Catch::Contains("binary chunk"));
  const Msg bin2 = f.ask(c, R"({"type":"load_binary_mode"})");
  CHECK(bin2.is_false("loaded"));
  CHECK_THAT(bin2.str("err"), Catch::Contains("binary chunk"));
  const Msg env = f.ask(c, R"({"type":"load_env"})");
  CHECK(env.str("io") == "nil");
  CHECK(env.is_true("relay"));
  CHECK(env.raw("custom") == "7");

  check_error(f.ask(c, R"({"type":"global","id":1})"), "script_error", "the handler 'global' failed", "1");
  check_error(f.ask(c, R"({"type":"global_via_load"})"), "script_error", "the handler 'global_via_load' failed");
  CHECK(f.ask(c, R"({"type":"check"})").str("leaked") == "nil");
  CHECK(f.stats.script_errors == 2);
}

// Regression: finalizers run with hooks off, outside the instruction budget,
// so a looping __gc could hang the event loop. The sandbox's setmetatable now
// refuses __gc; the handler fails with script_error and no finalizer runs.
TEST_CASE("script: a __gc finalizer cannot escape the instruction budget", "[script]") {
  EngineFixture f;
  f.limits.instructions_per_call = 1000000;
  f.load(R"(
    local h = {}
    function h.plant(session, msg)
      setmetatable({}, {__gc = function()
        local n = 0
        for i = 1, 1e7 do n = n + 1 end
        session:send("finalizer ran " .. n .. " iterations")
      end})
      for i = 1, 2e4 do local garbage = {i, i} end
      return {type = "planted"}
    end
    return h
  )");
  Client& c = f.connect();
  f.send(c, R"({"type":"plant"})");
  std::vector<std::string> got = f.received(c);
  f.unload();  // any finalizer still pending runs now, at lua_close
  for (auto& more : f.received(c)) got.push_back(more);
  INFO("received: " << Catch::Detail::stringify(got));
  for (const std::string& m : got) CHECK_THAT(m, !Catch::Contains("finalizer ran"));
}

TEST_CASE("script: load errors name the script and the problem", "[script]") {
  EngineFixture f;
  CHECK_THAT(f.try_load("local h = {}\nlocal = 5\nreturn h", "bad.lua"),
             Catch::StartsWith("bad.lua:2:") && Catch::Contains("near '='"));
  CHECK_THAT(f.try_load("local x = 1\nerror('nope')\nreturn {}", "boom.lua"),
             Catch::StartsWith("boom.lua:2: nope"));
  CHECK(f.try_load("return 42", "num.lua") == "num.lua: the script must return a table of handlers (it returned number)");
  CHECK(f.try_load("local h = {}", "none.lua") == "none.lua: the script must return a table of handlers (it returned nil)");
  CHECK(f.try_load("return { chat = 'hi' }", "h.lua") == "h.lua: handler 'chat' must be a function (got string)");
  CHECK(f.try_load("return { on_open = 5 }", "h.lua") == "h.lua: handler 'on_open' must be a function (got number)");
  CHECK(f.try_load("return { json = false, on_message = function() end }", "raw.lua") ==
        "raw.lua: a script with json = false needs an on_text handler");
  CHECK(f.try_load("return { json = 'no' }", "j.lua") == "j.lua: 'json' must be a boolean (got string)");
  CHECK(f.try_load("return { type_field = 1 }", "t.lua") == "t.lua: 'type_field' must be a string (got number)");
  CHECK(f.try_load("return { function() end }", "k.lua") == "k.lua: the handler table has a non-string key");
  CHECK_THAT(f.try_load("x = 1\nreturn {}", "g.lua"),
             Catch::StartsWith("g.lua:1:") && Catch::Contains("assignment to undeclared global 'x'"));
  // Reading an absent global is not a load error; it fails when run.
  CHECK(f.try_load("return { ok = function() return io.open('/etc/passwd') end }\n", "io.lua").empty());
  CHECK(f.try_load("return { json = false, on_text = function() end }", "ok.lua").empty());
}

TEST_CASE("script: session API from Lua", "[script]") {
  EngineFixture f;
  f.context.endpoint = "/rooms/{room}";
  f.load(R"(
    local h = {}
    function h.whoami(session, msg)
      return {type = "me", sid = session.id, user = session.user, closed = session.closed,
              text = tostring(session)}
    end
    function h.login(session, msg) session.user = msg.name; return {type = "login", user = session.user} end
    function h.logout(session, msg) session.user = nil; return {type = "logout", anonymous = session.user == nil} end
    function h.count(session, msg)
      session.attrs.n = (session.attrs.n or 0) + 1
      return {type = "count", n = session.attrs.n}
    end
    function h.info(session, msg)
      return {type = "info", params = session.params, path = session.path, endpoint = session.endpoint,
              remote = session.remote}
    end
    function h.push(session, msg)
      local ok, err = session:send({type = "pushed", text = msg.text})
      local ok2 = session:send("plain")
      return {type = "push.result", ok = ok, ok2 = ok2}
    end
    function h.bye(session, msg)
      session:send("before close")
      local ok = session:close(msg.code, msg.reason)
      local late, why = session:send("after close")
      session:send({type = "late", late = late, why = why})
      return {type = "after"}
    end
    function h.poke(session, msg) session.foo = 1 end
    function h.poke_attrs(session, msg) session.attrs = {} end
    return h
  )");
  wsrelay::session::SessionInfo info;
  info.path = "/rooms/lobby";
  info.remote = "10.1.2.3";
  info.params = {{"room", "lobby"}, {"kind", "public"}};
  Client& c = f.connect("sid-1", info);
  Client& other = f.connect("sid-2");

  const Msg me = f.ask(c, R"({"type":"whoami"})");
  CHECK(me.str("sid") == "sid-1");
  CHECK_FALSE(me.has("user"));
  CHECK(me.is_false("closed"));
  CHECK(me.str("text") == "session sid-1");

  CHECK(f.ask(c, R"({"type":"login","name":"zoe"})").str("user") == "zoe");
  REQUIRE(c.s().user().has_value());
  CHECK(*c.s().user() == "zoe");
  CHECK(f.ask(c, R"({"type":"whoami"})").str("user") == "zoe");
  CHECK_FALSE(other.s().user().has_value());
  CHECK(f.ask(c, R"({"type":"logout"})").is_true("anonymous"));
  CHECK_FALSE(c.s().user().has_value());
  check_error(f.ask(c, R"({"type":"login","name":5})"), "script_error", "the handler 'login' failed");

  // attrs persist across messages, per session.
  CHECK(f.ask(c, R"({"type":"count"})").raw("n") == "1");
  CHECK(f.ask(c, R"({"type":"count"})").raw("n") == "2");
  CHECK(f.ask(other, R"({"type":"count"})").raw("n") == "1");
  CHECK(f.ask(c, R"({"type":"count"})").raw("n") == "3");

  const Msg i = f.ask(c, R"({"type":"info"})");
  CHECK(same_json(i.raw("params"), R"({"room":"lobby","kind":"public"})"));
  CHECK(i.str("path") == "/rooms/lobby");
  CHECK(i.str("endpoint") == "/rooms/{room}");
  CHECK(i.str("remote") == "10.1.2.3");
  CHECK(f.ask(other, R"({"type":"info"})").raw("params") == "{}");

  f.send(c, R"({"type":"push","text":"hi"})");
  const std::vector<std::string> pushed = f.received(c);
  REQUIRE(pushed.size() == 3);
  CHECK(same_json(pushed[0], R"({"type":"pushed","text":"hi"})"));
  CHECK(pushed[1] == "plain");
  CHECK(same_json(pushed[2], R"({"type":"push.result","ok":true,"ok2":true})"));

  check_error(f.ask(c, R"({"type":"poke"})"), "script_error", "the handler 'poke' failed");
  check_error(f.ask(c, R"({"type":"poke_attrs"})"), "script_error", "the handler 'poke_attrs' failed");
  CHECK(f.ask(c, R"({"type":"count"})").raw("n") == "4");  // attrs survived

  // close(code, reason) sets the close intent; nothing is queued after it.
  f.send(c, R"({"type":"bye","code":4001,"reason":"see you"})");
  CHECK(c.s().closing());
  CHECK(c.s().close_code() == 4001);
  CHECK(c.s().close_reason() == "see you");
  CHECK(f.received(c) == std::vector<std::string>{"before close"});
}

TEST_CASE("script: session:send reports a full queue, the slow consumer is closed with 1008", "[script]") {
  EngineFixture f;
  f.max_queue_bytes = 100;
  f.load(R"(
    return {
      flood = function(session, msg)
        local results = {}
        for i = 1, 3 do
          local ok, err = session:send(string.rep("x", 40))
          results[i] = ok and "ok" or err
        end
        local ok, err = session:send("more")
        results[4] = ok and "ok" or err
        relay.send(msg.observer, {type = "flood", results = results, closed = session.closed})
      end,
    }
  )");
  Client& slow = f.connect("slow");
  Client& observer = f.connect("observer");
  f.send(slow, R"({"type":"flood","observer":"observer"})");
  const Msg r = f.only(observer);
  // 40 + 40 fit in 100 bytes; the third overflows, after which the session is closing.
  CHECK(r.raw("results") == R"(["ok","ok","queue full","closed"])");
  CHECK(r.is_false("closed"));  // closing, not closed: the script may still read it
  CHECK(slow.s().closing());
  CHECK(slow.s().close_code() == 1008);
  CHECK(slow.s().close_reason() == "slow consumer: outbound queue full");
  CHECK(f.stats.slow_consumer_closes == 1);
}

TEST_CASE("script: session:close validates code and reason", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      bye = function(session, msg) return {type = "ok", ok = session:close(msg.code, msg.reason)} end,
      default = function(session) session:close() end,
    }
  )");
  Client& a = f.connect();
  for (const char* bad : {R"({"type":"bye","code":1005})", R"({"type":"bye","code":1006})",
                          R"({"type":"bye","code":1015})", R"({"type":"bye","code":999})",
                          R"({"type":"bye","code":5000})", R"({"type":"bye","code":2000})"}) {
    INFO(bad);
    CHECK(f.ask(a, bad).str("code") == "script_error");
    CHECK_FALSE(a.s().closing());
  }
  CHECK(f.ask(a, R"({"type":"bye","code":1000,"reason":")" + std::string(124, 'r') + "\"}").str("code") ==
        "script_error");
  CHECK_FALSE(a.s().closing());
  f.send(a, R"({"type":"bye","code":3000,"reason":")" + std::string(123, 'r') + "\"}");
  CHECK(a.s().close_code() == 3000);
  CHECK(a.s().close_reason().size() == 123);

  Client& b = f.connect();
  f.send(b, R"({"type":"default"})");
  CHECK(b.s().close_code() == 1000);
  CHECK(b.s().close_reason().empty());
}

TEST_CASE("script: session:set_expiry sets, replaces and clears the session's expiry", "[script][expiry]") {
  EngineFixture f;
  f.context.jwt.secret = "s3cret";
  f.context.jwt.leeway_s = 7;
  f.load(R"(
    local jwt = require "relay.jwt"
    local h = {}
    function h.set(session, msg)
      local ok, err = session:set_expiry(msg.t)
      return {type = "set", ok = ok or false, err = err}
    end
    function h.bad(session, msg)
      if msg.kind == "string" then session:set_expiry("soon")
      elseif msg.kind == "nan" then session:set_expiry(0/0)
      else session:set_expiry() end
    end
    function h.leeway(session) return {type = "leeway", leeway = jwt.leeway()} end
    function h.later(session) return {type = "later", ok = relay.session(session.id):set_expiry(5)} end
    local kept
    function h.keep(session) kept = session end
    function h.probe()
      local ok, err = kept:set_expiry(1)
      return {type = "probe", ok = ok or false, err = err}
    end
    return h
  )");
  Client& c = f.connect();
  CHECK(f.ask(c, R"({"type":"set","t":1800000000.25})").is_true("ok"));
  CHECK(c.s().expiry.at_ms() == 1'800'000'000'250);
  CHECK(f.ask(c, R"({"type":"set","t":1700000000})").is_true("ok"));
  CHECK(c.s().expiry.at_ms() == 1'700'000'000'000);
  CHECK(f.ask(c, R"({"type":"set"})").is_true("ok"));  // nil clears
  CHECK_FALSE(c.s().expiry.set());
  CHECK(f.ask(c, R"({"type":"set","t":1e300})").is_true("ok"));  // as good as never
  CHECK_FALSE(c.s().expiry.set());
  CHECK(f.ask(c, R"({"type":"later"})").is_true("ok"));
  CHECK(c.s().expiry.at_ms() == 5000);

  // Wrong arguments raise (script_error), and change nothing.
  for (const char* kind : {"string", "nan"}) {
    INFO(kind);
    CHECK(f.ask(c, std::string(R"({"type":"bad","kind":")") + kind + "\"}").str("code") == "script_error");
    CHECK(c.s().expiry.at_ms() == 5000);
  }
  // set_expiry() with no argument at all is a mistake, not a clear.
  CHECK(f.ask(c, R"({"type":"bad","kind":"none"})").str("code") == "script_error");
  CHECK(c.s().expiry.at_ms() == 5000);

  // jwt.leeway(): the configured jwt.leeway, in seconds, as the verifier applies it.
  CHECK(f.ask(c, R"({"type":"leeway"})").raw("leeway") == "7");

  // After close: nil, "closed".
  f.send(c, R"({"type":"keep"})");
  f.disconnect(c);
  Client& d = f.connect();
  const Msg probe = f.ask(d, R"({"type":"probe"})");
  CHECK(probe.is_false("ok"));
  CHECK(probe.str("err") == "closed");
  CHECK_FALSE(d.s().expiry.set());
}

TEST_CASE("script: relay.send and relay.session address sessions by id", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.tell(session, msg)
      local ok, err = relay.send(msg.to, {type = "note", from = session.id, text = msg.text})
      return {type = "tell", ok = ok or false, err = err}
    end
    function h.tell_raw(session, msg)
      return {type = "tell", ok = relay.send(msg.to, "raw:" .. msg.text)}
    end
    function h.lookup(session, msg)
      local s = relay.session(msg.target)
      if not s then return {type = "lookup", found = false} end
      return {type = "lookup", found = true, sid = s.id, user = s.user, same = rawequal(s, session)}
    end
    function h.bad_send(session, msg) relay.send(session, {f = function() end}) end
    return h
  )");
  Client& a = f.connect("aaa");
  Client& b = f.connect("bbb");
  b.s().set_user("bea");

  const Msg t = f.ask(a, R"({"type":"tell","to":"bbb","text":"psst"})");
  CHECK(t.is_true("ok"));
  const Msg note = f.only(b);
  CHECK(note.str("type") == "note");
  CHECK(note.str("from") == "aaa");
  CHECK(note.str("text") == "psst");

  CHECK(f.ask(a, R"({"type":"tell_raw","to":"bbb","text":"x"})").is_true("ok"));
  CHECK(f.received(b) == std::vector<std::string>{"raw:x"});

  const Msg missing = f.ask(a, R"({"type":"tell","to":"nobody","text":"x"})");
  CHECK(missing.is_false("ok"));
  CHECK(missing.str("err") == "no such session");

  const Msg found = f.ask(a, R"({"type":"lookup","target":"bbb"})");
  CHECK(found.is_true("found"));
  CHECK(found.str("sid") == "bbb");
  CHECK(found.str("user") == "bea");
  CHECK(found.is_false("same"));
  CHECK(f.ask(a, R"({"type":"lookup","target":"aaa"})").is_true("same"));  // one userdata per session
  CHECK(f.ask(a, R"({"type":"lookup","target":"zzz"})").is_false("found"));

  // A session of another endpoint is not visible to this script.
  wsrelay::session::SessionInfo elsewhere;
  elsewhere.endpoint = "/other";
  Client& x = f.connect("xxx", elsewhere);
  CHECK(f.ask(a, R"({"type":"lookup","target":"xxx"})").is_false("found"));
  (void)x;

  // A closing session refuses: nil, "closed".
  b.s().close(1000, "");
  const Msg closed = f.ask(a, R"({"type":"tell","to":"bbb","text":"late"})");
  CHECK(closed.is_false("ok"));
  CHECK(closed.str("err") == "closed");

  // Unencodable message: a raised error, not a silent nil.
  CHECK(f.ask(a, R"({"type":"bad_send"})").str("code") == "script_error");
}

TEST_CASE("script: relay.publish, next_seq and subscribers", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.sub(session, msg) return {type = "sub", ok = session:subscribe(msg.channel)} end
    function h.unsub(session, msg) return {type = "unsub", ok = session:unsubscribe(msg.channel)} end
    function h.mine(session, msg)
      return {type = "mine", list = session:subscriptions(), is = session:is_subscribed(msg.channel)}
    end
    function h.pub(session, msg)
      local n = relay.publish(msg.channel, {type = "news", text = msg.text},
                              msg.exclude_me and {exclude = session} or nil)
      return {type = "pub", n = n}
    end
    function h.seq(session, msg)
      return {type = "seq", a = relay.next_seq(msg.channel), b = relay.next_seq(msg.channel)}
    end
    function h.count(session, msg)
      return {type = "count", n = relay.subscribers(msg.channel), channels = relay.channels()}
    end
    function h.empty_channel(session, msg) session:subscribe("") end
    return h
  )");
  Client& a = f.connect();
  Client& b = f.connect();
  Client& c = f.connect();
  CHECK(f.ask(a, R"({"type":"sub","channel":"room"})").is_true("ok"));
  CHECK(f.ask(a, R"({"type":"sub","channel":"room"})").is_false("ok"));
  CHECK(f.ask(b, R"({"type":"sub","channel":"room"})").is_true("ok"));
  CHECK(f.ask(b, R"({"type":"sub","channel":"other"})").is_true("ok"));

  const Msg mine = f.ask(b, R"({"type":"mine","channel":"room"})");
  CHECK(mine.raw("list") == R"(["other","room"])");
  CHECK(mine.is_true("is"));
  CHECK(f.ask(c, R"({"type":"mine","channel":"room"})").raw("list") == "[]");

  const Msg cnt = f.ask(c, R"({"type":"count","channel":"room"})");
  CHECK(cnt.raw("n") == "2");
  CHECK(cnt.raw("channels") == "2");

  // c is not subscribed: publishes reach a and b.
  CHECK(f.ask(c, R"({"type":"pub","channel":"room","text":"hi"})").raw("n") == "2");
  const Msg na = f.only(a);
  const Msg nb = f.only(b);
  CHECK(na.text() == R"({"type":"news","text":"hi"})");
  CHECK(nb.text() == na.text());

  // exclude = the sender.
  f.send(a, R"({"type":"pub","channel":"room","text":"not me","exclude_me":true})");
  CHECK(f.only(a).raw("n") == "1");
  CHECK(f.only(b).str("text") == "not me");
  f.expect_nothing(c);

  CHECK(f.ask(c, R"({"type":"pub","channel":"nobody","text":"x"})").raw("n") == "0");

  const Msg s1 = f.ask(c, R"({"type":"seq","channel":"room"})");
  CHECK(s1.raw("a") == "1");
  CHECK(s1.raw("b") == "2");
  CHECK(f.ask(c, R"({"type":"seq","channel":"room"})").raw("a") == "3");
  CHECK(f.ask(c, R"({"type":"seq","channel":"other"})").raw("a") == "1");

  CHECK(f.ask(a, R"({"type":"unsub","channel":"room"})").is_true("ok"));
  CHECK(f.ask(a, R"({"type":"unsub","channel":"room"})").is_false("ok"));
  CHECK(f.hub.subscriber_count("room") == 1);

  CHECK(f.ask(a, R"({"type":"empty_channel"})").str("code") == "script_error");

  // Closing a session leaves its channels (the protocol's part, done by the fixture).
  f.disconnect(b);
  CHECK(f.hub.channel_count() == 0);
}

TEST_CASE("script: relay.json, relay.null, relay.now, relay.time", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    function h.codec(session, msg)
      local encoded = relay.json.encode({type = "x", list = relay.json.array({}), obj = {}})
      local fn_value, fn_err = relay.json.encode({f = function() end})
      local bad, bad_err = relay.json.decode("[1,2")
      local decoded = relay.json.decode('{"a":null,"b":[],"c":{"d":2.5}}')
      return {
        type = "json",
        encoded = encoded,
        fn_value = fn_value == nil, fn_err = fn_err,
        bad = bad == nil, bad_err = bad_err,
        a_is_null = decoded.a == relay.null,
        same_null = relay.json.null == relay.null,
        b_reencoded = relay.json.encode(decoded.b),
        d = decoded.c.d,
        array_nil = relay.json.encode(relay.json.array()),
        array_kept = relay.json.encode(relay.json.array({1, 2})),
      }
    end
    function h.reply_null(session, msg) return {type = "n", value = relay.null, list = {relay.null, 1}} end
    function h.clock(session, msg) return {type = "clock", ms = relay.now(), s = relay.time()} end
    function h.decode_error(session, msg) relay.json.decode({}) end
    return h
  )");
  Client& c = f.connect();
  const Msg j = f.ask(c, R"({"type":"codec"})");
  CHECK_THAT(j.str("encoded"), Catch::StartsWith("{\"type\":\"x\","));
  CHECK(same_json(j.str("encoded"), R"({"type":"x","list":[],"obj":{}})"));
  CHECK(j.is_true("fn_value"));
  CHECK(j.str("fn_err") == "field 'f': cannot encode a function");
  CHECK(j.is_true("bad"));
  CHECK(j.str("bad_err") == "invalid JSON at byte 3");  // input ended: cJSON names the last byte
  CHECK(j.is_true("a_is_null"));
  CHECK(j.is_true("same_null"));
  CHECK(j.str("b_reencoded") == "[]");
  CHECK(j.raw("d") == "2.5");
  CHECK(j.str("array_nil") == "[]");
  CHECK(j.str("array_kept") == "[1,2]");

  const Msg n = f.ask(c, R"({"type":"reply_null"})");
  CHECK(n.raw("value") == "null");
  CHECK(n.raw("list") == "[null,1]");

  const long long before = now_ms();
  const Msg clock = f.ask(c, R"({"type":"clock"})");
  const long long after = now_ms();
  CHECK(clock.num("ms") >= static_cast<double>(before));
  CHECK(clock.num("ms") <= static_cast<double>(after));
  CHECK(clock.raw("ms").find('.') == std::string::npos);  // an integer
  CHECK(clock.num("s") >= static_cast<double>(before) / 1000.0 - 0.001);
  CHECK(clock.num("s") <= static_cast<double>(after) / 1000.0 + 0.001);

  // Wrong argument types raise (→ script_error); only operational failures are nil, reason.
  CHECK(f.ask(c, R"({"type":"decode_error"})").str("code") == "script_error");
}

TEST_CASE("script: relay.options and relay.config come from the context", "[script]") {
  EngineFixture f;
  f.context.endpoint = "/chat";
  f.context.heartbeat_interval_s = 17;
  f.context.heartbeat_timeout_s = 40;
  f.context.max_message_size = 4096;
  f.context.options_json = R"({"greeting":"hi","limits":{"n":3},"tags":[],"flag":false})";
  f.load(R"(
    return {
      opts = function(session, msg) return {type = "opts", options = relay.options, config = relay.config} end,
      jwt = function(session, msg) return {type = "jwt", enabled = relay.jwt.enabled()} end,
    }
  )");
  Client& c = f.connect();
  const Msg o = f.ask(c, R"({"type":"opts"})");
  CHECK(same_json(o.raw("options"), R"({"greeting":"hi","limits":{"n":3},"tags":[],"flag":false})"));
  CHECK(same_json(o.raw("config"),
                  R"({"endpoint":"/chat","heartbeat_interval":17,"heartbeat_timeout":40,"max_message_size":4096})"));
  CHECK(f.ask(c, R"({"type":"jwt"})").is_false("enabled"));

  // Options that are not an object give an empty table.
  EngineFixture g;
  g.context.options_json = "[1,2]";
  g.load("return { opts = function() return {type = 'opts', n = next(relay.options) == nil} end }");
  Client& d = g.connect();
  CHECK(g.ask(d, R"({"type":"opts"})").is_true("n"));
}

TEST_CASE("script: on_close gets code and reason, a kept reference reports closed", "[script]") {
  EngineFixture f;
  f.load(R"(
    local h = {}
    local saved
    function h.watch(session, msg)
      session:subscribe("closes")
      return {type = "watching"}
    end
    function h.on_close(session, code, reason)
      saved = session
      relay.publish("closes", {type = "closed", sid = session.id, code = code, reason = reason,
                               user = session.user, attrs_n = session.attrs.n})
    end
    function h.remember(session, msg) session.attrs.n = 42 end
    function h.check(session, msg)
      local ok, err = saved:send("hello?")
      local sub_ok, sub_err = saved:subscribe("x")
      local close_ok, close_err = saved:close()
      return {type = "saved", sid = saved.id, closed = saved.closed, user = saved.user,
              send_ok = ok, send_err = err, sub_err = sub_err, close_err = close_err,
              attrs_n = saved.attrs.n, found = relay.session(saved.id) ~= nil}
    end
    function h.send_to_saved(session, msg)
      local ok, err = relay.send(saved, "x")
      return {type = "r", ok = ok, err = err}
    end
    return h
  )");
  Client& watcher = f.connect("watcher");
  Client& leaver = f.connect("leaver");
  leaver.s().set_user("lee");
  CHECK(f.ask(watcher, R"({"type":"watch"})").str("type") == "watching");
  f.send(leaver, R"({"type":"remember"})");

  f.disconnect(leaver, 1001, "going away");
  const Msg closed = f.only(watcher);
  CHECK(closed.str("type") == "closed");
  CHECK(closed.str("sid") == "leaver");
  CHECK(closed.raw("code") == "1001");
  CHECK(closed.str("reason") == "going away");
  CHECK(closed.str("user") == "lee");
  CHECK(closed.raw("attrs_n") == "42");
  CHECK(leaver.s().script_ref == LUA_NOREF);

  const Msg s = f.ask(watcher, R"({"type":"check"})");
  CHECK(s.str("sid") == "leaver");  // the id stays readable
  CHECK(s.is_true("closed"));
  CHECK_FALSE(s.has("user"));
  CHECK_FALSE(s.has("send_ok"));
  CHECK(s.str("send_err") == "closed");
  CHECK(s.str("sub_err") == "closed");
  CHECK(s.str("close_err") == "closed");
  CHECK(s.raw("attrs_n") == "42");
  CHECK(s.is_false("found"));
  CHECK_FALSE(leaver.s().closing());  // the stale close touched nothing
  const Msg r = f.ask(watcher, R"({"type":"send_to_saved"})");
  CHECK_FALSE(r.has("ok"));
  CHECK(r.str("err") == "no such session");
}

// docs/lua-api.md "During on_close the session is still readable (closed is
// still false, user, attrs, params and subscriptions() work) but sends to it
// fail with "closed"."
// The protocol detaches the session before on_close, so sends fail and
// `closed` already reads true, while user and subscriptions are still readable.
TEST_CASE("script: during on_close the session is readable but closed", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      sub = function(session) session:subscribe("room") end,
      on_close = function(session, code, reason)
        local ok, err = session:send("too late")
        relay.send("watcher", {type = "in_close", closed = session.closed, subs = session:subscriptions(),
                               user = session.user, send_err = err})
      end,
    }
  )");
  Client& watcher = f.connect("watcher");
  Client& leaver = f.connect("leaver");
  leaver.s().set_user("lee");
  f.send(leaver, R"({"type":"sub"})");
  f.disconnect(leaver, 1000, "");
  const Msg m = f.only(watcher);
  CHECK(m.str("send_err") == "closed");
  CHECK(m.str("user") == "lee");
  CHECK(m.raw("subs") == R"(["room"])");
  CHECK(m.raw("closed") == "true");
}

TEST_CASE("script: a failing on_close is counted, not fatal", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      on_close = function(session, code, reason) error("cleanup failed") end,
      ping = function() return {type = "pong"} end,
    }
  )");
  Client& a = f.connect();
  Client& b = f.connect();
  f.disconnect(a, 1000, "bye");
  CHECK(f.stats.script_errors == 1);
  f.expect_nothing(a);
  CHECK(f.ask(b, R"({"type":"ping"})").str("type") == "pong");
}

TEST_CASE("script: on_open can refuse, reply, or fail", "[script]") {
  SECTION("reply") {
    EngineFixture f;
    f.load("return { on_open = function(s) return {type = 'hello', sid = s.id} end }");
    Client& c = f.connect("o1");
    CHECK(f.only(c).text() == R"({"type":"hello","sid":"o1"})");
  }
  SECTION("error reply") {
    EngineFixture f;
    f.load("return { on_open = function(s) return nil, 'full', 'server full' end }");
    Client& c = f.connect();
    check_error(f.only(c), "full", "server full");
  }
  SECTION("runtime error") {
    EngineFixture f;
    f.load("return { on_open = function(s) error('no') end, ping = function() return 'pong' end }");
    Client& c = f.connect();
    check_error(f.only(c), "script_error", "the handler 'on_open' failed");
    CHECK(f.stats.script_errors == 1);
    f.send(c, R"({"type":"ping"})");
    CHECK(f.received(c) == std::vector<std::string>{"pong"});
  }
  SECTION("no on_open: nothing is sent") {
    EngineFixture f;
    f.load("return {}");
    Client& c = f.connect();
    f.expect_nothing(c);
    CHECK(c.transport.write_requests == 0);
  }
}

TEST_CASE("script: json = false hands raw text to on_text", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      json = false,
      on_text = function(session, text) return "echo:" .. text end,
    }
  )");
  Client& c = f.connect();
  f.send(c, "hello {not json");
  f.send(c, R"({"type":"chat"})");
  f.send(c, std::string("with\0nul", 8));
  CHECK(f.received(c) == std::vector<std::string>{"echo:hello {not json", R"(echo:{"type":"chat"})",
                                                  std::string("echo:with\0nul", 13)});
  f.send_binary(c, "\x01\x02");
  check_error(f.only(c), "bad_request", "binary frames are not accepted on this endpoint");
}

TEST_CASE("script: on_binary receives binary frames", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      on_binary = function(session, bytes) return {type = "bin", n = #bytes, first = bytes:byte(1)} end,
    }
  )");
  Client& c = f.connect();
  f.send_binary(c, std::string("\0\xff\x10", 3));
  const Msg m = f.only(c);
  CHECK(m.raw("n") == "3");
  CHECK(m.raw("first") == "0");
}

TEST_CASE("script: in JSON mode on_text catches frames that are not JSON", "[script]") {
  EngineFixture f;
  f.load(R"(
    return {
      on_text = function(session, text) return {type = "text", text = text} end,
      ping = function() return {type = "pong"} end,
    }
  )");
  Client& c = f.connect();
  CHECK(f.ask(c, "plain words").str("text") == "plain words");
  CHECK(f.ask(c, "[1,2]").str("text") == "[1,2]");
  CHECK(f.ask(c, R"({"type":"ping"})").str("type") == "pong");
}

TEST_CASE("script: session:subscribe refuses names and counts over the limits with nil, why", "[script]") {
  EngineFixture f;
  f.context.max_channel_length = 8;
  f.context.max_subscriptions = 2;
  f.load(R"(
    return {
      sub = function(s, msg)
        local ok, why = s:subscribe(msg.channel)
        return {type = "sub", ok = ok == true, why = why or relay.null}
      end,
    }
  )");
  Client& c = f.connect();
  CHECK(f.ask(c, R"({"type":"sub","channel":"a"})").raw("ok") == "true");
  CHECK(f.ask(c, R"({"type":"sub","channel":"123456789"})").str("why") == "channel name longer than 8 bytes");
  CHECK(f.ask(c, R"({"type":"sub","channel":"a\tb"})").str("why") == "channel name contains a control character");
  CHECK(f.ask(c, R"({"type":"sub","channel":"b"})").raw("ok") == "true");
  CHECK(f.ask(c, R"({"type":"sub","channel":"c"})").str("why") == "too many subscriptions (limit 2)");
  CHECK(f.ask(c, R"({"type":"sub","channel":"a"})").raw("why") == "null");  // already in: not over the cap
  CHECK(f.hub.subscriber_count("c") == 0);
}

TEST_CASE("script: limits.message_types refuses a type over its rate before the handler runs", "[script]") {
  EngineFixture f;
  // The connection's rate gate, as core/connection gives every session one.
  config::Limits limits;
  limits.message_types = {{"chat", 0.001, 2}};  // two, then none for a long while
  limits.rate_limit_close_after = 3;
  server::Admission admission(limits);
  f.load(R"(
    local n = 0
    return {
      chat = function(s, msg) n = n + 1; return {type = "chat.ok", id = msg.id, n = n} end,
      other = function(s, msg) return {type = "other.ok"} end,
    }
  )");
  Client& c = f.connect();
  connection::RateGate gate(admission, limits, &f.stats);
  gate.bind(c.s());
  c.s().gate = &gate;
  CHECK(f.ask(c, R"({"type":"chat","id":1})").raw("n") == "1");
  CHECK(f.ask(c, R"({"type":"chat","id":2})").raw("n") == "2");
  const Msg refused = f.ask(c, R"({"type":"chat","id":3})");
  CHECK(refused.str("code") == "rate_limited");
  CHECK(refused.raw("id") == "3");
  CHECK(refused.str("message").find("too many 'chat' messages; retry after ") == 0);
  CHECK(f.ask(c, R"({"type":"other"})").str("type") == "other.ok");  // other types pass
  CHECK(f.stats.rate_limited == 1);
  // A handler ran (other): the count of refusals in a row starts again.
  CHECK(gate.refused_in_a_row() == 0);
  CHECK(f.ask(c, R"({"type":"chat","id":4})").str("code") == "rate_limited");
  CHECK(f.ask(c, R"({"type":"chat","id":5})").str("code") == "rate_limited");
  CHECK_FALSE(c.s().closing());
  // The third refusal in a row closes with 1008 instead of answering.
  f.send(c, R"({"type":"chat","id":6})");
  CHECK(c.s().closing());
  CHECK(c.s().close_code() == 1008);
  // Another connection has its own buckets.
  Client& d = f.connect();
  connection::RateGate other_gate(admission, limits, &f.stats);
  other_gate.bind(d.s());
  d.s().gate = &other_gate;
  CHECK(f.ask(d, R"({"type":"chat","id":1})").raw("n") == "3");
}

TEST_CASE("script: collect_garbage frees what closed sessions left behind", "[script]") {
  EngineFixture f;
  f.load_standard();
  lua_State* L = f.engine().internal()->L;
  auto lua_kib = [&] { return lua_gc(L, LUA_GCCOUNT); };
  f.engine().collect_garbage();
  const int before = lua_kib();
  lua_gc(L, LUA_GCSTOP);  // the sessions' garbage stays, as between two cycles of a busy server
  for (int i = 0; i < 200; ++i) {
    Client& c = authed(f, "u" + std::to_string(i));
    f.ask(c, R"({"type":"subscribe","channel":"room"})");
    f.disconnect(c);
  }
  const int grown = lua_kib();
  f.engine().collect_garbage();
  INFO("Lua KiB: " << before << " at first, " << grown << " after 200 sessions, " << lua_kib() << " collected");
  CHECK(grown > before + 50);
  CHECK(lua_kib() <= before + 16);
  lua_gc(L, LUA_GCRESTART);
}
