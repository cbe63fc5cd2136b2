// Unit tests for core/config: env expansion, schema validation and the exact
// text of every error message (wsrelay --check prints them verbatim).
#include <catch2/catch.hpp>

#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <string>
#include <system_error>
#include <vector>

#include "config/config.hpp"
#include "config/env_expand.hpp"

namespace fs = std::filesystem;
using namespace wsrelay::config;

namespace {

using Errors = std::vector<std::string>;

EnvLookup fake_env(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Every test passes an explicit environment; this one is empty.
LoadResult parse_text(std::string_view text, const EnvLookup& env = fake_env({}),
                      const std::string& base_dir = "/nonexistent-base") {
  return parse(text, "config.json", base_dir, env);
}

// Asserts failure and returns the errors, so a test can compare them exactly.
Errors errors_of(std::string_view text, const EnvLookup& env = fake_env({}),
                 const std::string& base_dir = "/nonexistent-base") {
  LoadResult r = parse_text(text, env, base_dir);
  CHECK_FALSE(r.config.has_value());
  return r.errors;
}

Config config_of(std::string_view text, const EnvLookup& env = fake_env({}),
                 const std::string& base_dir = "/nonexistent-base") {
  LoadResult r = parse_text(text, env, base_dir);
  INFO("errors: " << Catch::Detail::stringify(r.errors));
  REQUIRE(r.errors.empty());
  REQUIRE(r.config.has_value());
  return *r.config;
}

// A fresh directory under the system temp dir, removed with its contents.
struct TempDir {
  std::string path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "wsrelay_test_config_XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  std::string write(const std::string& name, const std::string& content) const {
    const fs::path p = fs::path(path) / name;
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary);
    out << content;
    out.close();
    REQUIRE(out.good());
    return p.string();
  }
};

constexpr const char* kMinimal = R"({"endpoints": [{"path": "/ws"}]})";

}  // namespace

// ---------------------------------------------------------------------------
// Valid configs and defaults

TEST_CASE("config: minimal config gets every default", "[config]") {
  const Config c = config_of(kMinimal);
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].host == "127.0.0.1");
  CHECK(c.listeners[0].port == 8000);
  CHECK(c.heartbeat.interval_s == 25);
  CHECK(c.heartbeat.timeout_s == 60);
  CHECK(c.jwt.secret == "");
  CHECK(c.jwt.leeway_s == 0);
  CHECK(c.jwt.audience == "");
  CHECK(c.jwt.issuer == "");
  CHECK(c.log_level == "info");
  CHECK(c.source == "config.json");
  CHECK(c.base_dir == "/nonexistent-base");
  REQUIRE(c.endpoints.size() == 1);
  CHECK(c.endpoints[0].path == "/ws");
  CHECK(c.endpoints[0].script_path == "");
  CHECK(c.endpoints[0].script_name == "<built-in standard.lua>");
  CHECK(c.endpoints[0].options_json == "{}");
  CHECK(c.endpoints[0].max_message_size == 1048576);
}

TEST_CASE("config: every key set", "[config]") {
  TempDir dir;
  const std::string script = dir.write("chat.lua", "-- chat\n");
  const Config c = config_of(R"({
    "listen": {"host": "0.0.0.0", "port": 9001},
    "heartbeat": {"interval": 10, "timeout": 30},
    "log_level": "debug",
    "jwt": {"secret": "s3cret", "leeway": 30, "audience": "aud", "issuer": "iss"},
    "endpoints": [
      {"path": "/chat/{room}", "script": "chat.lua", "max_message_size": 4096,
       "options": {"history": 50, "names": ["a", "b"], "nested": {"on": true}}},
      {"path": "/api/v1/ws/{user_id}"}
    ]
  })",
                             fake_env({}), dir.path);
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].host == "0.0.0.0");
  CHECK(c.listeners[0].port == 9001);
  CHECK(c.heartbeat.interval_s == 10);
  CHECK(c.heartbeat.timeout_s == 30);
  CHECK(c.log_level == "debug");
  CHECK(c.jwt.secret == "s3cret");
  CHECK(c.jwt.leeway_s == 30);
  CHECK(c.jwt.audience == "aud");
  CHECK(c.jwt.issuer == "iss");
  REQUIRE(c.endpoints.size() == 2);
  CHECK(c.endpoints[0].path == "/chat/{room}");
  CHECK(c.endpoints[0].script_name == "chat.lua");
  CHECK(c.endpoints[0].script_path == script);
  CHECK(c.endpoints[0].max_message_size == 4096);
  CHECK(c.endpoints[0].options_json == R"({"history":50,"names":["a","b"],"nested":{"on":true}})");
  CHECK(c.endpoints[1].path == "/api/v1/ws/{user_id}");
  CHECK(c.endpoints[1].script_path == "");
  CHECK(c.endpoints[1].options_json == "{}");
}

TEST_CASE("config: accepted boundary values", "[config]") {
  const Config c = config_of(R"({
    "listen": [{"port": 0}, {"port": 0}, {"host": "::1", "port": 65535}],
    "heartbeat": {"interval": 1, "timeout": 2},
    "log_level": "error",
    "jwt": {"leeway": 3600},
    "endpoints": [{"path": "/", "max_message_size": 67108864}, {"path": "/a", "max_message_size": 1}]
  })");
  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].port == 0);
  CHECK(c.listeners[1].port == 0);
  CHECK(c.listeners[2].host == "::1");
  CHECK(c.listeners[2].port == 65535);
  CHECK(c.heartbeat.interval_s == 1);
  CHECK(c.heartbeat.timeout_s == 2);
  CHECK(c.jwt.leeway_s == 3600);
  CHECK(c.endpoints[0].max_message_size == 67108864);
  CHECK(c.endpoints[1].max_message_size == 1);
  for (const char* level : {"error", "warn", "info", "debug"}) {
    const std::string text = std::string(R"({"log_level": ")") + level + R"(", "endpoints": [{"path": "/ws"}]})";
    CHECK(config_of(text).log_level == level);
  }
}

TEST_CASE("config: listen as an array gives one listener per element", "[config]") {
  const Config c = config_of(R"({
    "listen": [{"host": "127.0.0.1", "port": 8000}, {"host": "0.0.0.0", "port": 8443}, {"port": 9000}],
    "endpoints": [{"path": "/ws"}]
  })");
  REQUIRE(c.listeners.size() == 3);
  CHECK(c.listeners[0].host == "127.0.0.1");
  CHECK(c.listeners[0].port == 8000);
  CHECK(c.listeners[1].host == "0.0.0.0");
  CHECK(c.listeners[1].port == 8443);
  CHECK(c.listeners[2].host == "127.0.0.1");
  CHECK(c.listeners[2].port == 9000);
}

TEST_CASE("config: default_config", "[config]") {
  const Config c = default_config(fake_env({{"WSRELAY_JWT_SECRET", "from-env"}}));
  REQUIRE(c.listeners.size() == 1);
  CHECK(c.listeners[0].host == "127.0.0.1");
  CHECK(c.listeners[0].port == 8000);
  REQUIRE(c.endpoints.size() == 1);
  CHECK(c.endpoints[0].path == "/ws");
  CHECK(c.endpoints[0].script_path == "");
  CHECK(c.endpoints[0].script_name == "<built-in standard.lua>");
  CHECK(c.endpoints[0].options_json == "{}");
  CHECK(c.endpoints[0].max_message_size == 1048576);
  CHECK(c.heartbeat.interval_s == 25);
  CHECK(c.heartbeat.timeout_s == 60);
  CHECK(c.log_level == "info");
  CHECK(c.source == "<built-in>");
  CHECK(c.jwt.secret == "from-env");
  CHECK(default_config(fake_env({})).jwt.secret == "");
}

TEST_CASE("config: load_default adds /assistant only with OPENAI_API_KEY", "[config]") {
  const LoadResult plain = load_default(fake_env({}));
  REQUIRE(plain.config);
  CHECK(plain.config->endpoints.size() == 1);

  const LoadResult with_key = load_default(fake_env({{"OPENAI_API_KEY", "sk-unit-test-key"}}));
  REQUIRE(with_key.errors.empty());
  REQUIRE(with_key.config);
  REQUIRE(with_key.config->endpoints.size() == 2);
  const Endpoint& ep = with_key.config->endpoints[1];
  CHECK(ep.path == "/assistant");
  CHECK(ep.script_name == "realtime.lua");
  CHECK(fs::path(ep.script_path).filename() == "realtime.lua");
  CHECK(ep.allowed_origins == std::vector<std::string>{"self"});
  REQUIRE(ep.upstream);
  CHECK(ep.upstream->url == "wss://api.openai.com/v1/realtime?model=gpt-realtime");
  CHECK(ep.upstream->tls);
  CHECK(ep.upstream->host == "api.openai.com");
  REQUIRE(ep.upstream->headers.size() == 1);
  CHECK(ep.upstream->headers[0] == std::pair<std::string, std::string>{"Authorization", "Bearer sk-unit-test-key"});
  CHECK(ep.options_json.find("\"output_modalities\":[\"text\"]") != std::string::npos);

  const LoadResult moved = load_default(
      fake_env({{"OPENAI_API_KEY", "sk-unit-test-key"}, {"WSRELAY_ASSISTANT_URL", "ws://127.0.0.1:9/v1/realtime"}}));
  REQUIRE(moved.config);
  CHECK(moved.config->endpoints[1].upstream->url == "ws://127.0.0.1:9/v1/realtime");
  CHECK(moved.config->endpoints[1].upstream->port == 9);

  const LoadResult bad =
      load_default(fake_env({{"OPENAI_API_KEY", "sk-unit-test-key"}, {"WSRELAY_ASSISTANT_URL", "http://x"}}));
  CHECK_FALSE(bad.config);
  REQUIRE(bad.errors.size() == 1);
  CHECK(bad.errors[0].rfind("<built-in assistant>: endpoints[0].upstream.url: ", 0) == 0);
}

TEST_CASE("config: allowed_origins accepts \"self\"", "[config]") {
  const LoadResult r = parse(R"({"endpoints":[{"path":"/ws","allowed_origins":["self","https://a.example"]}]})",
                             "c.json", "/tmp", fake_env({}));
  REQUIRE(r.config);
  CHECK(r.config->endpoints[0].allowed_origins == std::vector<std::string>{"self", "https://a.example"});
}

// ---------------------------------------------------------------------------
// Environment expansion

TEST_CASE("expand_env: syntax", "[config]") {
  const EnvLookup env = fake_env({{"HOST", "example.org"}, {"EMPTY", ""}, {"N", "42"}});

  auto ok = [&](std::string_view in) {
    Expanded e = expand_env(in, env);
    INFO("input: " << in << " error: " << e.error);
    REQUIRE(e.error.empty());
    return e.value;
  };
  auto err = [&](std::string_view in) {
    Expanded e = expand_env(in, env);
    CHECK(e.value.empty());
    return e.error;
  };

  CHECK(ok("plain") == "plain");
  CHECK(ok("") == "");
  CHECK(ok("${HOST}") == "example.org");
  CHECK(ok("wss://${HOST}:${N}/ws") == "wss://example.org:42/ws");
  CHECK(ok("${EMPTY}") == "");                        // set but empty: not an error
  CHECK(ok("${MISSING:-fallback}") == "fallback");     // unset -> default
  CHECK(ok("${EMPTY:-fallback}") == "fallback");       // empty -> default
  CHECK(ok("${HOST:-fallback}") == "example.org");
  CHECK(ok("${MISSING:-}") == "");
  CHECK(ok("${MISSING:-a b:c-d}") == "a b:c-d");
  CHECK(ok("$${HOST}") == "${HOST}");                  // escape
  CHECK(ok("$$${HOST}") == "$${HOST}");                // left to right: lone "$", then the "$${" escape
  CHECK(ok("cost: $5") == "cost: $5");                 // lone "$" is literal
  CHECK(ok("$") == "$");
  CHECK(ok("$$") == "$$");
  CHECK(ok("a}b") == "a}b");

  CHECK(err("${MISSING}") == "environment variable MISSING is not set");
  CHECK(err("x${HOST}${MISSING}") == "environment variable MISSING is not set");
  CHECK(err("${HOST") == "unterminated \"${\" (missing \"}\")");
  CHECK(err("abc ${") == "unterminated \"${\" (missing \"}\")");
  CHECK(err("${}") ==
        "invalid variable reference \"${}\" (expected ${NAME} or ${NAME:-default}, "
        "NAME matching [A-Za-z_][A-Za-z0-9_]*)");
  CHECK(err("${1X}") ==
        "invalid variable reference \"${1X}\" (expected ${NAME} or ${NAME:-default}, "
        "NAME matching [A-Za-z_][A-Za-z0-9_]*)");
  CHECK(err("${HOST-x}") ==
        "invalid variable reference \"${HOST-x}\" (expected ${NAME} or ${NAME:-default}, "
        "NAME matching [A-Za-z_][A-Za-z0-9_]*)");
  CHECK(err("${A:-${B}}") == "nested \"${\" in the default of \"${A:-${B}\" is not supported");
}

TEST_CASE("expand_env: an empty EnvLookup is an empty environment", "[config]") {
  CHECK(expand_env("${X:-d}", EnvLookup{}).value == "d");
  CHECK(expand_env("${X}", EnvLookup{}).error == "environment variable X is not set");
}

TEST_CASE("config: env expansion in string values", "[config]") {
  TempDir dir;
  const std::string script = dir.write("scripts/room.lua", "-- room\n");
  const EnvLookup env = fake_env({{"HOST", "0.0.0.0"},
                                  {"SECRET", "top"},
                                  {"LEVEL", "warn"},
                                  {"SCRIPTS", "scripts"},
                                  {"ROOM", "lobby"},
                                  {"EMPTY", ""}});
  const Config c = config_of(R"({
    "listen": {"host": "${HOST}"},
    "log_level": "${LEVEL}",
    "jwt": {"secret": "${SECRET}", "audience": "${AUD:-my-aud}", "issuer": "${EMPTY:-iss}"},
    "endpoints": [{
      "path": "/${ROOM}",
      "script": "${SCRIPTS}/room.lua",
      "options": {"room": "${ROOM}", "list": ["${HOST}", 1, {"deep": "x-${ROOM:-none}"}],
                  "literal": "$${ROOM}", "price": "$5", "n": 3}
    }]
  })",
                             env, dir.path);
  CHECK(c.listeners[0].host == "0.0.0.0");
  CHECK(c.log_level == "warn");
  CHECK(c.jwt.secret == "top");
  CHECK(c.jwt.audience == "my-aud");
  CHECK(c.jwt.issuer == "iss");
  CHECK(c.endpoints[0].path == "/lobby");
  CHECK(c.endpoints[0].script_name == "scripts/room.lua");
  CHECK(c.endpoints[0].script_path == script);
  CHECK(c.endpoints[0].options_json ==
        R"({"room":"lobby","list":["0.0.0.0",1,{"deep":"x-lobby"}],"literal":"${ROOM}","price":"$5","n":3})");
}

TEST_CASE("config: env expansion errors name the key path", "[config]") {
  CHECK(errors_of(R"({"jwt": {"secret": "${FOO}"}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: jwt.secret: environment variable FOO is not set"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "options": {"a": {"b": ["x", "${NOPE}"]}}}]})") ==
        Errors{"config.json: endpoints[0].options.a.b[1]: environment variable NOPE is not set"});
  CHECK(errors_of(R"({"listen": {"host": "${HOST"}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen.host: unterminated \"${\" (missing \"}\")"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": "${DIR}/x.lua"}]})") ==
        Errors{"config.json: endpoints[0].script: environment variable DIR is not set"});
}

TEST_CASE("config: jwt secret from WSRELAY_JWT_SECRET", "[config]") {
  const EnvLookup env = fake_env({{"WSRELAY_JWT_SECRET", "env-secret"}});
  SECTION("no jwt object") { CHECK(config_of(kMinimal, env).jwt.secret == "env-secret"); }
  SECTION("jwt without secret") {
    const Config c = config_of(R"({"jwt": {"leeway": 5}, "endpoints": [{"path": "/ws"}]})", env);
    CHECK(c.jwt.secret == "env-secret");
    CHECK(c.jwt.leeway_s == 5);
  }
  SECTION("explicit secret wins") {
    CHECK(config_of(R"({"jwt": {"secret": "file"}, "endpoints": [{"path": "/ws"}]})", env).jwt.secret == "file");
  }
  SECTION("explicit empty secret wins") {
    CHECK(config_of(R"({"jwt": {"secret": ""}, "endpoints": [{"path": "/ws"}]})", env).jwt.secret == "");
  }
  SECTION("via expansion with a default") {
    const char* text = R"({"jwt": {"secret": "${WSRELAY_JWT_SECRET:-}"}, "endpoints": [{"path": "/ws"}]})";
    CHECK(config_of(text, env).jwt.secret == "env-secret");
    CHECK(config_of(text, fake_env({})).jwt.secret == "");
  }
  SECTION("unset variable gives an empty secret") { CHECK(config_of(kMinimal, fake_env({})).jwt.secret == ""); }
}

TEST_CASE("config: process_env reads the real environment", "[config]") {
  const std::string name = "WSRELAY_TEST_CONFIG_PROCESS_ENV";
  REQUIRE(setenv(name.c_str(), "value 1", 1) == 0);
  const EnvLookup env = process_env();
  CHECK(env(name) == std::optional<std::string>("value 1"));
  REQUIRE(unsetenv(name.c_str()) == 0);
  CHECK(env(name) == std::nullopt);
}

// ---------------------------------------------------------------------------
// Unknown and duplicate keys

TEST_CASE("config: unknown keys at every level", "[config]") {
  CHECK(errors_of(R"({"endpoint": [], "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: endpoint: unknown key"});
  CHECK(errors_of(R"({"listen": {"hots": "x"}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen.hots: unknown key"});
  CHECK(errors_of(R"({"listen": [{"port": 1}, {"Port": 2}], "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen[1].Port: unknown key"});
  CHECK(errors_of(R"({"heartbeat": {"intervall": 5}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: heartbeat.intervall: unknown key"});
  CHECK(errors_of(R"({"jwt": {"secrets": "x"}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: jwt.secrets: unknown key"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "scirpt": "x.lua"}]})") ==
        Errors{"config.json: endpoints[0].scirpt: unknown key"});
}

TEST_CASE("config: options content is free-form", "[config]") {
  const Config c = config_of(R"({"endpoints": [{"path": "/ws", "options": {"anything": {"scirpt": null}}}]})");
  CHECK(c.endpoints[0].options_json == R"({"anything":{"scirpt":null}})");
}

TEST_CASE("config: duplicate keys", "[config]") {
  CHECK(errors_of(R"({"listen": {"port": 1, "port": 2}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen.port: duplicate key"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/a"}], "endpoints": [{"path": "/b"}]})") ==
        Errors{"config.json: endpoints: duplicate key"});
}

// ---------------------------------------------------------------------------
// Wrong types

TEST_CASE("config: wrong types", "[config]") {
  auto one = [](const std::string& body) {
    return errors_of("{" + body + (body.empty() ? "" : ", ") + R"("endpoints": [{"path": "/ws"}]})");
  };
  CHECK(one(R"("listen": 8000)") ==
        Errors{"config.json: listen: expected an object or a non-empty array of objects"});
  CHECK(one(R"("listen": [])") ==
        Errors{"config.json: listen: expected an object or a non-empty array of objects"});
  CHECK(one(R"("listen": [{"port": 1}, "x"])") == Errors{"config.json: listen[1]: expected an object"});
  CHECK(one(R"("listen": {"host": 1})") == Errors{"config.json: listen.host: expected a string"});
  CHECK(one(R"("listen": {"host": ""})") == Errors{"config.json: listen.host: expected a non-empty string"});
  CHECK(one(R"("listen": {"port": "8000"})") == Errors{"config.json: listen.port: expected an integer"});
  CHECK(one(R"("listen": {"port": 8000.5})") == Errors{"config.json: listen.port: expected an integer"});
  CHECK(one(R"("listen": {"port": true})") == Errors{"config.json: listen.port: expected an integer"});
  CHECK(one(R"("listen": [{"port": null}])") == Errors{"config.json: listen[0].port: expected an integer"});
  CHECK(one(R"("heartbeat": [])") == Errors{"config.json: heartbeat: expected an object"});
  CHECK(one(R"("heartbeat": {"interval": "5"})") ==
        Errors{"config.json: heartbeat.interval: expected an integer"});
  CHECK(one(R"("heartbeat": {"timeout": 1.5})") == Errors{"config.json: heartbeat.timeout: expected an integer"});
  CHECK(one(R"("log_level": 3)") == Errors{"config.json: log_level: expected a string"});
  CHECK(one(R"("jwt": "secret")") == Errors{"config.json: jwt: expected an object"});
  CHECK(one(R"("jwt": {"secret": 123})") == Errors{"config.json: jwt.secret: expected a string"});
  CHECK(one(R"("jwt": {"leeway": "5"})") == Errors{"config.json: jwt.leeway: expected an integer"});
  CHECK(one(R"("jwt": {"audience": []})") == Errors{"config.json: jwt.audience: expected a string"});
  CHECK(one(R"("jwt": {"issuer": null})") == Errors{"config.json: jwt.issuer: expected a string"});

  CHECK(errors_of(R"({"endpoints": {"path": "/ws"}})") ==
        Errors{"config.json: endpoints: expected a non-empty array"});
  CHECK(errors_of(R"({"endpoints": [1]})") == Errors{"config.json: endpoints[0]: expected an object"});
  CHECK(errors_of(R"({"endpoints": [{"path": 5}]})") == Errors{"config.json: endpoints[0].path: expected a string"});
  CHECK(errors_of(R"({"endpoints": [{}]})") == Errors{"config.json: endpoints[0].path: required key is missing"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": 1}]})") ==
        Errors{"config.json: endpoints[0].script: expected a string"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": ""}]})") ==
        Errors{"config.json: endpoints[0].script: expected a non-empty string"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "max_message_size": "1"}]})") ==
        Errors{"config.json: endpoints[0].max_message_size: expected an integer"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "max_message_size": 1024.25}]})") ==
        Errors{"config.json: endpoints[0].max_message_size: expected an integer"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "options": []}]})") ==
        Errors{"config.json: endpoints[0].options: expected an object"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "options": "a=b"}]})") ==
        Errors{"config.json: endpoints[0].options: expected an object"});
}

TEST_CASE("config: endpoints missing or empty", "[config]") {
  CHECK(errors_of("{}") == Errors{"config.json: endpoints: required key is missing"});
  CHECK(errors_of(R"({"endpoints": []})") == Errors{"config.json: endpoints: expected a non-empty array"});
  CHECK(errors_of(R"({"endpoints": null})") == Errors{"config.json: endpoints: expected a non-empty array"});
}

// ---------------------------------------------------------------------------
// Ranges

TEST_CASE("config: out-of-range values", "[config]") {
  auto one = [](const std::string& body) { return errors_of("{" + body + R"(, "endpoints": [{"path": "/ws"}]})"); };
  CHECK(one(R"("listen": {"port": -1})") == Errors{"config.json: listen.port: must be between 0 and 65535"});
  CHECK(one(R"("listen": {"port": 65536})") == Errors{"config.json: listen.port: must be between 0 and 65535"});
  CHECK(one(R"("listen": {"port": 1e30})") == Errors{"config.json: listen.port: must be between 0 and 65535"});
  CHECK(one(R"("heartbeat": {"interval": 0})") == Errors{"config.json: heartbeat.interval: must be at least 1"});
  CHECK(one(R"("heartbeat": {"timeout": 0, "interval": 1})") ==
        Errors{"config.json: heartbeat.timeout: must be at least 1"});
  CHECK(one(R"("heartbeat": {"interval": 1, "timeout": 3000000000})") ==
        Errors{"config.json: heartbeat.timeout: must be at most 2147483647"});
  CHECK(one(R"("heartbeat": {"interval": 30, "timeout": 30})") ==
        Errors{"config.json: heartbeat.timeout: must be greater than heartbeat.interval (30)"});
  // The default timeout (60) also has to exceed a configured interval.
  CHECK(one(R"("heartbeat": {"interval": 90})") ==
        Errors{"config.json: heartbeat.timeout: must be greater than heartbeat.interval (90)"});
  CHECK(one(R"("heartbeat": {"timeout": 10})") ==
        Errors{"config.json: heartbeat.timeout: must be greater than heartbeat.interval (25)"});
  CHECK(one(R"("jwt": {"leeway": -1})") == Errors{"config.json: jwt.leeway: must be between 0 and 3600"});
  CHECK(one(R"("jwt": {"leeway": 3601})") == Errors{"config.json: jwt.leeway: must be between 0 and 3600"});
  CHECK(one(R"("log_level": "verbose")") ==
        Errors{"config.json: log_level: expected one of error, warn, info, debug (got \"verbose\")"});
  CHECK(one(R"("log_level": "INFO")") ==
        Errors{"config.json: log_level: expected one of error, warn, info, debug (got \"INFO\")"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "max_message_size": 0}]})") ==
        Errors{"config.json: endpoints[0].max_message_size: must be between 1 and 67108864"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "max_message_size": 67108865}]})") ==
        Errors{"config.json: endpoints[0].max_message_size: must be between 1 and 67108864"});
}

TEST_CASE("config: duplicate listeners", "[config]") {
  CHECK(errors_of(R"({"listen": [{"port": 8000}, {"host": "0.0.0.0", "port": 8000}, {"host": "127.0.0.1"}],
                      "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen[2]: duplicate of listen[0] (127.0.0.1:8000)"});
  CHECK(errors_of(R"({"listen": [{"host": "::1", "port": 1}, {"host": "::1", "port": 1}],
                      "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen[1]: duplicate of listen[0] ([::1]:1)"});
}

// ---------------------------------------------------------------------------
// Endpoint paths

TEST_CASE("config: endpoint path rules", "[config]") {
  auto path_errors = [](const std::string& path) {
    return errors_of(R"({"endpoints": [{"path": ")" + path + R"("}]})");
  };
  const std::string p = "config.json: endpoints[0].path: ";
  const std::string placeholder_hint =
      " (expected a whole segment \"{name}\" with name matching [A-Za-z_][A-Za-z0-9_]*)";

  CHECK(path_errors("ws") == Errors{p + "must start with \"/\""});
  CHECK(path_errors("") == Errors{p + "must start with \"/\""});
  CHECK(path_errors("/w s") == Errors{p + "must not contain whitespace"});
  CHECK(path_errors("/ws\\t") == Errors{p + "must not contain whitespace"});
  CHECK(path_errors("/ws?x=1") == Errors{p + "must not contain \"?\" or \"#\""});
  CHECK(path_errors("/ws#frag") == Errors{p + "must not contain \"?\" or \"#\""});
  CHECK(path_errors("ws x?") ==
        Errors{p + "must start with \"/\"", p + "must not contain whitespace", p + "must not contain \"?\" or \"#\""});
  CHECK(path_errors("/api/{user-id}") == Errors{p + "invalid placeholder in segment \"{user-id}\"" + placeholder_hint});
  CHECK(path_errors("/api/{1x}") == Errors{p + "invalid placeholder in segment \"{1x}\"" + placeholder_hint});
  CHECK(path_errors("/api/{}") == Errors{p + "invalid placeholder in segment \"{}\"" + placeholder_hint});
  CHECK(path_errors("/api/user_{id}") == Errors{p + "invalid placeholder in segment \"user_{id}\"" + placeholder_hint});
  CHECK(path_errors("/api/{id") == Errors{p + "invalid placeholder in segment \"{id\"" + placeholder_hint});
  CHECK(path_errors("/api/id}") == Errors{p + "invalid placeholder in segment \"id}\"" + placeholder_hint});
  CHECK(path_errors("/a/{x}/{y}/{bad!}/{z z}") ==
        Errors{p + "must not contain whitespace", p + "invalid placeholder in segment \"{bad!}\"" + placeholder_hint,
               p + "invalid placeholder in segment \"{z z}\"" + placeholder_hint});
  CHECK(path_errors("/a/{id}/b/{id}") == Errors{p + "placeholder \"{id}\" appears more than once"});

  const Config c = config_of(R"({"endpoints": [{"path": "/api/v1/ws/{user_id}"}, {"path": "/{_a1}/{B}/x"}]})");
  CHECK(c.endpoints[0].path == "/api/v1/ws/{user_id}");
  CHECK(c.endpoints[1].path == "/{_a1}/{B}/x");
}

TEST_CASE("config: duplicate endpoint paths", "[config]") {
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws"}, {"path": "/ws"}]})") ==
        Errors{"config.json: endpoints[1].path: duplicate of endpoints[0].path \"/ws\""});
  CHECK(errors_of(R"({"endpoints": [{"path": "/a"}, {"path": "/u/{id}"}, {"path": "/b"}, {"path": "/u/{name}"}]})") ==
        Errors{"config.json: endpoints[3].path: duplicate of endpoints[1].path \"/u/{id}\""});
  // Not duplicates: different literal segments.
  CHECK(config_of(R"({"endpoints": [{"path": "/ws"}, {"path": "/ws/"}, {"path": "/WS"}]})").endpoints.size() == 3);
}

// ---------------------------------------------------------------------------
// Scripts

TEST_CASE("config: endpoint script resolution", "[config]") {
  TempDir dir;
  const std::string rel = dir.write("scripts/chat.lua", "-- chat\n");
  TempDir other;
  const std::string abs = other.write("abs.lua", "-- abs\n");

  const Config c = config_of(R"({"endpoints": [
      {"path": "/a", "script": "scripts/chat.lua"},
      {"path": "/b", "script": "./scripts/../scripts/chat.lua"},
      {"path": "/c", "script": ")" + abs + R"("}]})",
                             fake_env({}), dir.path);
  CHECK(c.endpoints[0].script_path == rel);
  CHECK(c.endpoints[0].script_name == "scripts/chat.lua");
  CHECK(c.endpoints[1].script_path == rel);
  CHECK(c.endpoints[1].script_name == "./scripts/../scripts/chat.lua");
  CHECK(c.endpoints[2].script_path == abs);
  CHECK(c.endpoints[2].script_name == abs);
  CHECK(fs::path(c.endpoints[0].script_path).is_absolute());
}

TEST_CASE("config: endpoint script errors", "[config]") {
  TempDir dir;
  fs::create_directories(fs::path(dir.path) / "subdir");
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": "missing.lua"}]})", fake_env({}), dir.path) ==
        Errors{"config.json: endpoints[0].script: file not found: " + dir.path + "/missing.lua"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": "/nonexistent-dir/x.lua"}]})") ==
        Errors{"config.json: endpoints[0].script: file not found: /nonexistent-dir/x.lua"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": "subdir"}]})", fake_env({}), dir.path) ==
        Errors{"config.json: endpoints[0].script: not a regular file: " + dir.path + "/subdir"});

  if (geteuid() != 0) {  // root reads anything, so the check cannot trigger
    const std::string locked = dir.write("locked.lua", "-- x\n");
    REQUIRE(chmod(locked.c_str(), 0) == 0);
    CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "script": "locked.lua"}]})", fake_env({}), dir.path) ==
          Errors{"config.json: endpoints[0].script: cannot read: " + locked + ": Permission denied"});
  }
}

// ---------------------------------------------------------------------------
// Document-level errors

TEST_CASE("config: invalid JSON reports line and column", "[config]") {
  // cJSON reports the position where it gave up, which after a "," in an
  // object is one past the offending character; hence "near".
  CHECK(errors_of(R"({"a": 1,})") == Errors{"config.json: invalid JSON near line 1, column 10"});
  CHECK(errors_of("{\n  \"endpoints\": [\n    {\"path\": \"/ws\",}\n  ]\n}") ==
        Errors{"config.json: invalid JSON near line 3, column 21"});
  CHECK(errors_of("{\n\"\xC3\xA9\": tru}") == Errors{"config.json: invalid JSON near line 2, column 6"});
  CHECK(errors_of("") == Errors{"config.json: invalid JSON near line 1, column 1"});
  CHECK(errors_of("{} x") == Errors{"config.json: invalid JSON near line 1, column 4"});
  CHECK(errors_of(std::string_view("{}\0{}", 5)) == Errors{"config.json: invalid JSON near line 1, column 3"});
}

TEST_CASE("config: top level must be an object", "[config]") {
  CHECK(errors_of("[]") == Errors{"config.json: expected a JSON object at the top level"});
  CHECK(errors_of(R"("endpoints")") == Errors{"config.json: expected a JSON object at the top level"});
  CHECK(errors_of("42") == Errors{"config.json: expected a JSON object at the top level"});
  CHECK(errors_of("null") == Errors{"config.json: expected a JSON object at the top level"});
}

TEST_CASE("config: every error is reported, in document order", "[config]") {
  const Errors errors = errors_of(R"({
    "lsiten": {},
    "listen": [{"port": 70000}, {"host": 5}],
    "heartbeat": {"interval": 0, "timeout": "x"},
    "log_level": "loud",
    "jwt": {"secret": "${NOPE}", "leeway": 1.5},
    "endpoints": [
      {"path": "ws", "scirpt": "x"},
      {"path": "/ok", "script": "nope.lua", "max_message_size": 0},
      {"path": "/ok"}
    ]
  })",
                                  fake_env({}), "/nonexistent-base");
  CHECK(errors == Errors{
                      "config.json: lsiten: unknown key",
                      "config.json: listen[0].port: must be between 0 and 65535",
                      "config.json: listen[1].host: expected a string",
                      "config.json: heartbeat.interval: must be at least 1",
                      "config.json: heartbeat.timeout: expected an integer",
                      "config.json: log_level: expected one of error, warn, info, debug (got \"loud\")",
                      "config.json: jwt.secret: environment variable NOPE is not set",
                      "config.json: jwt.leeway: expected an integer",
                      "config.json: endpoints[0].scirpt: unknown key",
                      "config.json: endpoints[0].path: must start with \"/\"",
                      "config.json: endpoints[1].script: file not found: /nonexistent-base/nope.lua",
                      "config.json: endpoints[1].max_message_size: must be between 1 and 67108864",
                      "config.json: endpoints[2].path: duplicate of endpoints[1].path \"/ok\"",
                  });
}

TEST_CASE("config: source name prefixes every error", "[config]") {
  const LoadResult r = parse("{}", "/etc/wsrelay/prod.json", "/etc/wsrelay", fake_env({}));
  CHECK(r.errors == Errors{"/etc/wsrelay/prod.json: endpoints: required key is missing"});
}

// ---------------------------------------------------------------------------
// load_file

TEST_CASE("config: load_file", "[config]") {
  TempDir dir;
  SECTION("missing file") {
    const std::string missing = dir.path + "/nope.json";
    const LoadResult r = load_file(missing, fake_env({}));
    CHECK_FALSE(r.config.has_value());
    CHECK(r.errors == Errors{missing + ": cannot read: No such file or directory"});
  }
  SECTION("a directory") {
    const LoadResult r = load_file(dir.path, fake_env({}));
    CHECK(r.errors == Errors{dir.path + ": cannot read: Is a directory"});
  }
  SECTION("relative script resolves against the config's folder") {
    const std::string script = dir.write("conf/scripts/echo.lua", "-- echo\n");
    const std::string file = dir.write("conf/wsrelay.json", R"({"endpoints": [{"path": "/e", "script": "scripts/echo.lua"}]})");
    const LoadResult r = load_file(file, fake_env({}));
    REQUIRE(r.errors.empty());
    REQUIRE(r.config.has_value());
    CHECK(r.config->source == file);
    CHECK(r.config->base_dir == dir.path + "/conf");
    CHECK(r.config->endpoints[0].script_path == script);
  }
  SECTION("errors use the path as given") {
    const std::string file = dir.write("bad.json", "{\"endpoints\": [{\"path\": \"/ws\", \"x\": 1}]}");
    const LoadResult r = load_file(file, fake_env({}));
    CHECK(r.errors == Errors{file + ": endpoints[0].x: unknown key"});
  }
}

TEST_CASE("config: limits.message_types", "[config]") {
  const Config c = config_of(R"({"limits": {"message_types": {"chat": {"per_second": 2.5, "burst": 5},
                                  "typing": {"per_second": 10}, "slow": {"per_second": 0.2}}},
                                 "endpoints": [{"path": "/ws"}]})");
  REQUIRE(c.limits.message_types.size() == 3);
  CHECK(c.limits.message_types[0].type == "chat");
  CHECK(c.limits.message_types[0].per_second == 2.5);
  CHECK(c.limits.message_types[0].burst == 5);
  CHECK(c.limits.message_types[1].burst == 10);  // default: one second's worth
  CHECK(c.limits.message_types[2].burst == 1);   // at least one message
  CHECK(config_of(R"({"endpoints": [{"path": "/ws"}]})").limits.message_types.empty());

  auto one = [](const std::string& types) {
    return errors_of(R"({"limits": {"message_types": )" + types + R"(}, "endpoints": [{"path": "/ws"}]})");
  };
  CHECK(one("[]") == Errors{"config.json: limits.message_types: expected an object mapping message types to "
                            "{\"per_second\", \"burst\"}"});
  CHECK(one(R"({"chat": 5})") ==
        Errors{"config.json: limits.message_types.chat: expected an object like {\"per_second\": 5, \"burst\": 10}"});
  CHECK(one(R"({"chat": {}})") == Errors{"config.json: limits.message_types.chat: missing \"per_second\""});
  CHECK(one(R"({"chat": {"per_second": 0}})") ==
        Errors{"config.json: limits.message_types.chat.per_second: must be between 0.001 and 1000000, got 0"});
  CHECK(one(R"({"chat": {"per_second": "5"}})") ==
        Errors{"config.json: limits.message_types.chat.per_second: must be between 0.001 and 1000000, got a string"});
  CHECK(one(R"({"chat": {"per_second": 1e-300}})") ==
        Errors{"config.json: limits.message_types.chat.per_second: must be between 0.001 and 1000000, got 1e-300"});
  CHECK(one(R"({"chat": {"per_second": 5, "burst": 0}})") ==
        Errors{"config.json: limits.message_types.chat.burst: must be between 1 and 1000000"});
  CHECK(one(R"({"chat": {"per_second": 5, "brust": 3}})").size() == 1);
  CHECK(one(R"({"": {"per_second": 5}})") ==
        Errors{"config.json: limits.message_types: a message type name must not be empty"});
}

TEST_CASE("config: rates are 0 (off) or 0.001..1000000 (issue 12)", "[config]") {
  auto limits = [](const std::string& body) {
    return errors_of(R"({"limits": {)" + body + R"(}, "endpoints": [{"path": "/ws"}]})");
  };
  auto accepted = [](const std::string& body) {
    return config_of(R"({"limits": {)" + body + R"(}, "endpoints": [{"path": "/ws"}]})").limits.messages_per_second >= 0;
  };
  for (const char* key : {"messages_per_second", "user_messages_per_second", "ip_messages_per_second"}) {
    const std::string k = key;
    CHECK(accepted("\"" + k + "\": 0"));
    CHECK(accepted("\"" + k + "\": 0.001"));
    CHECK(accepted("\"" + k + "\": 1000000"));
    CHECK(limits("\"" + k + "\": 1e-300") ==
          Errors{"config.json: limits." + k + ": must be 0 (off) or between 0.001 and 1000000, got 1e-300"});
    CHECK(limits("\"" + k + "\": 0.0009") ==
          Errors{"config.json: limits." + k + ": must be 0 (off) or between 0.001 and 1000000, got 0.0009"});
    CHECK(limits("\"" + k + "\": 1000001") ==
          Errors{"config.json: limits." + k + ": must be 0 (off) or between 0.001 and 1000000, got 1000001"});
    CHECK(limits("\"" + k + "\": -1") ==
          Errors{"config.json: limits." + k + ": must be 0 (off) or between 0.001 and 1000000, got -1"});
    CHECK(limits("\"" + k + "\": \"5\"") ==
          Errors{"config.json: limits." + k + ": must be 0 (off) or between 0.001 and 1000000, got a string"});
  }
  CHECK(limits(R"("message_burst": 0)") == Errors{"config.json: limits.message_burst: must be between 1 and 1000000"});
  CHECK(limits(R"("message_burst": 1000001)") ==
        Errors{"config.json: limits.message_burst: must be between 1 and 1000000"});
}

TEST_CASE("config: limits.max_http_header_data", "[config]") {
  CHECK(config_of(R"({"endpoints": [{"path": "/ws"}]})").limits.max_http_header_data == 32768);
  CHECK(config_of(R"({"limits": {"max_http_header_data": 65535}, "endpoints": [{"path": "/ws"}]})")
            .limits.max_http_header_data == 65535);
  CHECK(errors_of(R"({"limits": {"max_http_header_data": "big"}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: limits.max_http_header_data: expected an integer"});
  for (const char* bad : {"1023", "65536"}) {
    INFO(bad);
    CHECK(errors_of(std::string(R"({"limits": {"max_http_header_data": )") + bad + R"(}, "endpoints": [{"path": "/ws"}]})") ==
          Errors{"config.json: limits.max_http_header_data: must be between 1024 and 65535"});
  }
}

TEST_CASE("config: the strict JSON rule of client messages holds for configs", "[config]") {
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "options": {"n": 1e400}}]})") ==
        Errors{"config.json: invalid JSON near line 1, column 49: number out of range"});
  CHECK(errors_of(R"({"endpoints": [{"path": "/ws", "options": {"n": 01}}]})").size() == 1);
  CHECK(errors_of("{\"listen\": {\"port\": 00}, \"endpoints\": [{\"path\": \"/ws\"}]}").size() == 1);
  // A byte order mark (editors write one) is allowed; a repeated key is named by its path.
  CHECK(config_of("\xEF\xBB\xBF{\"endpoints\": [{\"path\": \"/ws\"}]}").endpoints.size() == 1);
  CHECK(errors_of(R"({"listen": {"port": 1, "port": 2}, "endpoints": [{"path": "/ws"}]})") ==
        Errors{"config.json: listen.port: duplicate key"});
}
