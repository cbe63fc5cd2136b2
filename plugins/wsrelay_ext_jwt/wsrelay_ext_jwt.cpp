// wsrelay_ext_jwt: HS256 JSON Web Token verification as an extension plugin.
//
//   local jwt = require "relay.jwt"
//   jwt.enabled()            -> true when a secret is configured
//   jwt.verify(token)        -> claims | nil, reason
//   jwt.leeway()             -> seconds of jwt.leeway (for session:set_expiry)
//   relay.auth(token, "jwt") -> sub, claims | nil, reason
//
// The secret and claim rules come from the relay's settings ("jwt.secret",
// "jwt.leeway", "jwt.audience", "jwt.issuer": the config's "jwt" section or
// WSRELAY_JWT_SECRET), never from the script; the relay verifies
// (wsrelay_api.verify_token, ABI 2). Reaches the relay only through the
// wsrelay_api table (include/wsrelay/plugin.h): no core header, no core code.
//
// Built twice from this file: libwsrelay_ext_jwt.so (symbol "ext_jwt") for any host
// that loads extension plugins, and with LWS_PLUGIN_STATIC into wsrelay_core,
// where it is always enabled.
#include <wsrelay/plugin.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

namespace {

struct State {
  const wsrelay_api* api = nullptr;
  wsrelay_host* host = nullptr;
  bool enabled = false;  // a secret is configured
  long long leeway_s = 0;
};

std::string setting(const wsrelay_api* api, wsrelay_host* host, const char* key) {
  const char* value = api->setting(host, key);
  return value != nullptr ? value : "";
}

int create(const wsrelay_api* api, wsrelay_host* host, const char*, void** state, char* error, size_t error_len) {
  auto* s = new (std::nothrow) State();
  if (s == nullptr) {
    std::snprintf(error, error_len, "out of memory");
    return 1;
  }
  s->api = api;
  s->host = host;
  s->enabled = !setting(api, host, "jwt.secret").empty();
  s->leeway_s = std::atoll(setting(api, host, "jwt.leeway").c_str());
  *state = s;
  return 0;
}

void destroy(void* state) { delete static_cast<State*>(state); }

// The relay verifies (wsrelay_api.verify_token): the rules, the secret and
// the algorithms are its own, the plugin only speaks for them in Lua.
struct Verdict {
  bool ok = false;
  const char* claims_json = "";
  const char* subject = "";
  const char* error = "malformed token";
};

Verdict verify(const State& s, const char* token, size_t len) {
  Verdict v;
  v.ok = s.api->verify_token(s.host, token, len, &v.claims_json, &v.subject, &v.error) == 1;
  return v;
}

int lua_enabled(void* state, wsrelay_call* call) {
  const State& s = *static_cast<State*>(state);
  s.api->push_boolean(call, s.enabled ? 1 : 0);
  return 1;
}

// The leeway verify() applies, so a script can end the session at the very
// instant verify() would start refusing the token: exp + leeway.
int lua_leeway(void* state, wsrelay_call* call) {
  const State& s = *static_cast<State*>(state);
  // Negative counts as 0, as in verify_hs256.
  s.api->push_number(call, s.leeway_s > 0 ? static_cast<double>(s.leeway_s) : 0.0);
  return 1;
}

int lua_verify(void* state, wsrelay_call* call) {
  const State& s = *static_cast<State*>(state);
  size_t len = 0;
  const char* token = s.api->arg_string(call, 1, &len);
  if (token == nullptr) {
    s.api->error(call, "bad argument #1 to 'verify' (string expected)");
    return -1;
  }
  const Verdict result = verify(s, token, len);
  if (result.ok && s.api->push_json(call, result.claims_json, std::strlen(result.claims_json)) == 0) return 1;
  s.api->push_nil(call);
  const std::string reason = result.ok ? "malformed token" : result.error;
  s.api->push_string(call, reason.data(), reason.size());
  return 2;
}

void authenticate(void* state, const char* token, size_t len, wsrelay_auth* auth) {
  const State& s = *static_cast<State*>(state);
  if (!s.enabled) {
    s.api->auth_reject(auth, "no secret configured");
    return;
  }
  const Verdict result = verify(s, token, len);
  if (!result.ok) {
    s.api->auth_reject(auth, result.error);
  } else if (*result.subject == '\0') {
    s.api->auth_reject(auth, "no subject");
  } else {
    s.api->auth_accept(auth, result.subject, result.claims_json);
  }
}

const wsrelay_function_reg kFunctions[] = {{"verify", lua_verify}, {"enabled", lua_enabled}, {"leeway", lua_leeway}, {nullptr, nullptr}};
const wsrelay_module kModules[] = {{"jwt", kFunctions}};
const wsrelay_auth_provider kProviders[] = {{"jwt", authenticate}};

}  // namespace

WSRELAY_PLUGIN_EXPORT(ext_jwt) = {
    WSRELAY_PLUGIN_HEADER("jwt"),
    WSRELAY_PLUGIN_ABI_VERSION,
    "HS256 JSON Web Tokens: require \"relay.jwt\", relay.auth(token, \"jwt\")",
    create,
    destroy,
    kModules,
    1,
    nullptr,
    nullptr,
    kProviders,
    1,
};
