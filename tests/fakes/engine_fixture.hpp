// engine_fixture: a ScriptEngine over inline Lua source (or a script file) with
// a real Hub, Registry and Stats, real Sessions on FakeTransports, and a way to
// collect what each session was sent. Socket-free: the test plays the lws
// protocol's part (open, message, close, drain).
// Owns: the hub, registry, stats, engine and every client it made.
#pragma once

#include "fakes/fake_transport.hpp"

#include "json/json.hpp"
#include "pubsub/hub.hpp"
#include "script/engine.hpp"
#include "session/registry.hpp"
#include "session/session.hpp"
#include "stats/stats.hpp"

#include <catch2/catch.hpp>
#include <cjson/cJSON.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::fakes {

// A received JSON message with null-safe accessors: a missing field makes an
// assertion fail (as "<missing>" / NaN) instead of crashing the runner.
class Msg {
 public:
  explicit Msg(std::string text) : text_(std::move(text)), root_(json::parse(text_)) {}

  bool ok() const { return root_ != nullptr; }
  const std::string& text() const { return text_; }
  const cJSON* root() const { return root_.get(); }

  bool has(const char* key) const { return member(key) != nullptr; }
  // The string value of key, or "<missing>" / "<not a string: ...>".
  std::string str(const char* key) const {
    const cJSON* m = member(key);
    if (m == nullptr) return "<missing>";
    if (!cJSON_IsString(m)) return "<not a string: " + json::print(m) + ">";
    return m->valuestring;
  }
  double num(const char* key) const {
    const cJSON* m = member(key);
    return cJSON_IsNumber(m) ? m->valuedouble : std::numeric_limits<double>::quiet_NaN();
  }
  bool is_true(const char* key) const { return cJSON_IsTrue(member(key)); }
  bool is_false(const char* key) const { return cJSON_IsFalse(member(key)); }
  // The member printed as compact JSON, "<missing>" if absent.
  std::string raw(const char* key) const {
    const cJSON* m = member(key);
    return m == nullptr ? "<missing>" : json::print(m);
  }
  // Number of members (objects) or elements (arrays).
  int size() const { return ok() ? cJSON_GetArraySize(root_.get()) : -1; }

 private:
  const cJSON* member(const char* key) const {
    return cJSON_IsObject(root_.get()) ? cJSON_GetObjectItemCaseSensitive(root_.get(), key) : nullptr;
  }
  std::string text_;
  json::JsonPtr root_;
};

// True if a and b are the same JSON value (member order ignored).
inline bool same_json(std::string_view a, std::string_view b) {
  json::JsonPtr x = json::parse(a);
  json::JsonPtr y = json::parse(b);
  return x != nullptr && y != nullptr && cJSON_Compare(x.get(), y.get(), 1);
}

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in.good());
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string standard_script_path() { return std::string(WSRELAY_SOURCE_DIR) + "/scripts/standard.lua"; }

struct Client {
  FakeTransport transport;
  std::unique_ptr<session::Session> session;
  bool open = true;

  session::Session& s() { return *session; }
};

class EngineFixture {
 public:
  pubsub::Hub hub;
  session::Registry registry;
  stats::Stats stats;
  script::ScriptContext context;
  script::Limits limits;
  std::size_t max_queue_bytes = 1u << 20;

  EngineFixture() {
    context.hub = &hub;
    context.registry = &registry;
    context.stats = &stats;
    context.endpoint = "/ws";
  }

  ~EngineFixture() {
    // Leave hub and registry clean, then drop the Lua state before the
    // sessions its userdata point at (as a server shutting down would).
    for (auto& c : clients_) {
      if (!c->open) continue;
      hub.unsubscribe_all(c->session.get());
      registry.remove(c->session.get());
    }
    engine_.reset();
    clients_.clear();
  }

  EngineFixture(const EngineFixture&) = delete;
  EngineFixture& operator=(const EngineFixture&) = delete;

  // Loads code; returns the load error ("" on success).
  std::string try_load(const std::string& code, const std::string& name = "test.lua") {
    script::ScriptEngine::Loaded loaded = script::ScriptEngine::load({name, code}, context, limits);
    engine_ = std::move(loaded.engine);
    if (engine_ == nullptr && loaded.error.empty()) return "<null engine without an error>";
    return loaded.error;
  }
  // Loads code and requires success.
  void load(const std::string& code, const std::string& name = "test.lua") {
    const std::string error = try_load(code, name);
    INFO("load error: " << error);
    REQUIRE(error.empty());
    REQUIRE(engine_ != nullptr);
  }
  void load_standard() { load(read_text_file(standard_script_path()), "standard.lua"); }

  script::ScriptEngine& engine() {
    REQUIRE(engine_ != nullptr);
    return *engine_;
  }
  void unload() { engine_.reset(); }

  // A new open session (on_open has run). Whatever on_open sent stays queued.
  Client& connect(std::string id = {}, session::SessionInfo info = {}) {
    if (id.empty()) id = "s" + std::to_string(clients_.size() + 1);
    if (info.endpoint.empty()) info.endpoint = context.endpoint;
    if (info.path.empty()) info.path = info.endpoint;
    if (info.remote.empty()) info.remote = "127.0.0.1";
    auto c = std::make_unique<Client>();
    c->session = std::make_unique<session::Session>(std::move(id), std::move(info), &c->transport, &stats,
                                                    max_queue_bytes);
    registry.add(c->session.get());
    engine().on_open(*c->session);
    clients_.push_back(std::move(c));
    return *clients_.back();
  }

  void send(Client& c, std::string_view text) { engine().on_message(c.s(), text, false); }
  void send_binary(Client& c, std::string_view bytes) { engine().on_message(c.s(), bytes, true); }

  // In the protocol's order: transport gone, script hook, channels, registry.
  void disconnect(Client& c, int code = 1000, std::string_view reason = "") {
    REQUIRE(c.open);
    c.session->detach();
    engine().on_close(c.s(), code, reason);
    hub.unsubscribe_all(c.session.get());
    registry.remove(c.session.get());
    c.open = false;
  }

  // Payloads queued to c since the last call.
  std::vector<std::string> received(Client& c) { return drain(c.s()); }

  // Requires exactly one queued message and returns it parsed.
  Msg only(Client& c) {
    const std::vector<std::string> got = received(c);
    INFO("received: " << Catch::Detail::stringify(got));
    REQUIRE(got.size() == 1);
    Msg m(got[0]);
    REQUIRE(m.ok());
    return m;
  }

  // Sends text and returns the one reply.
  Msg ask(Client& c, std::string_view text) {
    send(c, text);
    INFO("request: " << text);
    return only(c);
  }

  // Requires that nothing is queued for c.
  void expect_nothing(Client& c) {
    const std::vector<std::string> got = received(c);
    INFO("received: " << Catch::Detail::stringify(got));
    REQUIRE(got.empty());
  }

 private:
  std::unique_ptr<script::ScriptEngine> engine_;
  std::vector<std::unique_ptr<Client>> clients_;
};

}  // namespace wsrelay::fakes
