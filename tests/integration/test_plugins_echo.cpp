// A protocol plugin that is not the relay (libprotocol_wsrelay_echo.so),
// loaded by config alone and served on the relay's own port: lws picks it by
// the client's Sec-WebSocket-Protocol, the plugin checks its path.
#include "integration/test_plugins_support.hpp"
#include "support/json_helpers.hpp"
#include "support/server_fixture.hpp"
#include "support/server_process.hpp"

#include <catch2/catch.hpp>

using namespace wsrelay::test;
using wsrelay::test::plugins::kPluginDir;
using wsrelay::test::plugins::quoted;

namespace {

const HeaderList kEcho = {{"Sec-WebSocket-Protocol", "wsrelay-echo"}};

std::string echo_config(bool explicit_dirs) {
  return std::string("{") + (explicit_dirs ? "\"plugin_dirs\": [" + quoted(kPluginDir) + "], " : "") +
         R"("listen": {"host": "127.0.0.1", "port": 0, "protocols": [
              {"name": "wsrelay-echo", "options": {"path": "/echo", "max_message_size": 4096}}]},
            "endpoints": [{"path": "/ws"}]})";
}

std::unique_ptr<WsClient> connect_echo(int port, const std::string& path = "/echo", std::string* error = nullptr) {
  return WsClient::connect("127.0.0.1", port, path, kEcho, error);
}

}  // namespace

TEST_CASE("plugins: the echo plugin and the relay share one port", "[plugins][echo]") {
  // Default plugin folders: the build tree's is one of them.
  ServerFixture server(parse_test_config(echo_config(false), "."));
  std::string error;
  auto echo = connect_echo(server.port(), "/echo", &error);
  INFO(error);
  REQUIRE(echo != nullptr);
  CHECK(echo->response_header("Sec-WebSocket-Protocol") == "wsrelay-echo");

  REQUIRE(echo->send_text("hello, plugin"));
  auto m = echo->recv();
  REQUIRE(m.has_value());
  CHECK(m->kind == WsMessage::Kind::Text);
  CHECK(m->data == "hello, plugin");

  const std::string bytes("\x00\x01\x02\xff", 4);
  REQUIRE(echo->send_binary(bytes));
  m = echo->recv();
  REQUIRE(m.has_value());
  CHECK(m->kind == WsMessage::Kind::Binary);
  CHECK(m->data == bytes);

  const std::string long_text(3000, 'z');
  REQUIRE(echo->send_fragmented_text(long_text, 700));
  auto text = echo->recv_text();
  REQUIRE(text.has_value());
  CHECK(*text == long_text);

  // The relay, on the same listener, is untouched: welcome, auth, chat.
  auto alice = server.connect_as("alice", "room");
  REQUIRE(alice->send_text(R"({"type":"chat","id":"c1","channel":"room","data":"hi"})"));
  bool chat = false, ok = false;
  for (int i = 0; i < 2; ++i) {
    Json reply = recv_json(*alice);
    REQUIRE(reply.ok());
    chat = chat || reply.str("type") == "chat";
    ok = ok || reply.str("type") == "chat.ok";
  }
  CHECK(chat);
  CHECK(ok);

  // The echo protocol still echoes after the relay traffic.
  REQUIRE(echo->send_text("again"));
  CHECK(echo->recv_text() == std::optional<std::string>("again"));
}

TEST_CASE("plugins: each protocol keeps to its own paths and limits", "[plugins][echo]") {
  ServerFixture server(parse_test_config(echo_config(true), "."));
  std::string error;
  SECTION("the echo protocol on another path is refused by the plugin") {
    CHECK(connect_echo(server.port(), "/other", &error) == nullptr);
    CHECK(connect_echo(server.port(), "/ws", &error) == nullptr);
  }
  SECTION("without the protocol header /echo is the relay's, which has no such endpoint") {
    CHECK(WsClient::connect("127.0.0.1", server.port(), "/echo", {}, &error) == nullptr);
    CHECK(error == "HTTP 404");
  }
  SECTION("an unknown protocol is refused") {
    CHECK(WsClient::connect("127.0.0.1", server.port(), "/echo", {{"Sec-WebSocket-Protocol", "nope"}}, &error) ==
          nullptr);
  }
  SECTION("the plugin's own pvo limit closes with 1009") {
    auto echo = connect_echo(server.port());
    REQUIRE(echo != nullptr);
    REQUIRE(echo->send_text(std::string(5000, 'x')));
    CHECK(echo->wait_closed());
    CHECK(echo->close_code() == 1009);
  }
  SECTION("the relay still answers HTTP on the same port") {
    auto health = http_get("127.0.0.1", server.port(), "/healthz");
    REQUIRE(health.has_value());
    CHECK(health->status == 200);
  }
}

TEST_CASE("plugins: a listener serves only the protocols it names", "[plugins][echo]") {
  const std::string json = "{\"plugin_dirs\": [" + quoted(kPluginDir) + R"(],
      "listen": [{"host": "127.0.0.1", "port": 0, "protocols": ["wsrelay-echo"]},
                 {"host": "127.0.0.1", "port": 0}],
      "endpoints": [{"path": "/ws"}]})";
  ServerFixture server(parse_test_config(json, "."));
  auto with = connect_echo(server.port(0));
  REQUIRE(with != nullptr);
  REQUIRE(with->send_text("x"));
  CHECK(with->recv_text() == std::optional<std::string>("x"));
  std::string error;
  CHECK(connect_echo(server.port(1), "/echo", &error) == nullptr);
  // Both serve the relay.
  CHECK(server.connect("/ws") != nullptr);
  CHECK(WsClient::connect("127.0.0.1", server.port(1), "/ws") != nullptr);
}

TEST_CASE("plugins: the wsrelay binary loads a protocol plugin from its config file", "[plugins][echo][process]") {
  TempDir dir;
  const std::string config = dir.write("relay.json", "{\"plugin_dirs\": [" + quoted(kPluginDir) + R"(],
      "listen": {"host": "127.0.0.1", "port": 0, "protocols": [{"name": "wsrelay-echo", "options": {"path": "/e"}}]},
      "endpoints": [{"path": "/ws"}]})");
  std::string error;
  auto proc = ServerProcess::start({"--config", config}, {}, &error);
  INFO(error);
  REQUIRE(proc != nullptr);
  auto echo = connect_echo(proc->port(), "/e", &error);
  INFO(error);
  REQUIRE(echo != nullptr);
  REQUIRE(echo->send_text("from the binary"));
  CHECK(echo->recv_text() == std::optional<std::string>("from the binary"));
  auto relay = WsClient::connect("127.0.0.1", proc->port(), "/ws");
  REQUIRE(relay != nullptr);
  auto welcome = relay->recv_text();
  REQUIRE(welcome.has_value());
  CHECK(welcome->find("\"welcome\"") != std::string::npos);
  CHECK(proc->stop() == 0);
}
