// Server life cycle and configuration-driven behaviour: custom scripts loaded
// at start, path placeholders, several endpoints on one listener, on_close,
// the idle timeout, SIGTERM drain and --check on the real binary, and
// survival of clients that put garbage on the wire.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <thread>

#include "support/server_fixture.hpp"
#include "support/server_process.hpp"

using namespace std::chrono_literals;
using namespace wsrelay::test;

namespace {

std::string text_or_none(const std::optional<std::string>& text) { return text ? *text : "<no text message>"; }

// A plain-text echo script whose replies carry `prefix`.
std::string echo_script(const std::string& prefix) {
  return "return {\n"
         "  json = false,\n"
         "  on_text = function(session, text) return \"" +
         prefix + "\" .. text end,\n}\n";
}

// standard.lua plus an on_close that tells every channel the session was in.
const char* const kLeaveAnnouncer = R"lua(
function handlers.on_close(session, code, reason)
  for _, channel in ipairs(session:subscriptions()) do
    relay.publish(channel, { type = "left", channel = channel, user = session.user, code = code, reason = reason,
                             closed = session.closed, send_result = tostring(session:send("x")) })
  end
end
)lua";

// Speaker chats on "room"; observer (subscribed) must receive it.
void require_relay_works(WsClient& speaker, WsClient& observer, const std::string& data) {
  Json ok = request(speaker, R"({"type":"chat","id":1,"channel":"room","data":")" + data + "\"}");
  INFO("speaker got: " << ok.print());
  REQUIRE(ok.str("type") == "chat.ok");
  Json chat = recv_json(observer);
  INFO("observer got: " << chat.print());
  REQUIRE(chat.str("type") == "chat");
  REQUIRE(chat.str("data") == data);
}

// What became of a client that put garbage on the wire, and of the others.
struct GarbageOutcome {
  bool offender_closed = false;
  int close_code = 0;
  bool code_acceptable = false;  // one of the codes the test allows
  double connections = -1;       // /status once the offender is gone
  double subscriptions = -1;

  // The offender was closed with an allowed code, and the server counts
  // the two others only (its subscription gone).
  bool offender_dropped() const { return offender_closed && code_acceptable; }
  bool others_unaffected() const { return connections == 2 && subscriptions == 1; }
  std::string describe() const {
    return "offender closed: " + std::string(offender_closed ? "yes" : "no") + ", code " +
           std::to_string(close_code) + "; /status connections " + std::to_string(static_cast<long>(connections)) +
           ", subscriptions " + std::to_string(static_cast<long>(subscriptions));
  }
};

// One client puts `garbage` on the wire; the caller checks that it was
// dropped and everyone else carried on. The relay between the others (and
// to a client arriving after) must keep working throughout: required here.
template <typename Garbage>
GarbageOutcome garbage_client(Garbage&& garbage, std::initializer_list<int> acceptable_codes) {
  GarbageOutcome outcome;
  ServerFixture server;
  auto speaker = server.connect_as("sam");
  auto observer = server.connect_as("olivia", "room");
  auto offender = server.connect_as("mallory", "room");
  require_relay_works(*speaker, *observer, "before");
  REQUIRE(recv_json(*offender).str("type") == "chat");

  REQUIRE(garbage(*offender));
  // Deadlines, not expected durations: each wait ends as soon as its condition
  // holds, and a loaded machine can take a second or more to get there.
  outcome.offender_closed = offender->wait_closed(3s);
  outcome.close_code = offender->close_code();
  for (int code : acceptable_codes) outcome.code_acceptable = outcome.code_acceptable || outcome.close_code == code;

  require_relay_works(*speaker, *observer, "after");
  Json status = server.status();
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (status.num("connections") != 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    status = server.status();
  }
  outcome.connections = status.num("connections");
  outcome.subscriptions = status.num("subscriptions");
  // New clients are still welcome.
  auto late = server.connect_as("late", "room");
  require_relay_works(*speaker, *late, "late");
  return outcome;
}

}  // namespace

TEST_CASE("server lifecycle: a custom script changes routing without a rebuild", "[integration]") {
  for (const std::string prefix : {"v1:", "second version:"}) {
    TempDir dir;
    dir.write("scripts/echo.lua", echo_script(prefix));
    ServerFixture server(
        parse_test_config(R"({"endpoints":[{"path":"/ws","script":"scripts/echo.lua"}]})", dir.path()));
    auto client = server.connect_raw("/ws");
    CHECK(silent_for(*client, 100ms));  // no on_open: no welcome
    REQUIRE(client->send_text("hello"));
    auto reply = client->recv_text();
    CHECK(text_or_none(reply) == prefix + "hello");
    // Not the standard protocol: a heartbeat request is just text to echo.
    const std::string hb = R"({"type":"heartbeat","id":1})";
    REQUIRE(client->send_text(hb));
    CHECK(text_or_none(client->recv_text()) == prefix + hb);
    CHECK(server.status().get("endpoints").at(0).str("script") == "scripts/echo.lua");
  }
}

TEST_CASE("server lifecycle: a {user_id} placeholder in the path reaches session.params", "[integration]") {
  TempDir dir;
  dir.write("params.lua", R"lua(
return {
  on_open = function(session)
    return { type = "hello", user_id = session.params.user_id, path = session.path, endpoint = session.endpoint }
  end,
  params = function(session, msg)
    return { type = "params", id = msg.id, params = session.params }
  end,
}
)lua");
  ServerFixture server(parse_test_config(
      R"({"endpoints":[{"path":"/api/v1/ws/{user_id}","script":"params.lua"},{"path":"/ws"}]})", dir.path()));

  for (const std::string user : {"42", "bob", "x_y-z.1"}) {
    auto client = server.connect_raw("/api/v1/ws/" + user + "?ignored=1");
    Json hello = recv_json(*client);
    INFO("hello: " << hello.print());
    CHECK(hello.str("type") == "hello");
    CHECK(hello.str("user_id") == user);
    CHECK(hello.str("path") == "/api/v1/ws/" + user);
    CHECK(hello.str("endpoint") == "/api/v1/ws/{user_id}");
    Json params = request(*client, R"({"type":"params","id":1})");
    CHECK(params.get("params").str("user_id") == user);
    CHECK(params.get("params").size() == 1);
  }
  // The placeholder is one whole segment.
  std::string error;
  auto deeper = WsClient::connect("127.0.0.1", server.port(), "/api/v1/ws/42/extra", {}, &error);
  CHECK(deeper == nullptr);
  CHECK(error == "HTTP 404");
}

TEST_CASE("server lifecycle: two endpoints with different scripts share one listener and the channels",
          "[integration]") {
  TempDir dir;
  dir.write("notify.lua", R"lua(
return {
  json = false,
  on_text = function(session, text)
    local n = relay.publish("room", { type = "notice", text = text })
    return "published to " .. n
  end,
}
)lua");
  ServerFixture server(parse_test_config(
      R"({"endpoints":[{"path":"/ws"},{"path":"/notify","script":"notify.lua"}]})", dir.path()));

  auto standard = server.connect_as("alice", "room");  // REQUIREs the standard welcome
  auto notifier = server.connect_raw("/notify");
  CHECK(silent_for(*notifier, 100ms));  // that script sends no welcome

  REQUIRE(notifier->send_text("maintenance at 18:00"));
  CHECK(text_or_none(notifier->recv_text()) == "published to 1");
  Json notice = recv_json(*standard);
  INFO("standard client got: " << notice.print());
  CHECK(notice.str("type") == "notice");
  CHECK(notice.str("text") == "maintenance at 18:00");

  // The standard endpoint still speaks its own protocol.
  CHECK(request(*standard, R"({"type":"heartbeat","id":2})").str("type") == "heartbeat");

  Json endpoints = server.status().get("endpoints");
  REQUIRE(endpoints.size() == 2);
  CHECK(endpoints.at(0).str("path") == "/ws");
  CHECK(endpoints.at(0).num("connections") == 1);
  CHECK(endpoints.at(1).str("path") == "/notify");
  CHECK(endpoints.at(1).str("script") == "notify.lua");
  CHECK(endpoints.at(1).num("connections") == 1);
}

TEST_CASE("server lifecycle: on_close announces a clean close to the channel", "[integration]") {
  TempDir dir;
  dir.write("leave.lua", standard_script_with(kLeaveAnnouncer));
  ServerFixture server(parse_test_config(R"({"endpoints":[{"path":"/ws","script":"leave.lua"}]})", dir.path()));
  auto a = server.connect_as("alice", "room");
  auto b = server.connect_as("bob", "room");
  auto c = server.connect_as("carol", "room");
  auto outsider = server.connect_as("olga", "elsewhere");

  REQUIRE(a->close(4001, "bye now"));
  auto echo = a->recv();
  REQUIRE(echo.has_value());
  CHECK(echo->kind == WsMessage::Kind::Close);
  CHECK(echo->close_code == 4001);
  for (WsClient* client : {b.get(), c.get()}) {
    Json left = recv_json(*client);
    INFO("got: " << left.print());
    CHECK(left.str("type") == "left");
    CHECK(left.str("channel") == "room");
    CHECK(left.str("user") == "alice");
    CHECK(left.num("code") == 4001);
    CHECK(left.str("reason") == "bye now");
    // Inside on_close the session already reads closed, and sends to it fail.
    CHECK(left.get("closed").is_bool());
    CHECK(left.boolean("closed"));
    CHECK(left.str("send_result") == "nil");
  }
  CHECK(silent_for(*outsider, 100ms));
  CHECK(silent_for(*b, 50ms));  // exactly one announcement
}

TEST_CASE("server lifecycle: on_close sees a dropped connection as 1006", "[integration]") {
  TempDir dir;
  dir.write("leave.lua", standard_script_with(kLeaveAnnouncer));
  ServerFixture server(parse_test_config(R"({"endpoints":[{"path":"/ws","script":"leave.lua"}]})", dir.path()));
  auto a = server.connect_as("alice", "room");
  auto b = server.connect_as("bob", "room");
  a.reset();  // socket closed without a close frame
  Json left = recv_json(*b);
  INFO("got: " << left.print());
  CHECK(left.str("type") == "left");
  CHECK(left.str("user") == "alice");
  CHECK(left.num("code") == 1006);
  CHECK(left.str("reason").empty());
}

TEST_CASE("server lifecycle: a silent client is dropped, one that answers pings or sends messages stays",
          "[integration][slow]") {
  TempDir dir;
  ServerFixture server(parse_test_config(
      R"({"heartbeat":{"interval":1,"timeout":3},"endpoints":[{"path":"/ws"}]})", dir.path()));
  auto silent = server.connect();  // sends nothing, answers no ping
  silent->set_auto_pong(false);
  auto lively = server.connect();  // answers pings while we read, sends nothing
  lively->set_return_control(true);
  auto chatty = server.connect();  // answers no ping, but sends app-level heartbeats
  chatty->set_auto_pong(false);
  const auto start = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::steady_clock::now() - start; };

  std::optional<std::chrono::steady_clock::duration> dropped_after;
  int pings_seen = 0;
  int heartbeats = 0;
  auto next_heartbeat = 700ms;
  while (elapsed() < 5500ms) {
    if (!dropped_after) {
      silent->recv(50ms);  // pings are neither answered nor returned
      if (silent->closed()) dropped_after = elapsed();
    }
    auto m = lively->recv(50ms);
    if (m && m->kind == WsMessage::Kind::Ping) ++pings_seen;
    REQUIRE_FALSE(lively->closed());
    if (elapsed() >= next_heartbeat) {
      next_heartbeat += 700ms;
      Json hb = request(*chatty, R"({"type":"heartbeat","id":"hb"})", 3s);
      REQUIRE(hb.str("id") == "hb");
      ++heartbeats;
    }
  }
  REQUIRE(dropped_after.has_value());
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(*dropped_after).count();
  INFO("silent client dropped after " << ms << " ms, close code " << silent->close_code());
  CHECK(ms >= 2500);  // not before the 3 s timeout
  CHECK(ms <= 5000);
  CHECK(silent->close_code() == 1006);  // dropped without a close frame
  // The client that answered pings is still served, past the timeout ...
  CHECK(pings_seen >= 2);
  lively->set_return_control(false);
  CHECK(request(*lively, R"({"type":"heartbeat","id":"still"})").str("id") == "still");
  // ... and so is the one that only sent messages.
  CHECK(heartbeats >= 6);
  CHECK_FALSE(chatty->closed());
  CHECK(server.status().num("connections") == 2);
}

TEST_CASE("server lifecycle: SIGTERM drains queued messages, closes with 1001 and exits 0", "[integration]") {
  std::string error;
  auto proc = ServerProcess::start({"--port", "0"}, {{"WSRELAY_JWT_SECRET", ""}}, &error);
  INFO("start: " << error);
  REQUIRE(proc != nullptr);

  auto connect = [&] {
    std::string e;
    auto c = WsClient::connect("127.0.0.1", proc->port(), "/ws", {}, &e);
    INFO("connect: " << e);
    REQUIRE(c != nullptr);
    REQUIRE(recv_json(*c).str("type") == "welcome");
    return c;
  };
  auto sender = connect();
  auth(*sender, "alice");
  auto reader = connect();
  auth(*reader, "bob");
  subscribe(*reader, "room");

  // The reader does not read: 100 chats of ~20 KB pile up for it.
  constexpr int kChats = 100;
  const std::string payload(20000, 'q');
  for (int i = 1; i <= kChats; ++i) {
    Json ok = request(*sender, R"({"type":"chat","id":1,"channel":"room","data":")" + payload + "\"}");
    REQUIRE(ok.str("type") == "chat.ok");
    REQUIRE(ok.num("seq") == i);
  }
  REQUIRE(::kill(proc->pid(), SIGTERM) == 0);
  std::this_thread::sleep_for(200ms);  // a server that dropped its queues would be gone by now

  int received = 0;
  for (int i = 1; i <= kChats; ++i) {
    Json chat = recv_json(*reader);
    if (chat.str("type") != "chat" || chat.num("seq") != i || chat.str("data") != payload) {
      UNSCOPED_INFO("chat " << i << " is " << chat.print().substr(0, 100));
      break;
    }
    ++received;
  }
  CHECK(received == kChats);
  auto close = reader->recv();
  REQUIRE(close.has_value());
  CHECK(close->kind == WsMessage::Kind::Close);
  CHECK(close->close_code == 1001);
  CHECK(close->data == "server shutting down");

  auto sender_close = sender->recv();
  REQUIRE(sender_close.has_value());
  CHECK(sender_close->kind == WsMessage::Kind::Close);
  CHECK(sender_close->close_code == 1001);

  int status = -1;
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while ((status = proc->exit_status()) == -1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  INFO("server log:\n" << proc->log());
  CHECK(status == 0);
}

TEST_CASE("server lifecycle: --check validates the config and every script", "[integration]") {
  TempDir dir;
  dir.write("echo.lua", echo_script("e:"));
  dir.write("broken.lua", "return {\n  on_text = function(s, t)\n    return t +\n  end,\n}\n");
  const std::string good = dir.write(
      "good.json", R"({"listen":{"port":0},"endpoints":[{"path":"/ws"},{"path":"/echo","script":"echo.lua"}]})");
  const std::string bad_script =
      dir.write("bad_script.json", R"({"endpoints":[{"path":"/ws","script":"broken.lua"}]})");
  const std::string bad_keys = dir.write(
      "bad_keys.json", R"({"listen":{"port":70000},"endpoints":[{"path":"ws","scirpt":"x.lua"}]})");

  CommandResult ok = run_command({WSRELAY_BINARY, "--check", "--config", good});
  INFO("good: rc=" << ok.exit_code << "\nout: " << ok.out << "\nerr: " << ok.err);
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("ok (2 endpoints)") != std::string::npos);
  CHECK(ok.out.find("listening") == std::string::npos);  // it does not serve

  CommandResult script = run_command({WSRELAY_BINARY, "--check", "--config", bad_script});
  INFO("bad script: rc=" << script.exit_code << "\nout: " << script.out << "\nerr: " << script.err);
  CHECK(script.exit_code == 1);
  CHECK(script.err.find("broken.lua:") != std::string::npos);

  CommandResult keys = run_command({WSRELAY_BINARY, "--check", "--config", bad_keys});
  INFO("bad keys: rc=" << keys.exit_code << "\nout: " << keys.out << "\nerr: " << keys.err);
  CHECK(keys.exit_code == 1);
  CHECK(keys.err.find("listen.port: must be between 0 and 65535") != std::string::npos);
  CHECK(keys.err.find("endpoints[0].scirpt: unknown key") != std::string::npos);
  CHECK(keys.err.find("endpoints[0].path: must start with \"/\"") != std::string::npos);
}

TEST_CASE("server lifecycle: a client sending an invalid opcode is dropped, the others continue",
          "[integration]") {
  const GarbageOutcome outcome = garbage_client([](WsClient& c) { return c.send_frame(0x3, "x"); }, {1002, 1006});
  INFO(outcome.describe());
  CHECK(outcome.offender_dropped());
  CHECK(outcome.others_unaffected());
}

// BUG (server): a client frame without a mask is accepted and handled like a
// masked one (an unmasked {"type":"heartbeat"} is answered), where RFC 6455
// section 5.1 requires the server to close the connection. The client is never
// dropped, so this test fails until the server enforces masking.
TEST_CASE("server lifecycle: a client sending an unmasked frame is dropped, the others continue",
          "[integration][!shouldfail]") {
  const GarbageOutcome outcome = garbage_client(
      [](WsClient& c) { return c.send_frame(wsrelay::test::ws_opcode::Text, R"({"type":"heartbeat"})", true, false); },
      {1002, 1006});
  INFO(outcome.describe());
  CHECK(outcome.offender_dropped());
  CHECK(outcome.others_unaffected());
}

TEST_CASE("server lifecycle: a client sending reserved bits is dropped, the others continue", "[integration]") {
  const GarbageOutcome outcome = garbage_client(
      [](WsClient& c) {
        return c.send_frame(wsrelay::test::ws_opcode::Text | wsrelay::test::ws_opcode::Rsv2, R"({"type":"x"})");
      },
      {1002, 1006});
  INFO(outcome.describe());
  CHECK(outcome.offender_dropped());
  CHECK(outcome.others_unaffected());
}

TEST_CASE("server lifecycle: a client sending invalid UTF-8 text is dropped, the others continue",
          "[integration]") {
  const GarbageOutcome outcome = garbage_client(
      [](WsClient& c) { return c.send_text(std::string("{\"type\":\"chat\",\"data\":\"\xC3\x28\"}")); },
      {1007, 1002, 1006});
  INFO(outcome.describe());
  CHECK(outcome.offender_dropped());
  CHECK(outcome.others_unaffected());
}

TEST_CASE("server lifecycle: a client sending raw bytes that are no frame is dropped, the others continue",
          "[integration]") {
  const GarbageOutcome outcome = garbage_client(
      [](WsClient& c) { return c.send_raw(std::string("GET / HTTP/1.1\r\n\r\n\xff\xff\xff\xff", 22)); },
      {1002, 1006, 1009});
  INFO(outcome.describe());
  CHECK(outcome.offender_dropped());
  CHECK(outcome.others_unaffected());
}
