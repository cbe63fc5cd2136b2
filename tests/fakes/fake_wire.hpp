// fake_wire: a recording connection::Wire, and a Relay over inline Lua, for
// socket-free tests of core/connection. The test plays the transport: it
// opens connections, hands them pieces, drains what they queued and closes
// them, in any order it wants to check.
// Owns: the Relay (from a config text) and what each wire recorded.
#pragma once

#include "fakes/fake_transport.hpp"

#include "config/config.hpp"
#include "connection/connection.hpp"
#include "server/relay.hpp"

#include <catch2/catch.hpp>

#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

namespace wsrelay::fakes {

struct FakeWire final : connection::Wire {
  int write_requests = 0;
  bool reading_paused = false;
  int hang_ups = 0;
  int close_deadline_s = 0;  // 0: no closing handshake began
  void request_write() override { ++write_requests; }
  void pause_reading(bool paused) override { reading_paused = paused; }
  void hang_up() override { ++hang_ups; }
  void close_deadline(int seconds) override { close_deadline_s = seconds; }
  session::UpstreamLink* open_upstream(const config::Upstream&, upstream::UpstreamEvents&,
                                       const std::string&) override {
    return nullptr;  // the fixtures' endpoints have no upstream
  }
};

// A Relay whose one endpoint /ws runs `script` (Lua source), with the
// config's "limits" object given as JSON text.
class RelayFixture {
 public:
  // endpoint_json: more keys of the endpoint ("\"max_message_size\":100").
  explicit RelayFixture(const std::string& script, const std::string& limits_json = "{}",
                        const std::string& endpoint_json = "") {
    static int made = 0;
    script_path_ = "/tmp/wsrelay-test-connection-" + std::to_string(::getpid()) + "-" + std::to_string(++made) + ".lua";
    std::ofstream(script_path_) << script;
    const std::string text = R"({"limits":)" + limits_json + R"(,"endpoints":[{"path":"/ws","script":")" +
                             script_path_ + "\"" + (endpoint_json.empty() ? "" : "," + endpoint_json) + "}]}";
    config::LoadResult loaded = config::parse(text, "test.json", "/", config::EnvLookup());
    INFO((loaded.errors.empty() ? std::string() : loaded.errors.front()));
    REQUIRE(loaded.config);
    std::vector<std::string> errors;
    relay_ = server::Relay::create(*loaded.config, errors);
    INFO((errors.empty() ? std::string() : errors.front()));
    REQUIRE(relay_);
  }
  ~RelayFixture() { std::remove(script_path_.c_str()); }

  server::Relay& relay() { return *relay_; }
  server::EndpointRuntime& endpoint() { return *relay_->endpoints().front(); }

  std::unique_ptr<connection::Connection> open(FakeWire& wire, std::int64_t now_ms = 0,
                                               const std::string& remote = "10.0.0.1") {
    session::SessionInfo info;
    info.endpoint = info.path = "/ws";
    info.remote = remote;
    return connection::Connection::open(*relay_, endpoint(), info, wire, now_ms, -1);
  }

 private:
  std::string script_path_;
  std::unique_ptr<server::Relay> relay_;
};

// One whole message in one piece.
inline connection::Piece whole(std::string_view text) {
  connection::Piece p;
  p.data = text;
  return p;
}

}  // namespace wsrelay::fakes
