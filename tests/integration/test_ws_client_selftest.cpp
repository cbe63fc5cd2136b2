// Self-test of the test tooling in tests/support/.
//
// Every integration test trusts WsClient and ServerProcess, so they are
// checked here against an independent implementation (Debian's
// python3-websockets, tests/support/echo_server.py) and, for what a
// well-behaved server never sends (masked frames, bytes glued to the 101,
// invalid UTF-8), against a scripted in-process socket.
#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/json_helpers.hpp"
#include "support/server_process.hpp"
#include "support/ws_client.hpp"

using namespace std::chrono_literals;
using wsrelay::test::CommandResult;
using wsrelay::test::HttpResponse;
using wsrelay::test::Json;
using wsrelay::test::ServerProcess;
using wsrelay::test::TempDir;
using wsrelay::test::WsClient;
using wsrelay::test::WsMessage;
namespace ws_opcode = wsrelay::test::ws_opcode;

namespace {

// Readable failures: Catch2 prints std::optional as "{?}".
std::string text_or_none(const std::optional<std::string>& text) { return text ? *text : "<no text message>"; }

std::string echo_script() { return std::string(WSRELAY_SOURCE_DIR) + "/tests/support/echo_server.py"; }

// One echo server per test process (Catch2 re-enters a test case for every
// SECTION; python's start-up is the slowest part of these tests). Restarted
// if an earlier test managed to kill it.
ServerProcess& echo_server() {
  static std::unique_ptr<ServerProcess> server;
  if (!server || server->exit_status() != -1) {
    std::string error;
    server = ServerProcess::start({echo_script()}, {}, &error, 10s, WSRELAY_PYTHON);
    INFO("echo server: " << error);
    REQUIRE(server != nullptr);
  }
  return *server;
}

std::unique_ptr<WsClient> connect_echo(const std::string& path = "/") {
  std::string error;
  auto client = WsClient::connect("127.0.0.1", echo_server().port(), path, {}, &error);
  INFO("connect: " << error);
  REQUIRE(client != nullptr);
  return client;
}

// Deterministic payloads; the text one mixes in multi-byte UTF-8 so that
// length fields count bytes, not characters.
std::string text_of_size(std::size_t n) {
  static const std::string unit = "The quick brown fox \xC3\xA9\xE2\x9C\x93\xF0\x9F\x8E\x89 jumps. ";
  std::string s;
  while (s.size() + unit.size() <= n) s += unit;
  while (s.size() < n) s += static_cast<char>('a' + s.size() % 26);
  return s;
}

std::string binary_of_size(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 31 + 7) & 0xFF);
  return s;
}

// A frame as it was on the wire, for checking what the client sends.
struct WireFrame {
  bool fin;
  int rsv;  // RSV1..RSV3 as the 0x70 bits of the first byte
  int opcode;
  bool masked;
  int length_byte;  // second header byte without the mask bit (<=125, 126 or 127)
  std::string payload;  // unmasked
};

std::vector<WireFrame> decode_frames(std::string_view b) {
  std::vector<WireFrame> out;
  auto u = [&](std::size_t i) { return static_cast<unsigned char>(b[i]); };
  while (b.size() >= 2) {
    WireFrame f{(u(0) & 0x80) != 0, u(0) & 0x70, u(0) & 0x0F, (u(1) & 0x80) != 0, u(1) & 0x7F, {}};
    std::uint64_t len = u(1) & 0x7F;
    std::size_t pos = 2;
    if (len == 126) {
      if (b.size() < 4) break;
      len = (std::uint64_t{u(2)} << 8) | u(3);
      pos = 4;
    } else if (len == 127) {
      if (b.size() < 10) break;
      len = 0;
      for (std::size_t i = 2; i < 10; ++i) len = (len << 8) | u(i);
      pos = 10;
    }
    unsigned char key[4] = {0, 0, 0, 0};
    if (f.masked) {
      if (b.size() < pos + 4) break;
      for (std::size_t k = 0; k < 4; ++k) key[k] = u(pos + k);
      pos += 4;
    }
    if (b.size() < pos + len) break;
    for (std::size_t i = 0; i < len; ++i) f.payload.push_back(static_cast<char>(u(pos + i) ^ key[i & 3]));
    out.push_back(std::move(f));
    b.remove_prefix(pos + len);
  }
  return out;
}

std::string server_frame(int first_byte, std::string_view payload) {
  std::string f{static_cast<char>(first_byte), static_cast<char>(payload.size())};  // payloads < 126 here
  f.append(payload);
  return f;
}

// A one-connection WebSocket "server" on a raw socket: answers the upgrade,
// sends `after_handshake` in the same write as the 101 (or a corrupted
// Accept), then records everything the client sends until it disconnects.
class ScriptedServer {
public:
  explicit ScriptedServer(std::string after_handshake, bool bad_accept = false) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(listen_fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(listen_fd_, 1) == 0);
    REQUIRE(::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    port_ = ntohs(addr.sin_port);
    thread_ = std::thread([this, script = std::move(after_handshake), bad_accept] { run(script, bad_accept); });
  }
  ~ScriptedServer() {
    if (thread_.joinable()) thread_.join();
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  // What the client sent after its upgrade request; waits for the client to
  // disconnect (at most 5 s).
  std::string received() {
    if (thread_.joinable()) thread_.join();
    return received_;
  }

private:
  void run(const std::string& script, bool bad_accept) {
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    auto wait_readable = [&](int fd) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd p{fd, POLLIN, 0};
      return left.count() > 0 && ::poll(&p, 1, static_cast<int>(left.count())) == 1;
    };
    if (!wait_readable(listen_fd_)) return;
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) return;
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos && wait_readable(fd)) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      in.append(buf, static_cast<std::size_t>(n));
    }
    const std::string key_header = "Sec-WebSocket-Key: ";
    const auto k = in.find(key_header);
    std::string key = k == std::string::npos ? "" : in.substr(k + key_header.size(), 24);
    std::string accept = wsrelay::test::websocket_accept_key(key);
    if (bad_accept) accept[0] = accept[0] == 'A' ? 'B' : 'A';
    const std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                            "Sec-WebSocket-Accept: " + accept + "\r\n\r\n" + script;
    if (::send(fd, out.data(), out.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(out.size())) {
      received_ = in.substr(in.find("\r\n\r\n") + 4);
      while (wait_readable(fd)) {
        const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        received_.append(buf, static_cast<std::size_t>(n));
      }
    }
    ::close(fd);
  }

  int listen_fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string received_;
};

std::unique_ptr<WsClient> connect_scripted(const ScriptedServer& server) {
  std::string error;
  auto client = WsClient::connect("127.0.0.1", server.port(), "/", {}, &error, 5s);
  INFO("connect: " << error);
  REQUIRE(client != nullptr);
  return client;
}

}  // namespace

// ---------------------------------------------------------------------------
// Against python3-websockets

TEST_CASE("WsClient: text echo across every payload length encoding", "[ws_client]") {
  auto client = connect_echo();
  // 125/126/127: last 7-bit length and first 16-bit ones; 65535/65536: last
  // 16-bit and first 64-bit; 70000: a 64-bit one arriving in several reads.
  for (std::size_t size : {0u, 1u, 125u, 126u, 127u, 200u, 65535u, 65536u, 70000u}) {
    const std::string text = text_of_size(size);
    INFO("size " << size);
    REQUIRE(client->send_text(text));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Text);
    CHECK(msg->data.size() == size);
    CHECK((msg->data == text));
  }
  // recv_text() is the shorthand the integration tests use most.
  REQUIRE(client->send_text("h\xC3\xA9llo"));
  CHECK(text_or_none(client->recv_text(5s)) == "h\xC3\xA9llo");
}

TEST_CASE("WsClient: binary echo keeps every byte value", "[ws_client]") {
  auto client = connect_echo();
  for (std::size_t size : {1u, 125u, 126u, 65535u, 65536u, 70000u}) {
    const std::string bytes = binary_of_size(size);  // includes NULs and invalid UTF-8
    INFO("size " << size);
    REQUIRE(client->send_binary(bytes));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Binary);
    CHECK(msg->data.size() == size);
    CHECK((msg->data == bytes));
  }
  SECTION("recv_text() does not swallow a binary message") {
    REQUIRE(client->send_binary("\x01\x02"));
    CHECK_FALSE(client->recv_text(5s).has_value());
    REQUIRE(client->last_message().has_value());
    CHECK(client->last_message()->kind == WsMessage::Kind::Binary);
    CHECK_FALSE(client->closed());
  }
}

TEST_CASE("WsClient: fragmented sends are echoed whole", "[ws_client]") {
  auto client = connect_echo();
  const std::string text = text_of_size(3000);  // 1- and 7-byte fragments split UTF-8 sequences
  for (std::size_t fragment : {1u, 7u, 1000u, 5000u}) {
    INFO("fragment size " << fragment);
    REQUIRE(client->send_fragmented_text(text, fragment));
    auto echoed = client->recv_text(10s);
    REQUIRE(echoed.has_value());
    CHECK((*echoed == text));
  }
}

TEST_CASE("WsClient: reassembles server fragments around an interleaved ping", "[ws_client]") {
  auto client = connect_echo();
  SECTION("control frames hidden") {
    REQUIRE(client->send_text("!fragments ab|cd|\xC3\xA9"));
    CHECK(text_or_none(client->recv_text(5s)) == "abcd\xC3\xA9");
  }
  SECTION("control frames returned") {
    client->set_return_control(true);
    REQUIRE(client->send_text("!fragments one|two|three"));
    auto ping = client->recv(5s);
    REQUIRE(ping.has_value());
    CHECK(ping->kind == WsMessage::Kind::Ping);
    CHECK(ping->data == "mid-fragment");
    auto text = client->recv(5s);
    REQUIRE(text.has_value());
    CHECK(text->kind == WsMessage::Kind::Text);
    CHECK(text->data == "onetwothree");
  }
}

TEST_CASE("WsClient: ping and pong", "[ws_client]") {
  auto client = connect_echo();
  SECTION("our ping's pong is returned when return_control is on") {
    client->set_return_control(true);
    REQUIRE(client->send_ping("are you there"));
    auto pong = client->recv(5s);
    REQUIRE(pong.has_value());
    CHECK(pong->kind == WsMessage::Kind::Pong);
    CHECK(pong->data == "are you there");
  }
  SECTION("and skipped when it is off") {
    REQUIRE(client->send_ping("x"));
    REQUIRE(client->send_text("after the ping"));
    CHECK(text_or_none(client->recv_text(5s)) == "after the ping");
  }
  SECTION("the server's ping is answered automatically") {
    // The server replies only once our pong has arrived.
    REQUIRE(client->send_text("!ping 42"));
    CHECK(text_or_none(client->recv_text(5s)) == "pong:42");
  }
}

TEST_CASE("WsClient: close handshake", "[ws_client]") {
  SECTION("client-initiated: the Close is echoed with the code") {
    auto client = connect_echo();
    REQUIRE(client->close(4000, "bye"));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Close);
    CHECK(msg->close_code == 4000);
    CHECK(msg->data == "bye");
    CHECK(client->closed());
    CHECK(client->close_code() == 4000);
    CHECK(client->wait_closed(1s));
    CHECK_FALSE(client->recv(100ms).has_value());
    CHECK(echo_server().wait_for_log("closed code=4000", 5s));
  }
  SECTION("client-initiated without a status code") {
    auto client = connect_echo();
    REQUIRE(client->close(0));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Close);
    CHECK(msg->close_code == 1005);
  }
  SECTION("server-initiated: we see the code and our reply reaches the server") {
    auto client = connect_echo();
    REQUIRE(client->send_text("!close 4001 going away"));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Close);
    CHECK(msg->close_code == 4001);
    CHECK(msg->data == "going away");
    // The server logs the code it received back from us.
    CHECK(echo_server().wait_for_log("closed code=4001", 5s));
  }
  SECTION("wait_closed() discards data until the close") {
    auto client = connect_echo();
    REQUIRE(client->send_text("ignored"));
    REQUIRE(client->send_text("!close 4002 done"));
    CHECK(client->wait_closed(5s));
    CHECK(client->close_code() == 4002);
  }
  SECTION("TCP drop without Close is 1006") {
    auto client = connect_echo();
    REQUIRE(client->send_text("!drop"));
    CHECK(client->wait_closed(5s));
    CHECK(client->close_code() == 1006);
    CHECK(client->protocol_error().empty());
  }
  SECTION("an unmasked client frame is refused with 1002") {
    auto client = connect_echo();
    REQUIRE(client->send_frame(ws_opcode::Text, "naked", true, /*mask=*/false));
    auto msg = client->recv(5s);
    REQUIRE(msg.has_value());
    CHECK(msg->kind == WsMessage::Kind::Close);
    CHECK(msg->close_code == 1002);
  }
}

TEST_CASE("WsClient: raw bytes and timeouts", "[ws_client]") {
  auto client = connect_echo();
  SECTION("a frame dribbled out byte by byte") {
    // Masked with a zero key, so the payload is readable in the source.
    const std::string frame = std::string("\x81\x85\x00\x00\x00\x00", 6) + "hello";
    for (char byte : frame) REQUIRE(client->send_raw(std::string_view(&byte, 1)));
    CHECK(text_or_none(client->recv_text(5s)) == "hello");
  }
  SECTION("recv() times out without closing") {
    const auto start = std::chrono::steady_clock::now();
    CHECK_FALSE(client->recv(150ms).has_value());
    const auto elapsed = std::chrono::steady_clock::now() - start;
    CHECK(elapsed >= 140ms);
    CHECK(elapsed < 3s);
    CHECK_FALSE(client->closed());
    CHECK(client->close_code() == 0);
    REQUIRE(client->send_text("still open"));
    CHECK(text_or_none(client->recv_text(5s)) == "still open");
  }
}

TEST_CASE("WsClient: handshake failures and plain HTTP", "[ws_client]") {
  const int port = echo_server().port();
  SECTION("an HTTP error status fails connect with 'HTTP <status>'") {
    std::string error;
    CHECK(WsClient::connect("127.0.0.1", port, "/reject", {}, &error) == nullptr);
    CHECK(error == "HTTP 404");
  }
  SECTION("a refused connection is reported") {
    // Bind and release a port so that nothing listens on it.
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    std::string error;
    CHECK(WsClient::connect("127.0.0.1", ntohs(addr.sin_port), "/", {}, &error, 2s) == nullptr);
    CHECK_THAT(error, Catch::Contains("refused"));
  }
  SECTION("http_get") {
    auto hello = wsrelay::test::http_get("127.0.0.1", port, "/hello");
    REQUIRE(hello.has_value());
    CHECK(hello->status == 200);
    CHECK(hello->body == "hello\n");
    CHECK(hello->header("content-length") == "6");
    auto reject = wsrelay::test::http_get("127.0.0.1", port, "/reject");
    REQUIRE(reject.has_value());
    CHECK(reject->status == 404);
    CHECK(reject->body == "rejected\n");
  }
  SECTION("the upgrade response headers are available") {
    auto client = connect_echo();
    CHECK(client->response_header("upgrade") == "websocket");
    CHECK_FALSE(client->response_header("Sec-WebSocket-Accept").empty());
  }
}

// ---------------------------------------------------------------------------
// Against a scripted socket: what the client puts on the wire, and how it
// treats what a correct server never sends.

TEST_CASE("WsClient: accept key matches RFC 6455's example", "[ws_client]") {
  CHECK(wsrelay::test::websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
  CHECK(wsrelay::test::base64_encode("") == "");
  CHECK(wsrelay::test::base64_encode("f") == "Zg==");
  CHECK(wsrelay::test::base64_encode("fo") == "Zm8=");
  CHECK(wsrelay::test::base64_encode("foo") == "Zm9v");
  CHECK(wsrelay::test::is_valid_utf8("\xE2\x9C\x93\xF0\x9F\x8E\x89"));
  CHECK_FALSE(wsrelay::test::is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(wsrelay::test::is_valid_utf8("\xED\xA0\x80"));      // surrogate
  CHECK_FALSE(wsrelay::test::is_valid_utf8("\xF4\x90\x80\x80"));  // > U+10FFFF
  CHECK_FALSE(wsrelay::test::is_valid_utf8("\xE2\x9C"));          // truncated
}

TEST_CASE("WsClient: frames on the wire", "[ws_client]") {
  ScriptedServer server("");
  auto client = connect_scripted(server);
  REQUIRE(client->send_text(std::string(125, 'a')));
  REQUIRE(client->send_text(std::string(126, 'b')));
  REQUIRE(client->send_binary(std::string(65536, 'c')));
  REQUIRE(client->send_fragmented_text("abcdef", 4));
  REQUIRE(client->send_fragmented_text("xy", 10));
  REQUIRE(client->send_frame(ws_opcode::Text | ws_opcode::Rsv1, "r", true, false));
  REQUIRE(client->close(1001, "gone"));
  client.reset();
  const auto frames = decode_frames(server.received());
  REQUIRE(frames.size() == 9);
  for (std::size_t i = 0; i < frames.size(); ++i) CHECK(frames[i].masked == (i != 7));
  CHECK(frames[0].length_byte == 125);
  CHECK(frames[0].payload == std::string(125, 'a'));
  CHECK(frames[1].length_byte == 126);
  CHECK(frames[1].payload == std::string(126, 'b'));
  CHECK(frames[2].length_byte == 127);
  CHECK(frames[2].opcode == ws_opcode::Binary);
  CHECK((frames[2].payload == std::string(65536, 'c')));
  CHECK((frames[3].opcode == ws_opcode::Text && !frames[3].fin && frames[3].payload == "abcd"));
  CHECK((frames[4].opcode == ws_opcode::Continuation && frames[4].fin && frames[4].payload == "ef"));
  CHECK((frames[5].opcode == ws_opcode::Text && !frames[5].fin && frames[5].payload == "xy"));
  CHECK((frames[6].opcode == ws_opcode::Continuation && frames[6].fin && frames[6].payload.empty()));
  CHECK(frames[7].opcode == ws_opcode::Text);
  CHECK(frames[7].rsv == ws_opcode::Rsv1);
  CHECK(frames[8].opcode == ws_opcode::Close);
  CHECK(frames[8].payload == std::string("\x03\xE9gone", 6));
}

TEST_CASE("WsClient: frames sent along with the 101 are kept", "[ws_client]") {
  ScriptedServer server(server_frame(0x81, "early") + server_frame(0x89, "p"));
  auto client = connect_scripted(server);
  CHECK(text_or_none(client->recv_text(2s)) == "early");
  // The ping behind it is answered even though recv() does not return it.
  CHECK_FALSE(client->recv(200ms).has_value());
  client.reset();
  const auto frames = decode_frames(server.received());
  REQUIRE(frames.size() == 1);
  CHECK(frames[0].opcode == ws_opcode::Pong);
  CHECK(frames[0].masked);
  CHECK(frames[0].payload == "p");
}

TEST_CASE("WsClient: fragments may split a code point and interleave control frames", "[ws_client]") {
  // python-websockets cannot fragment inside a character, so this is scripted.
  ScriptedServer server(server_frame(0x01, "a\xC3") + server_frame(0x89, "p") + server_frame(0x00, "") +
                        server_frame(0x80, "\xA9z"));
  auto client = connect_scripted(server);
  CHECK(text_or_none(client->recv_text(2s)) == "a\xC3\xA9z");
}

TEST_CASE("WsClient: server protocol violations fail the connection", "[ws_client]") {
  struct Case {
    const char* name;
    std::string frames;
    int expected_close;  // what the client must send
  };
  const Case cases[] = {
      {"masked server frame", std::string("\x81\x82\x01\x02\x03\x04\x69\x6b", 8), 1002},
      {"invalid UTF-8 text", server_frame(0x81, "\xC3\x28"), 1007},
      {"reserved opcode", server_frame(0x83, ""), 1002},
      {"RSV bit", server_frame(0xC1, "x"), 1002},
      {"fragmented ping", server_frame(0x09, ""), 1002},
      {"lone continuation", server_frame(0x80, "x"), 1002},
      {"new message inside a fragmented one", server_frame(0x01, "a") + server_frame(0x81, "b"), 1002},
      {"126-byte ping", std::string("\x89\x7E\x00\x7E", 4) + std::string(126, 'p'), 1002},
      {"1-byte close", server_frame(0x88, "\x03"), 1002},
      {"close code 1005 on the wire", server_frame(0x88, std::string("\x03\xED", 2)), 1002},
  };
  for (const auto& c : cases) {
    DYNAMIC_SECTION(c.name) {
      ScriptedServer server(c.frames);
      auto client = connect_scripted(server);
      CHECK_FALSE(client->recv(2s).has_value());
      CHECK(client->closed());
      CHECK(client->close_code() == 1006);
      CHECK_FALSE(client->protocol_error().empty());
      client.reset();
      const auto frames = decode_frames(server.received());
      REQUIRE(frames.size() == 1);
      CHECK(frames[0].opcode == ws_opcode::Close);
      REQUIRE(frames[0].payload.size() == 2);
      CHECK(((static_cast<unsigned char>(frames[0].payload[0]) << 8) |
             static_cast<unsigned char>(frames[0].payload[1])) == c.expected_close);
    }
  }
}

TEST_CASE("WsClient: a wrong Sec-WebSocket-Accept fails connect", "[ws_client]") {
  ScriptedServer server("", /*bad_accept=*/true);
  std::string error;
  CHECK(WsClient::connect("127.0.0.1", server.port(), "/", {}, &error, 5s) == nullptr);
  CHECK_THAT(error, Catch::Contains("Sec-WebSocket-Accept"));
}

// ---------------------------------------------------------------------------
// ServerProcess and run_command

TEST_CASE("ServerProcess: start, log and stop", "[ws_client]") {
  std::string error;
  auto server = ServerProcess::start({echo_script()}, {{"WSRELAY_SELFTEST", "1"}}, &error, 10s, WSRELAY_PYTHON);
  INFO(error);
  REQUIRE(server != nullptr);
  CHECK(server->port() > 0);
  CHECK(server->pid() > 0);
  // stdout goes to the log too.
  CHECK(server->wait_for_log("PORT " + std::to_string(server->port()), 5s));
  CHECK_THAT(server->log(), Catch::Contains("listening on ws://127.0.0.1:"));
  CHECK_FALSE(server->wait_for_log("never printed", 50ms));
  CHECK(server->exit_status() == -1);
  CHECK(server->stop(SIGTERM, 5s) == 0);  // the echo server exits cleanly on SIGTERM
  CHECK(server->stop() == 0);             // idempotent
}

TEST_CASE("ServerProcess: parses the port and reports failures", "[ws_client]") {
  const std::string python = WSRELAY_PYTHON;
  std::string error;
  SECTION("IPv6 host and a trailing path") {
    auto server = ServerProcess::start(
        {"-c", "import sys,time; print('x: listening on ws://[::1]:4567/relay now', file=sys.stderr, flush=True); "
               "time.sleep(30)"},
        {}, &error, 10s, python);
    INFO(error);
    REQUIRE(server != nullptr);
    CHECK(server->port() == 4567);
    CHECK(server->stop(SIGKILL) == 128 + SIGKILL);
  }
  SECTION("the environment reaches the child") {
    auto server = ServerProcess::start(
        {"-c", "import os,sys,time; print('listening on ws://h:' + os.environ['SELFTEST_PORT'], file=sys.stderr, "
               "flush=True); time.sleep(30)"},
        {{"SELFTEST_PORT", "2345"}}, &error, 10s, python);
    INFO(error);
    REQUIRE(server != nullptr);
    CHECK(server->port() == 2345);
  }
  SECTION("exit before listening") {
    const auto start = std::chrono::steady_clock::now();
    auto server = ServerProcess::start({"-c", "import sys; print('bad config'); sys.exit(3)"}, {}, &error, 10s, python);
    CHECK(server == nullptr);
    CHECK_THAT(error, Catch::Contains("exited with status 3") && Catch::Contains("bad config"));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  SECTION("timeout") {
    const auto start = std::chrono::steady_clock::now();
    auto server = ServerProcess::start({"-c", "import time; time.sleep(30)"}, {}, &error, 300ms, python);
    CHECK(server == nullptr);
    CHECK_THAT(error, Catch::Contains("timeout"));
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  SECTION("missing binary") {
    auto server = ServerProcess::start({}, {}, &error, 1s, "/nonexistent/wsrelay");
    CHECK(server == nullptr);
    CHECK_THAT(error, Catch::Contains("No such file"));
  }
}

TEST_CASE("run_command captures output and status", "[ws_client]") {
  const std::string python = WSRELAY_PYTHON;
  SECTION("stdout, stderr and exit code are separate") {
    CommandResult r = wsrelay::test::run_command(
        {python, "-c", "import os,sys; print('out', os.environ['X']); print('err', file=sys.stderr); sys.exit(3)"},
        {{"X", "42"}});
    CHECK(r.exit_code == 3);
    CHECK(r.out == "out 42\n");
    CHECK(r.err == "err\n");
  }
  SECTION("PATH lookup") {
    CommandResult r = wsrelay::test::run_command({"sh", "-c", "echo hi"});
    CHECK(r.exit_code == 0);
    CHECK(r.out == "hi\n");
  }
  SECTION("a signal is 128+signal") {
    CommandResult r = wsrelay::test::run_command({"sh", "-c", "kill -TERM $$"});
    CHECK(r.exit_code == 128 + SIGTERM);
  }
  SECTION("not executable") {
    CommandResult r = wsrelay::test::run_command({"/nonexistent/binary"});
    CHECK(r.exit_code == 127);
    CHECK_FALSE(r.err.empty());
  }
  SECTION("timeout kills the command") {
    const auto start = std::chrono::steady_clock::now();
    CommandResult r = wsrelay::test::run_command({"sleep", "30"}, {}, 300ms);
    CHECK(r.exit_code == -1);
    CHECK(std::chrono::steady_clock::now() - start < 5s);
  }
  SECTION("a background grandchild holding the pipes does not stall it") {
    const auto start = std::chrono::steady_clock::now();
    CommandResult r = wsrelay::test::run_command({"sh", "-c", "sleep 3 & echo started"}, {}, 10s);
    CHECK(r.exit_code == 0);
    CHECK(r.out == "started\n");
    CHECK(std::chrono::steady_clock::now() - start < 2s);
  }
}

// ---------------------------------------------------------------------------
// json_helpers

TEST_CASE("Json and TempDir helpers", "[ws_client][json]") {
  SECTION("Json") {
    Json j = Json::parse(R"({"type":"msg","n":3,"ok":true,"inner":{"x":"y"},"list":[1,"two"],"nil":null})");
    REQUIRE(j.ok());
    CHECK(j.str("type") == "msg");
    CHECK(j.num("n") == 3);
    CHECK(j.boolean("ok"));
    CHECK(j.has("nil"));
    CHECK(j.get("nil").is_null());
    CHECK_FALSE(j.has("missing"));
    CHECK(j.str("missing").empty());
    CHECK(std::isnan(j.num("type")));
    CHECK_FALSE(j.boolean("n"));
    CHECK(j.get("inner").str("x") == "y");
    CHECK(j.get("list").size() == 2);
    CHECK(j.get("list").at(1).as_string() == "two");
    CHECK_FALSE(j.get("list").at(2).ok());
    CHECK(j.get("inner").print() == R"({"x":"y"})");
    Json inner = Json::parse(R"({"a":{"b":1}})").get("a");  // the view outlives its parent
    CHECK(inner.num("b") == 1);
    Json bad = Json::parse("{not json");
    CHECK_FALSE(bad.ok());
    CHECK(bad.str("x").empty());
    CHECK_FALSE(bad.get("x").ok());
    CHECK(bad.print().empty());
  }
  SECTION("TempDir") {
    std::string dir;
    {
      TempDir tmp;
      dir = tmp.path();
      const std::string file = tmp.write("sub/config.json", "{\"port\":0}");
      CHECK(file == dir + "/sub/config.json");
      std::ifstream in(file);
      std::stringstream content;
      content << in.rdbuf();
      CHECK(content.str() == "{\"port\":0}");
    }
    CHECK(::access(dir.c_str(), F_OK) != 0);
  }
}
