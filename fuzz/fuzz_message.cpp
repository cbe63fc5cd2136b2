// fuzz_message: a client's message from decoding to the script's reply.
//
// Each input goes, as a text frame and as a binary frame, through four script
// engines (scripts/standard.lua in development mode, standard.lua with a JWT
// secret, a custom JSON script using most of the relay API, and a json=false
// script), then line by line as a sequence of text frames from one session
// (so "auth", "subscribe", "chat" can follow each other) while a second
// session listens on channel "room". It is also fed to the custom script as an
// upstream message. Finally json::parse -> push_json -> encode_lua is checked
// as a round trip in a bare Lua state.
//
// Invariants beyond "no crash, no sanitizer report":
//  * standard.lua only ever sends JSON objects with a string "type";
//  * every message json::parse accepts has no raw NUL byte (cJSON would cut a
//    string there, the truncation json::parse exists to refuse);
//  * encode_lua's output of a decoded value parses again, and a second round
//    trip gives an equal value.
#include "fuzz_common.hpp"

#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "pubsub/hub.hpp"
#include "script/engine.hpp"
#include "session/registry.hpp"
#include "session/session.hpp"
#include "stats/stats.hpp"

#include <cjson/cJSON.h>
#include <lua.hpp>

#include <fstream>
#include <memory>
#include <sstream>

using namespace wsrelay;

namespace {

// A script that reaches as much of the relay API as a message can steer.
constexpr const char* kCustomScript = R"lua(
local h = {}

function h.on_open(session)
  session.attrs.count = 0
  return { type = "hello", session = session.id }
end

-- The decoded message, encoded again.
function h.echo(session, msg) return msg end

function h.decode(session, msg)
  if type(msg.text) ~= "string" then return nil, "bad_request", "text must be a string" end
  local value, err = relay.json.decode(msg.text)
  if value == nil then return nil, "bad_json", err end
  local text, err2 = relay.json.encode(value)
  if text == nil then return nil, "bad_request", err2 end
  return { type = "decoded", text = text, again = relay.json.decode(text) }
end

function h.raw(session, msg)
  local ok, raw = pcall(relay.json.raw, msg.text)
  if not ok then return nil, "bad_request", tostring(raw) end
  return { type = "raw", value = raw, list = relay.json.array({ raw, relay.null }) }
end

function h.pub(session, msg)
  local channel = msg.channel
  if type(channel) ~= "string" or channel == "" then return nil, "bad_request", "channel" end
  session:subscribe(channel)
  local n = relay.publish(channel, { type = "pub", data = msg.data, seq = relay.next_seq(channel) },
                          msg.exclude and { exclude = session } or nil)
  if msg.leave then session:unsubscribe(channel) end
  return { type = "pub.ok", delivered = n, subscribers = relay.subscribers(channel),
           subscribed = session:is_subscribed(channel), subs = session:subscriptions() }
end

function h.send(session, msg)
  local to = msg.to
  if type(to) ~= "string" then to = session end
  local payload = msg.data
  if type(payload) ~= "table" and type(payload) ~= "string" then payload = { type = "sent", data = payload } end
  local ok, err = relay.send(to, payload)
  return { type = "send.ok", ok = ok or false, err = err }
end

function h.attrs(session, msg)
  local n = session.attrs.count + 1
  session.attrs.count = n
  if type(msg.key) == "string" then session.attrs[msg.key] = msg.value end
  return { type = "attrs", count = n, attrs = session.attrs }
end

function h.user(session, msg)
  if type(msg.name) == "string" or msg.name == nil then session.user = msg.name end
  return { type = "user", user = session.user, path = session.path, params = session.params }
end

function h.close(session, msg)
  local ok, err = pcall(session.close, session, msg.code, msg.reason)
  return { type = "close", ok = ok, err = not ok and tostring(err) or nil }
end

function h.verify(session, msg)
  if type(msg.token) ~= "string" then return nil, "bad_request", "token" end
  local claims, reason = relay.jwt.verify(msg.token)
  return { type = "verify", claims = claims, reason = reason }
end

function h.fail(session, msg)
  if msg.how == "error" then error(msg.data) end
  if msg.how == "table" then error({ msg.data }) end
  if msg.how == "nil" then return nil, msg.code, msg.message end
  if msg.how == "cycle" then local t = {} t.t = t return t end
  if msg.how == "fn" then return { type = "fn", f = print or tostring } end
  if msg.how == "global" then undeclared_global = 1 end
  if msg.how == "loop" then while true do end end
  if msg.how == "grow" then local t = {} for i = 1, 64 do t[i] = string.rep("x", 1 << 20) .. i end end
  return { type = "fail", how = msg.how }
end

function h.on_message(session, msg)
  local keys = {}
  for k in pairs(msg) do keys[#keys + 1] = k end
  table.sort(keys)
  return { type = "other", keys = relay.json.array(keys) }
end

function h.on_text(session, text)
  return { type = "text", length = #text, head = text:sub(1, 32) }
end

function h.on_binary(session, bytes)
  return string.format("%q", bytes:sub(1, 64))
end

function h.on_upstream(session, msg, raw)
  if type(msg) == "table" then
    return { type = "upstream", event = msg, bytes = #raw }
  end
  return raw
end

function h.on_error(session, code, message, msg)
  local id
  if type(msg) == "table" then id = msg.id end
  if code == "rethrow" then error("on_error failed") end
  return { type = "error", id = id, code = code, message = message }
end

function h.on_close(session, code, reason)
  relay.publish("room", { type = "left", code = code })
end

return h
)lua";

// Text mode: every text frame reaches on_text as it is.
constexpr const char* kTextScript = R"lua(
return {
  json = false,
  type_field = "op",
  on_text = function(session, text)
    local value = relay.json.decode(text)
    if type(value) == "table" and type(value.op) == "string" then
      return { type = "op", op = value.op, again = relay.json.encode(value) }
    end
    return text:upper()
  end,
  on_binary = function(session, bytes) return { type = "binary", length = #bytes } end,
}
)lua";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

struct Bench {
  pubsub::Hub hub;
  session::Registry registry;
  stats::Stats stats;
  std::unique_ptr<script::ScriptEngine> engine;
  bool standard = false;  // check standard.lua's output shape
  std::uint64_t next_id = 0;

  Bench(const std::string& name, const std::string& code, const std::string& secret, bool is_standard)
      : standard(is_standard) {
    script::ScriptContext context;
    context.hub = &hub;
    context.registry = &registry;
    context.stats = &stats;
    context.endpoint = "/ws/{room}";
    context.options_json = R"({"greeting":"hi","limits":[1,2,3]})";
    context.jwt.secret = secret;
    context.jwt.audience = secret.empty() ? "" : "fuzz";
    script::Limits limits;
    // Small enough that "loop" and "grow" end quickly, big enough for real work.
    limits.instructions_per_call = 200'000;
    limits.memory_bytes = 8u << 20;
    auto loaded = script::ScriptEngine::load({name, code}, std::move(context), limits);
    if (!loaded.engine) {
      std::fprintf(stderr, "cannot load %s: %s\n", name.c_str(), loaded.error.c_str());
      std::abort();
    }
    engine = std::move(loaded.engine);
  }

  struct Client {
    fuzz::NullTransport transport;
    std::unique_ptr<session::Session> session;
  };

  std::unique_ptr<Client> open() {
    auto c = std::make_unique<Client>();
    session::SessionInfo info{"/ws/{room}", "/ws/lobby", "127.0.0.1", {{"room", "lobby"}}};
    c->session = std::make_unique<session::Session>("fuzz" + std::to_string(++next_id), std::move(info),
                                                    &c->transport, &stats, 1u << 20);
    registry.add(c->session.get());
    engine->on_open(*c->session);
    return c;
  }

  // What the protocol's writer would send; checks standard.lua's shape.
  // Upstream frames are forwarded as they came (no on_upstream): unchecked.
  void drain(session::Session& s, bool check = true) {
    while (s.has_pending()) {
      const frame::FramePtr frame = s.front();
      s.pop_front();
      if (!standard || !check) continue;
      if (std::getenv("FUZZ_VERBOSE")) std::fprintf(stderr, "frame: %.*s\n", static_cast<int>(frame->size()), frame->payload().data());
      FUZZ_CHECK(!frame->is_binary());
      json::JsonPtr reply = json::parse(frame->payload());
      FUZZ_CHECK(reply != nullptr && cJSON_IsObject(reply.get()));
      FUZZ_CHECK(cJSON_IsString(cJSON_GetObjectItemCaseSensitive(reply.get(), "type")));
    }
  }

  void close(Client& c, bool check = true) {
    drain(*c.session, check);
    c.session->detach();
    engine->on_close(*c.session, 1000, "bye");
    hub.unsubscribe_all(c.session.get());
    registry.remove(c.session.get());
  }

  void run(std::string_view input) {
    auto listener = open();
    engine->on_message(*listener->session, R"({"type":"auth","token":"listener"})", false);
    engine->on_message(*listener->session, R"({"type":"subscribe","channel":"room"})", false);
    engine->on_message(*listener->session, R"({"type":"pub","channel":"room"})", false);
    drain(*listener->session);

    auto one = open();
    engine->on_message(*one->session, input, false);
    engine->on_message(*one->session, input, true);
    drain(*one->session);
    close(*one);

    auto seq = open();
    for (std::string_view line : fuzz::lines(input)) {
      if (seq->session->closing()) break;
      engine->on_message(*seq->session, line, false);
      drain(*seq->session);
      drain(*listener->session);
    }
    close(*seq);

    auto up = open();
    engine->on_upstream_message(*up->session, input, false);
    engine->on_upstream_message(*up->session, input, true);
    close(*up, false);
    close(*listener);
  }
};

std::vector<std::unique_ptr<Bench>>& benches() {
  static std::vector<std::unique_ptr<Bench>> all;
  return all;
}

// JSON -> Lua -> JSON, in a protected call (push_json may raise memory errors).
struct RoundTrip {
  const cJSON* root;
  std::string out;
  std::string error;
  bool encoded = false;
};

int round_trip(lua_State* L) {
  auto* job = static_cast<RoundTrip*>(lua_touserdata(L, 1));
  json::push_json(L, job->root);
  job->encoded = json::encode_lua(L, -1, job->out, job->error);
  return 0;
}

bool lua_round_trip(lua_State* L, const cJSON* root, std::string& out) {
  RoundTrip job{root, {}, {}, false};
  lua_pushcfunction(L, round_trip);
  lua_pushlightuserdata(L, &job);
  const int status = lua_pcall(L, 1, 0, 0);
  lua_settop(L, 0);
  if (status != LUA_OK || !job.encoded) return false;
  out = std::move(job.out);
  return true;
}

lua_State* json_state() {
  static lua_State* L = [] {
    lua_State* state = luaL_newstate();
    json::install_lua_json(state);
    return state;
  }();
  return L;
}

void check_json_round_trip(std::string_view input) {
  json::JsonPtr root = json::parse(input);
  if (root == nullptr) return;
  FUZZ_CHECK(input.find('\0') == std::string_view::npos);
  lua_State* L = json_state();
  std::string first;
  if (!lua_round_trip(L, root.get(), first)) return;  // NaN/inf numbers cannot be encoded
  json::JsonPtr again = json::parse(first);
  FUZZ_CHECK(again != nullptr);
  std::string second;
  FUZZ_CHECK(lua_round_trip(L, again.get(), second));
  json::JsonPtr third = json::parse(second);
  FUZZ_CHECK(third != nullptr);
  FUZZ_CHECK(cJSON_Compare(again.get(), third.get(), 1));
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  const std::string standard = read_file(WSRELAY_SOURCE_DIR "/scripts/standard.lua");
  if (standard.empty()) {
    std::fprintf(stderr, "cannot read %s\n", WSRELAY_SOURCE_DIR "/scripts/standard.lua");
    std::abort();
  }
  benches().push_back(std::make_unique<Bench>("standard.lua", standard, "", true));
  benches().push_back(std::make_unique<Bench>("standard.lua", standard, "fuzz-secret", true));
  benches().push_back(std::make_unique<Bench>("custom.lua", kCustomScript, "fuzz-secret", false));
  benches().push_back(std::make_unique<Bench>("text.lua", kTextScript, "", false));
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input = fuzz::as_text(data, size);
  for (auto& bench : benches()) bench->run(input);
  check_json_round_trip(input);
  return 0;
}
