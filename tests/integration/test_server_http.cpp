// The HTTP routes served on the WebSocket port (docs/protocol.md, "HTTP
// routes"): /healthz, /status and its counters, 404 and 405, and refused
// upgrades, against the real server in-process.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include "support/server_fixture.hpp"

using namespace std::chrono_literals;
using namespace wsrelay::test;

namespace {

// Sends a raw HTTP request and returns everything the server sends back
// until it closes the connection (or 3 s pass).
std::string raw_http(int port, const std::string& request) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::send(fd, request.data(), request.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(request.size()));
  std::string out;
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

// Polls /status until `field` equals `value` (the counters of a closing
// connection settle asynchronously), returning the last /status seen.
Json wait_status(ServerFixture& server, const char* field, double value) {
  Json status = server.status();
  const auto deadline = std::chrono::steady_clock::now() + 3s;
  while (status.num(field) != value && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
    status = server.status();
  }
  return status;
}

}  // namespace

TEST_CASE("server http: GET /healthz is 200 ok", "[integration]") {
  ServerFixture server;
  auto response = http_get("127.0.0.1", server.port(), "/healthz");
  REQUIRE(response.has_value());
  CHECK(response->status == 200);
  CHECK(response->body == "ok");
  CHECK(response->header("Content-Type").rfind("text/plain", 0) == 0);
  CHECK(response->header("Cache-Control") == "no-store");
}

TEST_CASE("server http: GET /status reports every counter", "[integration]") {
  ServerFixture server;
  auto response = http_get("127.0.0.1", server.port(), "/status");
  REQUIRE(response.has_value());
  CHECK(response->status == 200);
  CHECK(response->header("Content-Type").rfind("application/json", 0) == 0);
  CHECK(response->header("Cache-Control") == "no-store");
  Json status = Json::parse(response->body);
  INFO("status: " << response->body);
  REQUIRE(status.is_object());
  CHECK(status.get("version").is_string());
  CHECK_FALSE(status.str("version").empty());
  for (const char* field : {"uptime_s", "connections", "connections_total", "channels", "subscriptions",
                            "messages_in", "messages_out", "bytes_in", "bytes_out", "deliveries", "errors_sent",
                            "script_errors", "slow_consumer_closes"}) {
    INFO("field " << field);
    REQUIRE(status.get(field).is_number());
    CHECK(status.num(field) == static_cast<double>(static_cast<long long>(status.num(field))));  // integer
    CHECK(status.num(field) >= 0);
  }
  // A fresh server: nothing has happened yet.
  CHECK(status.num("uptime_s") <= 5);
  CHECK(status.num("connections") == 0);
  CHECK(status.num("connections_total") == 0);
  CHECK(status.num("channels") == 0);
  CHECK(status.num("messages_in") == 0);
  CHECK(status.num("messages_out") == 0);
  Json endpoints = status.get("endpoints");
  REQUIRE(endpoints.is_array());
  REQUIRE(endpoints.size() == 1);
  CHECK(endpoints.at(0).str("path") == "/ws");
  CHECK(endpoints.at(0).get("script").is_string());
  CHECK(endpoints.at(0).num("connections") == 0);
}

TEST_CASE("server http: /status counters follow connections, channels and messages", "[integration]") {
  ServerFixture server;
  CHECK(server.status().num("connections") == 0);

  auto a = server.connect();
  auto b = server.connect();
  Json two = server.status();
  INFO("after two connects: " << two.print());
  CHECK(two.num("connections") == 2);
  CHECK(two.num("connections_total") == 2);
  CHECK(two.get("endpoints").at(0).num("connections") == 2);
  CHECK(two.num("messages_out") == 2);  // the welcomes
  CHECK(two.num("messages_in") == 0);

  auth(*a, "alice");
  auth(*b, "bob");
  subscribe(*a, "room1");
  Json one_channel = server.status();
  INFO("after one subscribe: " << one_channel.print());
  CHECK(one_channel.num("channels") == 1);
  CHECK(one_channel.num("subscriptions") == 1);
  subscribe(*b, "room1");
  subscribe(*b, "room2");
  Json two_channels = server.status();
  CHECK(two_channels.num("channels") == 2);
  CHECK(two_channels.num("subscriptions") == 3);

  REQUIRE(b->send_text(R"({"type":"chat","id":1,"channel":"room1","data":"x"})"));
  CHECK(recv_json(*b).str("type") == "chat");
  CHECK(recv_json(*b).str("type") == "chat.ok");
  CHECK(recv_json(*a).str("type") == "chat");
  Json counted = server.status();
  INFO("after the chat: " << counted.print());
  // In: 2 auth + 3 subscribe + 1 chat. Out: 2 welcome + 5 replies + 2 broadcasts + 1 chat.ok.
  CHECK(counted.num("messages_in") == 6);
  CHECK(counted.num("messages_out") == 10);
  CHECK(counted.num("deliveries") == 2);
  CHECK(counted.num("errors_sent") == 0);
  CHECK(counted.num("bytes_in") > 0);
  CHECK(counted.num("bytes_out") > 0);

  REQUIRE(request(*a, "nope").str("code") == "bad_json");
  CHECK(server.status().num("errors_sent") == 1);

  REQUIRE(request(*b, R"({"type":"unsubscribe","channel":"room2"})").str("type") == "unsubscribe.ok");
  CHECK(server.status().num("channels") == 1);

  a->close(1000);
  b->close(1000);
  CHECK(a->wait_closed(2s));
  CHECK(b->wait_closed(2s));
  Json zero = wait_status(server, "connections", 0);
  INFO("after closing: " << zero.print());
  CHECK(zero.num("connections") == 0);
  CHECK(zero.num("connections_total") == 2);
  CHECK(zero.num("channels") == 0);
  CHECK(zero.num("subscriptions") == 0);
  CHECK(zero.get("endpoints").at(0).num("connections") == 0);
}

TEST_CASE("server http: an unknown path is 404", "[integration]") {
  ServerFixture server;
  // "/" is the demo page when the built-in default finds it (see below).
  for (const std::string path : {"/nope", "/healthz/x", "/statusx", "/ws", "/../etc/passwd"}) {
    auto response = http_get("127.0.0.1", server.port(), path);
    INFO("GET " << path);
    REQUIRE(response.has_value());
    CHECK(response->status == 404);
    CHECK(response->body.rfind("not found", 0) == 0);
    CHECK(response->header("Cache-Control") == "no-store");
  }
}

TEST_CASE("server http: the built-in default serves the demo folder, nothing outside it", "[integration]") {
  ServerFixture server;
  auto page = http_get("127.0.0.1", server.port(), "/");
  REQUIRE(page.has_value());
  CHECK(page->status == 200);
  CHECK(page->header("Content-Type").rfind("text/html", 0) == 0);
  CHECK(page->body.find("wsrelay") != std::string::npos);
  for (const std::string path : {"/../CMakeLists.txt", "/%2e%2e/CMakeLists.txt", "/..%2fCMakeLists.txt"}) {
    auto response = http_get("127.0.0.1", server.port(), path);
    INFO("GET " << path);
    REQUIRE(response.has_value());
    CHECK(response->status == 404);
  }
}

TEST_CASE("server http: HEAD is answered without a body, other methods are 405", "[integration]") {
  ServerFixture server;
  const std::string head =
      raw_http(server.port(), "HEAD /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
  INFO("HEAD response:\n" << head);
  CHECK(head.rfind("HTTP/1.1 200", 0) == 0);
  const auto end_of_headers = head.find("\r\n\r\n");
  REQUIRE(end_of_headers != std::string::npos);
  CHECK(head.substr(end_of_headers + 4).empty());

  const std::string post = raw_http(
      server.port(),
      "POST /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: 2\r\n\r\n{}");
  INFO("POST response:\n" << post);
  CHECK(post.rfind("HTTP/1.1 405", 0) == 0);
  CHECK(post.find("method not allowed") != std::string::npos);
  // The server is still fine.
  auto health = http_get("127.0.0.1", server.port(), "/healthz");
  REQUIRE(health.has_value());
  CHECK(health->status == 200);
}

TEST_CASE("server http: a WebSocket upgrade on an unknown path is refused with 404", "[integration]") {
  ServerFixture server;
  for (const std::string path : {"/nope", "/", "/ws/", "/wss", "/healthz"}) {
    std::string error;
    auto client = WsClient::connect("127.0.0.1", server.port(), path, {}, &error);
    INFO("upgrade to " << path << ": " << error);
    CHECK(client == nullptr);
    CHECK(error == "HTTP 404");
  }
  // The real endpoint still accepts, with a query string too.
  auto ok = server.connect("/ws?token=x&y=1");
  CHECK(request(*ok, R"({"type":"heartbeat","id":1})").str("type") == "heartbeat");
  CHECK(server.status().num("connections_total") == 1);
}

TEST_CASE("server http: the wsrelay subprotocol is accepted, others are refused", "[integration]") {
  ServerFixture server;
  std::string error;
  auto ok = WsClient::connect("127.0.0.1", server.port(), "/ws", {{"Sec-WebSocket-Protocol", "wsrelay"}}, &error);
  INFO("connect with wsrelay: " << error);
  REQUIRE(ok != nullptr);
  CHECK(recv_json(*ok).str("type") == "welcome");

  std::string refused_error;
  auto refused =
      WsClient::connect("127.0.0.1", server.port(), "/ws", {{"Sec-WebSocket-Protocol", "chat.v2"}}, &refused_error,
                        2s);
  INFO("connect with chat.v2: " << refused_error);
  CHECK(refused == nullptr);
  CHECK_FALSE(refused_error.empty());
}
