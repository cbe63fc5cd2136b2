// Error replies of the wsrelay.v1 protocol (docs/protocol.md, "Errors" and
// "The id rule") against the real server in-process: every code, the id echoed
// exactly where the rule says, and after every non-fatal error the offending
// connection still works and other clients still receive chats.
#include <catch2/catch.hpp>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "support/server_fixture.hpp"

using namespace std::chrono_literals;
using namespace wsrelay::test;

namespace {

// True when reply is an error reply with this code, a non-empty message, and
// the id (printed JSON) or, when id is empty, no id at all. The reply goes
// with the next assertion's report.
bool is_error(const Json& reply, const std::string& code, const std::optional<std::string>& id) {
  UNSCOPED_INFO("reply: " << reply.print());
  return reply.ok() && reply.str("type") == "error" && reply.str("code") == code &&
         reply.get("message").is_string() && !reply.str("message").empty() &&
         (id ? id_of(reply) == *id : !reply.has("id"));
}

// Sends `text`; true when it is answered with that error (see is_error).
bool answered_with_error(WsClient& client, const std::string& text, const std::string& code,
                         const std::optional<std::string>& id) {
  UNSCOPED_INFO("sent: " << text);
  return is_error(request(client, text), code, id);
}

// The offender's connection still works (a heartbeat round trip, then, after
// auth if needed, a chat) and the observer, subscribed to "room", receives it.
void require_alive(WsClient& offender, WsClient& observer, bool offender_authed) {
  Json hb = request(offender, R"({"type":"heartbeat","id":"alive"})");
  INFO("heartbeat after the error: " << hb.print());
  REQUIRE(hb.str("type") == "heartbeat");
  REQUIRE(hb.str("id") == "alive");
  if (!offender_authed) auth(offender, "offender");
  Json ok = request(offender, R"({"type":"chat","id":"alive-chat","channel":"room","data":"still here"})");
  INFO("chat after the error: " << ok.print());
  REQUIRE(ok.str("type") == "chat.ok");
  Json chat = recv_json(observer);
  INFO("observer got: " << chat.print());
  REQUIRE(chat.str("type") == "chat");
  REQUIRE(chat.str("data") == "still here");
  REQUIRE(silent_for(observer, 50ms));
}

std::string nested_arrays(int depth) {
  return std::string(static_cast<std::size_t>(depth), '[') + std::string(static_cast<std::size_t>(depth), ']');
}

// A JSON heartbeat of exactly `size` bytes (padding in the id).
std::string heartbeat_of_size(std::size_t size) {
  const std::string head = R"({"type":"heartbeat","id":")";
  const std::string tail = "\"}";
  REQUIRE(size > head.size() + tail.size());
  return head + std::string(size - head.size() - tail.size(), 'p') + tail;
}

wsrelay::config::Config small_limit_config(const TempDir& dir) {
  return parse_test_config(R"({"endpoints":[{"path":"/ws","max_message_size":4096}]})", dir.path());
}

// standard.lua plus handlers that fail in every way a handler can.
const char* const kFailingHandlers = R"lua(
function handlers.boom(session, msg)
  local t = nil
  return t.field  -- attempt to index a nil value
end
function handlers.raise(session, msg)
  error("kaboom")
end
function handlers.unencodable(session, msg)
  return { type = "bad", id = msg.id, f = function() end }
end
function handlers.spin(session, msg)
  while true do end
end
function handlers.echo(session, msg)
  return { type = "echo", id = msg.id, data = msg.data }
end
)lua";

wsrelay::config::Config failing_script_config(const TempDir& dir) {
  dir.write("failing.lua", standard_script_with(kFailingHandlers));
  return parse_test_config(R"({"endpoints":[{"path":"/ws","script":"failing.lua"}]})", dir.path());
}

}  // namespace

TEST_CASE("server errors: invalid JSON is bad_json without an id", "[integration]") {
  ServerFixture server;
  auto a = server.connect();
  auto observer = server.connect_as("olivia", "room");
  for (const std::string& text : {
           std::string("not json"),
           std::string(R"({"type":"heartbeat","id":1} x)"),  // trailing garbage
           std::string(R"({"type":"heartbeat","id":2)"),     // truncated
           std::string(R"({'type':'heartbeat','id':3})"),    // single quotes
           std::string(R"({"type":"heartbeat","id":4,})"),   // trailing comma
           std::string(""),
           // \u0000 would truncate the string: refused rather than altered.
           std::string(R"({"type":"auth","id":5,"token":"admin\u0000x"})"),
       }) {
    CHECK(answered_with_error(*a, text, "bad_json", std::nullopt));
  }
  require_alive(*a, *observer, false);
}

TEST_CASE("server errors: JSON that is not an object is bad_request", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  for (const std::string text : {"[1,2]", "\"heartbeat\"", "42", "null", "true", "[]"}) {
    CHECK(answered_with_error(*a, text, "bad_request", std::nullopt));
  }
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: a missing or non-string type is bad_request, echoing the id", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  // The message is a JSON object, so its id is echoed (docs/protocol.md, the id rule).
  CHECK(answered_with_error(*a, R"({"id":5,"channel":"room"})", "bad_request", std::string("5")));
  CHECK(answered_with_error(*a, R"({})", "bad_request", std::nullopt));
  for (const std::string type : {"5", "null", "true", "[\"chat\"]", "{\"t\":\"chat\"}"}) {
    CHECK(answered_with_error(*a, R"({"type":)" + type + R"(,"id":"t6"})", "bad_request", std::string("\"t6\"")));
    CHECK(answered_with_error(*a, R"({"type":)" + type + "}", "bad_request", std::nullopt));
  }
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: a missing, empty, non-string or too long channel is bad_request", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  const std::string long_channel(129, 'c');
  for (const std::string type : {"subscribe", "unsubscribe", "chat", "typing"}) {
    const std::string extra = type == "chat" ? R"(,"data":1)" : type == "typing" ? R"(,"typing":true)" : "";
    for (const std::string& channel : {std::string(""), std::string(R"(,"channel":"")"),
                                      std::string(R"(,"channel":5)"), std::string(R"(,"channel":null)"),
                                      std::string(R"(,"channel":["room"])"),
                                      std::string(R"(,"channel":")") + long_channel + "\""}) {
      CHECK(answered_with_error(*a, R"({"type":")" + type + R"(","id":7)" + channel + extra + "}", "bad_request",
                   std::string("7")));
    }
  }
  // The observer got nothing from any of these.
  CHECK(silent_for(*observer, 50ms));
  // 128 bytes is still a valid channel name.
  const std::string max_channel(128, 'c');
  Json ok = request(*a, R"({"type":"subscribe","id":8,"channel":")" + max_channel + "\"}");
  CHECK(ok.str("type") == "subscribe.ok");
  CHECK(ok.str("channel") == max_channel);
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: chat without data is bad_request", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  CHECK(answered_with_error(*a, R"({"type":"chat","id":9,"channel":"room"})", "bad_request", std::string("9")));
  CHECK(answered_with_error(*a, R"({"type":"chat","id":"s","channel":"room"})", "bad_request", std::string("\"s\"")));
  CHECK(silent_for(*observer, 50ms));  // nothing was broadcast
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: typing without a boolean is bad_request", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice", "room");
  auto observer = server.connect_as("olivia", "room");
  for (const std::string& typing :
       {std::string(""), std::string(R"(,"typing":"yes")"), std::string(R"(,"typing":1)"),
        std::string(R"(,"typing":null)"), std::string(R"(,"typing":[true])")}) {
    CHECK(answered_with_error(*a, R"({"type":"typing","id":10,"channel":"room")" + typing + "}", "bad_request",
                 std::string("10")));
  }
  CHECK(silent_for(*observer, 50ms));  // no typing broadcast
  REQUIRE(request(*a, R"({"type":"unsubscribe","channel":"room"})").str("type") == "unsubscribe.ok");
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: auth without a usable token is bad_request", "[integration]") {
  ServerFixture server;
  auto a = server.connect();
  auto observer = server.connect_as("olivia", "room");
  for (const std::string& token : {std::string(""), std::string(R"(,"token":"")"), std::string(R"(,"token":5)"),
                                  std::string(R"(,"token":null)")}) {
    CHECK(answered_with_error(*a, R"({"type":"auth","id":"t")" + token + "}", "bad_request", std::string("\"t\"")));
  }
  // None of them authenticated the connection.
  CHECK(answered_with_error(*a, R"({"type":"subscribe","id":1,"channel":"room"})", "unauthorized", std::string("1")));
  require_alive(*a, *observer, false);
}

TEST_CASE("server errors: a binary frame is bad_request and the connection stays open", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  REQUIRE(a->send_binary(R"({"type":"heartbeat","id":1})"));
  CHECK(is_error(recv_json(*a), "bad_request", std::nullopt));
  REQUIRE(a->send_binary(std::string("\x00\xff\x10", 3)));
  CHECK(is_error(recv_json(*a), "bad_request", std::nullopt));
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: an unknown type is unknown_type, echoing the id", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  CHECK(answered_with_error(*a, R"({"type":"nope","id":7})", "unknown_type", std::string("7")));
  CHECK(answered_with_error(*a, R"({"type":"nope"})", "unknown_type", std::nullopt));
  CHECK(answered_with_error(*a, R"({"type":"","id":{"a":1}})", "unknown_type", std::string(R"({"a":1})")));
  CHECK(answered_with_error(*a, R"({"type":"Chat","id":"c","channel":"room","data":1})", "unknown_type", std::string("\"c\"")));
  // Hook names are never message types.
  for (const std::string hook : {"on_open", "on_close", "on_error", "on_message", "on_text"}) {
    CHECK(answered_with_error(*a, R"({"type":")" + hook + R"(","id":7})", "unknown_type", std::string("7")));
  }
  CHECK(silent_for(*observer, 50ms));  // the "Chat" was not a chat
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: subscribe, unsubscribe, chat and typing before auth are unauthorized", "[integration]") {
  ServerFixture server;
  auto a = server.connect();
  auto observer = server.connect_as("olivia", "room");
  CHECK(answered_with_error(*a, R"({"type":"subscribe","id":1,"channel":"room"})", "unauthorized", std::string("1")));
  CHECK(answered_with_error(*a, R"({"type":"unsubscribe","id":"u","channel":"room"})", "unauthorized", std::string("\"u\"")));
  CHECK(answered_with_error(*a, R"({"type":"chat","id":[3],"channel":"room","data":"sneaky"})", "unauthorized",
               std::string("[3]")));
  CHECK(answered_with_error(*a, R"({"type":"typing","id":4,"channel":"room","typing":true})", "unauthorized", std::string("4")));
  CHECK(answered_with_error(*a, R"({"type":"chat","channel":"room","data":"no id"})", "unauthorized", std::nullopt));
  // Nothing of it reached the channel.
  CHECK(silent_for(*observer, 100ms));
  CHECK(server.status().num("subscriptions") == 1);  // the observer's only
  require_alive(*a, *observer, false);
}

TEST_CASE("server errors: a message over max_message_size is too_large, then close 1009", "[integration]") {
  TempDir dir;
  ServerFixture server(small_limit_config(dir));
  auto observer = server.connect_as("olivia", "room");
  auto speaker = server.connect_as("sam");
  auto a = server.connect_as("alice");

  // Exactly the limit is accepted.
  Json fits = request(*a, heartbeat_of_size(4096));
  INFO("4096-byte message answered with: " << fits.print().substr(0, 80));
  CHECK(fits.str("type") == "heartbeat");

  // One byte more is not.
  REQUIRE(a->send_text(heartbeat_of_size(4097)));
  CHECK(is_error(recv_json(*a), "too_large", std::nullopt));
  auto close = a->recv();
  REQUIRE(close.has_value());
  CHECK(close->kind == WsMessage::Kind::Close);
  CHECK(close->close_code == 1009);
  CHECK(close->data == "message too large");
  CHECK(a->closed());

  require_alive(*speaker, *observer, true);
}

TEST_CASE("server errors: a fragmented message over the limit only as a whole is too_large", "[integration]") {
  TempDir dir;
  ServerFixture server(small_limit_config(dir));
  auto observer = server.connect_as("olivia", "room");
  auto speaker = server.connect_as("sam");
  auto a = server.connect_as("alice");

  // Fragments below the limit that add up to exactly the limit are fine.
  REQUIRE(a->send_fragmented_text(heartbeat_of_size(4096), 1000));
  CHECK(recv_json(*a).str("type") == "heartbeat");

  // 5 x 1000 bytes: no fragment is too large, the message is.
  REQUIRE(a->send_fragmented_text(heartbeat_of_size(5000), 1000));
  CHECK(is_error(recv_json(*a), "too_large", std::nullopt));
  auto close = a->recv();
  REQUIRE(close.has_value());
  CHECK(close->kind == WsMessage::Kind::Close);
  CHECK(close->close_code == 1009);

  require_alive(*speaker, *observer, true);
}

TEST_CASE("server errors: a handler that raises is script_error and nothing else breaks", "[integration]") {
  TempDir dir;
  ServerFixture server(failing_script_config(dir));
  auto a = server.connect_as("alice");
  auto b = server.connect_as("bob");
  auto observer = server.connect_as("olivia", "room");

  CHECK(answered_with_error(*a, R"({"type":"boom","id":21})", "script_error", std::string("21")));
  CHECK(answered_with_error(*a, R"({"type":"raise","id":"r"})", "script_error", std::string("\"r\"")));
  CHECK(answered_with_error(*a, R"({"type":"raise"})", "script_error", std::nullopt));
  // The next message on the same connection works, and so does another client.
  Json echo = request(*a, R"({"type":"echo","id":22,"data":[1,{"x":null}]})");
  INFO("echo: " << echo.print());
  CHECK(echo.str("type") == "echo");
  CHECK(echo.num("id") == 22);
  CHECK(echo.get("data").print() == R"([1,{"x":null}])");
  Json other = request(*b, R"({"type":"echo","id":"b","data":"fine"})");
  CHECK(other.str("data") == "fine");
  CHECK(server.status().num("script_errors") == 3);
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: a reply that cannot be encoded is script_error", "[integration]") {
  TempDir dir;
  ServerFixture server(failing_script_config(dir));
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  CHECK(answered_with_error(*a, R"({"type":"unencodable","id":23})", "script_error", std::string("23")));
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: an endless handler is script_timeout", "[integration]") {
  TempDir dir;
  ServerFixture server(failing_script_config(dir));
  auto a = server.connect_as("alice");
  auto b = server.connect_as("bob");
  auto observer = server.connect_as("olivia", "room");

  const auto start = std::chrono::steady_clock::now();
  CHECK(answered_with_error(*a, R"({"type":"spin","id":24})", "script_timeout", std::string("24")));
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(took < 5s);
  // The budget is per call: the same state serves the next message normally.
  CHECK(request(*a, R"({"type":"echo","id":25,"data":1})").str("type") == "echo");
  CHECK(request(*b, R"({"type":"echo","id":26,"data":2})").num("data") == 2);
  // And a second timeout is caught the same way.
  CHECK(answered_with_error(*b, R"({"type":"spin","id":"again"})", "script_timeout", std::string("\"again\"")));
  CHECK(server.status().num("script_errors") == 2);
  require_alive(*a, *observer, true);
}

TEST_CASE("server errors: JSON nested 5000 deep is bad_json and the connection survives", "[integration]") {
  ServerFixture server;
  auto a = server.connect_as("alice");
  auto observer = server.connect_as("olivia", "room");
  CHECK(answered_with_error(*a, nested_arrays(5000), "bad_json", std::nullopt));
  CHECK(answered_with_error(*a, R"({"type":"chat","id":1,"channel":"room","data":)" + nested_arrays(5000) + "}", "bad_json",
               std::nullopt));
  std::string objects;
  for (int i = 0; i < 5000; ++i) objects += "{\"a\":";
  objects += "1";
  objects += std::string(5000, '}');
  CHECK(answered_with_error(*a, objects, "bad_json", std::nullopt));
  CHECK(silent_for(*observer, 50ms));
  require_alive(*a, *observer, true);
}
