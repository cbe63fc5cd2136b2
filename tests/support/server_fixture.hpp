// An in-process wsrelay server for the integration tests, plus the small
// protocol helpers (connect, auth, subscribe, expect a reply) the test files
// share.
//
// ServerFixture builds a config::Config (the built-in default on an ephemeral
// port, or inline JSON parsed by config::parse), creates the real
// server::Server, and runs its single-threaded event loop on one background
// thread. Tests talk to it over real sockets with WsClient / http_get from the
// test thread. The destructor stops the loop and joins the thread.
//
// Configs are built with an empty environment lookup so that a
// WSRELAY_JWT_SECRET in the test runner's environment cannot switch a test
// out of development mode: a JWT secret is set through Config::jwt.secret.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

#include "config/config.hpp"
#include "server/server.hpp"
#include "support/json_helpers.hpp"
#include "support/ws_client.hpp"

namespace wsrelay::test {

// An environment in which no variable is set.
config::EnvLookup empty_env();

// The built-in default config (one endpoint "/ws", standard.lua, dev mode) on
// 127.0.0.1 port 0, logging at "warn" to keep test output readable.
config::Config default_test_config();

// Parses config JSON (REQUIREs that it is valid); relative script paths are
// resolved against base_dir. Every listener's port is forced to 0 and, unless
// the JSON sets it, log_level becomes "warn".
config::Config parse_test_config(const std::string& json, const std::string& base_dir);

// scripts/standard.lua with `extra` (Lua statements that may add to the local
// `handlers` table) inserted just before its final `return handlers`.
std::string standard_script_with(const std::string& extra);

class ServerFixture {
public:
  ServerFixture();  // default_test_config()
  explicit ServerFixture(const config::Config& config);
  ~ServerFixture();  // stop() + join
  ServerFixture(const ServerFixture&) = delete;
  ServerFixture& operator=(const ServerFixture&) = delete;

  int port(std::size_t listener = 0) const;
  server::Server& server() { return *server_; }

  // Connects (REQUIREs success). The welcome, if any, is left unread.
  std::unique_ptr<WsClient> connect_raw(const std::string& path = "/ws");
  // Connects to a standard.lua endpoint and REQUIREs the welcome.
  std::unique_ptr<WsClient> connect(const std::string& path = "/ws");
  // connect() + auth as `user` (dev mode) + optional subscribe.
  std::unique_ptr<WsClient> connect_as(const std::string& user, const std::string& channel = "");

  // GET /status, parsed (REQUIREs 200 and valid JSON).
  Json status();

private:
  std::unique_ptr<server::Server> server_;
  std::thread thread_;
};

// Next text message parsed as JSON; a not-ok() Json on timeout, close or a
// non-JSON frame (and the failure is described with UNSCOPED_INFO).
Json recv_json(WsClient& client, std::chrono::milliseconds timeout = std::chrono::seconds(5));
// send_text + recv_json.
Json request(WsClient& client, std::string_view text,
             std::chrono::milliseconds timeout = std::chrono::seconds(5));
// True if nothing at all arrives within `quiet` and the connection is still open.
bool silent_for(WsClient& client, std::chrono::milliseconds quiet = std::chrono::milliseconds(200));

// REQUIRE-ing protocol steps on a standard.lua endpoint.
void auth(WsClient& client, const std::string& user);
void subscribe(WsClient& client, const std::string& channel);

// The id of a message as printed JSON ("" if it has none), for comparisons.
std::string id_of(const Json& message);

// Milliseconds since the Unix epoch, as the server's "ts".
long long now_ms();

}  // namespace wsrelay::test
