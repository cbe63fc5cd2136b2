// Extension plugins (class "wsrelay_plugin", include/wsrelay/plugin.h):
// Lua modules through require "relay.<name>", filters around the script,
// auth providers, and the API table — with a test plugin written in C and
// the shipped jwt plugin loaded from its shared object.
#include "integration/test_plugins_support.hpp"
#include "fakes/engine_fixture.hpp"
#include "server/plugin_loader.hpp"
#include "server/relay.hpp"
#include "support/json_helpers.hpp"
#include "support/server_fixture.hpp"

#include "auth/jwt.hpp"

#include <wsrelay/plugin.h>

#include <catch2/catch.hpp>

#include <dlfcn.h>

using namespace wsrelay::test;
using wsrelay::test::plugins::kPluginDir;
using wsrelay::test::plugins::quoted;
using wsrelay::test::plugins::test_plugin_dir;

namespace {

const char* const kScript = R"(
local t = require "relay.testext"
local h = {}
function h.on_open(s) return {type = "welcome"} end
function h.echo(s, m) return {type = "echo", r = {t.echo("a", 1.5, true, nil, {}, s)}} end
function h.roundtrip(s, m)
  local v, text = t.json({a = 1, b = {"x"}})
  return {type = "json", v = v, text = text}
end
function h.info(s, m)
  local id, user = t.session_info(s)
  return {type = "info", same = (id == s.id), user = user}
end
function h.attrs(s, m)
  local ok = t.set_attr(s, "color", "blue")
  s.attrs.size = "xl"
  return {type = "attrs", ok = ok, color = s.attrs.color, size = t.get_attr(s, "size"),
          filtered = s.attrs.filtered}
end
function h.publish(s, m)
  s:subscribe("news")
  return {type = "published", n = t.publish("news", '{"type":"news"}')}
end
function h.send(s, m) return {type = "sent", r = t.send(s, '{"type":"pushed"}')} end
function h.fail(s, m)
  local ok, err = pcall(t.fail, "boom")
  local ok2, err2 = pcall(t.session_info, "not a session")
  return {type = "fail", ok = ok, err = err, ok2 = ok2, err2 = err2}
end
function h.options(s, m) return {type = "options", o = t.options()} end
function h.stats(s, m)
  local before, dropped, after = t.stats()
  return {type = "stats", before = before, dropped = dropped, after = after}
end
function h.auth(s, m)
  local user, claims = relay.auth(m.token, "static")
  if not user then return nil, "unauthorized", claims end
  s.user = user
  local _, seen = t.session_info(s)
  return {type = "auth.ok", user = user, role = claims.role, seen = seen}
end
function h.alias(s, m) return {type = "alias", same = (relay.testext == t), jwt = type(relay.jwt)} end
function h.setting(s, m) return {type = "setting", endpoint = t.setting("endpoint"), none = t.setting("nope")} end
return h
)";

std::string ext_config(const std::string& script, const std::string& options = R"({"greeting": "hi"})") {
  return "{\"plugin_dirs\": [" + quoted(test_plugin_dir("ext")) + R"(],
      "extensions": [{"name": "testext", "options": )" + options + R"(}],
      "endpoints": [{"path": "/x", "script": )" + quoted(script) + "}]}";
}

}  // namespace

TEST_CASE("plugins: an extension's module, filters and auth provider, over a real connection", "[plugins][ext]") {
  TempDir dir;
  const std::string script = dir.write("ext.lua", kScript);
  ServerFixture server(parse_test_config(ext_config(script), dir.path()));
  auto c = WsClient::connect("127.0.0.1", server.port(), "/x");
  REQUIRE(c != nullptr);
  REQUIRE(recv_json(*c).str("type") == "welcome");

  Json r = request(*c, R"({"type":"echo"})");
  CHECK(r.get("r").print() ==
        R"(["string:a","number:1.5","boolean:true","nil","table","session"])");

  r = request(*c, R"({"type":"roundtrip"})");
  CHECK(wsrelay::fakes::same_json(r.get("v").print(), R"({"a":1,"b":["x"]})"));
  CHECK(wsrelay::fakes::same_json(r.str("text"), R"({"a":1,"b":["x"]})"));

  r = request(*c, R"({"type":"info"})");
  CHECK(r.boolean("same"));
  CHECK_FALSE(r.has("user"));

  // Attributes: the plugin's are the script's, both ways; the before filter
  // counted the messages it passed into attrs.filtered.
  r = request(*c, R"({"type":"attrs"})");
  CHECK(r.boolean("ok"));
  CHECK(r.str("color") == "blue");
  CHECK(r.str("size") == "xl");
  CHECK(r.str("filtered") == "4");

  r = request(*c, R"({"type":"publish"})");
  Json second = recv_json(*c);
  // The publish was queued before the reply.
  CHECK(r.str("type") == "news");
  CHECK(second.str("type") == "published");
  CHECK(second.get("n").print() == "1");

  r = request(*c, R"({"type":"send"})");
  CHECK(r.str("type") == "pushed");
  r = recv_json(*c);
  CHECK(r.str("type") == "sent");
  CHECK(r.get("r").print() == "0");  // WSRELAY_SEND_OK

  // api->error raises in Lua, with the plugin's message.
  r = request(*c, R"({"type":"fail"})");
  CHECK((r.has("ok") && !r.boolean("ok")));
  CHECK_THAT(r.str("err"), Catch::Contains("boom"));
  CHECK((r.has("ok2") && !r.boolean("ok2")));
  CHECK_THAT(r.str("err2"), Catch::Contains("argument 1 must be an open session"));

  r = request(*c, R"({"type":"options"})");
  CHECK(r.get("o").print() == R"({"greeting":"hi"})");

  r = request(*c, R"({"type":"setting"})");
  CHECK(r.str("endpoint") == "/x");
  CHECK_FALSE(r.has("none"));

  // The filter drops what starts with DROP: the plugin answers, the script never sees it.
  REQUIRE(c->send_text("DROP this"));
  r = recv_json(*c);
  CHECK(r.str("type") == "dropped");
  CHECK(silent_for(*c));

  r = request(*c, R"({"type":"auth","token":"wrong"})");
  CHECK(r.str("type") == "error");
  CHECK(r.str("code") == "unauthorized");
  CHECK(r.str("message") == "wrong token");
  r = request(*c, R"({"type":"auth","token":"letmein"})");
  CHECK(r.str("type") == "auth.ok");
  CHECK(r.str("user") == "tester");
  CHECK(r.str("role") == "admin");
  CHECK(r.str("seen") == "tester");  // the API sees the user the script set

  r = request(*c, R"({"type":"alias"})");
  CHECK(r.boolean("same"));
  CHECK(r.str("jwt") == "table");  // the built-in extension is there too

  // before counts every message (13 so far, one dropped); after counts what the script handled.
  r = request(*c, R"({"type":"stats"})");
  CHECK(r.get("before").print() == "14");
  CHECK(r.get("dropped").print() == "1");
  CHECK(r.get("after").print() == "12");
}

TEST_CASE("plugins: extension errors stop the start with the place", "[plugins][ext]") {
  TempDir dir;
  std::vector<std::string> errors;
  auto plugins = wsrelay::server::PluginSet::load_dirs({test_plugin_dir("ext")}, true, errors);
  REQUIRE(plugins != nullptr);
  auto relay_errors = [&](const std::string& script_text, const std::string& options = "{}") {
    const std::string script = dir.write("s.lua", script_text);
    const auto cfg = parse_test_config(ext_config(script, options), dir.path());
    std::vector<std::string> errs;
    auto relay = wsrelay::server::Relay::create(cfg, errs, plugins.get());
    CHECK(relay == nullptr);
    std::string all;
    for (const auto& e : errs) all += e + "\n";
    return all;
  };
  CHECK_THAT(relay_errors("local x = require 'relay.nope' return {}"),
             Catch::Contains("s.lua:1: module 'relay.nope' not found") &&
                 Catch::Contains("available: relay.jwt, relay.testext"));
  CHECK_THAT(relay_errors("local x = require 'string' return {}"), Catch::Contains("module 'string' not found"));
  CHECK_THAT(relay_errors("return {}", R"({"fail_create": true})"),
             Catch::Contains("extension 'testext': told to fail by its options"));
  // require is for the load context only: a handler cannot reach it, but
  // the module kept in a local (or relay.<name>) works there.
  wsrelay::fakes::EngineFixture f;
  f.load(R"(
    local jwt = require "relay.jwt"
    return { late = function() return {type = "late", require = type(require), jwt = type(jwt.verify)} end }
  )");
  auto& c = f.connect();
  const auto late = f.ask(c, R"({"type":"late"})");
  CHECK(late.str("require") == "nil");
  CHECK(late.str("jwt") == "function");
}

TEST_CASE("plugins: the jwt extension works from its shared object", "[plugins][ext][jwt]") {
  void* handle = dlopen((kPluginDir + "/libwsrelay_ext_jwt.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  INFO(dlerror());
  REQUIRE(handle != nullptr);
  const auto* plugin = static_cast<const wsrelay_plugin*>(dlsym(handle, "ext_jwt"));
  REQUIRE(plugin != nullptr);
  {
    // Instead of the built-in copy: the standard script, JWT mode.
    wsrelay::fakes::EngineFixture f;
    f.context.extensions = {{plugin, "{}"}};
    f.context.jwt.secret = "s3cret";
    f.load_standard();
    auto& c = f.connect();
    f.received(c);
    const std::string good = wsrelay::auth::sign_hs256(R"({"sub":"bob","exp":4102444800})", "s3cret");
    const std::string forged = wsrelay::auth::sign_hs256(R"({"sub":"bob","exp":4102444800})", "other");
    auto bad = f.ask(c, R"({"type":"auth","id":1,"token":")" + forged + "\"}");
    CHECK(bad.str("code") == "unauthorized");
    CHECK(bad.str("message") == "invalid token: bad signature");
    auto ok = f.ask(c, R"({"type":"auth","id":2,"token":")" + good + "\"}");
    CHECK(ok.str("type") == "auth.ok");
    CHECK(ok.str("user") == "bob");
    f.unload();
  }
  {
    // Its auth provider, through relay.auth.
    wsrelay::fakes::EngineFixture f;
    f.context.extensions = {{plugin, "{}"}};
    f.context.jwt.secret = "s3cret";
    f.load(R"(return { a = function(s, m)
      local user, claims = relay.auth(m.token, "jwt")
      return {type = "a", user = user, sub = type(claims) == "table" and claims.sub or claims}
    end })");
    auto& c = f.connect();
    const std::string good = wsrelay::auth::sign_hs256(R"({"sub":"carol","exp":4102444800})", "s3cret");
    auto r = f.ask(c, R"({"type":"a","token":")" + good + "\"}");
    CHECK(r.str("user") == "carol");
    CHECK(r.str("sub") == "carol");
    r = f.ask(c, R"({"type":"a","token":"x.y.z"})");
    CHECK_FALSE(r.has("user"));
    CHECK(r.str("sub") == "malformed token");
    f.unload();
  }
  dlclose(handle);
}
