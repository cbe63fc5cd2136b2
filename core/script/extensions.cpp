#include "script/extensions.hpp"

#include "script/extension_host.hpp"

#include <wsrelay/plugin.h>
#include "script/engine.hpp"
#include "script/reserved_names.hpp"
#include "session/log_fields.hpp"
#include "util/log.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>

// The auth result a provider fills through api->auth_accept / auth_reject.
struct wsrelay_auth {
  bool answered = false;
  wsrelay::script::AuthOutcome outcome;
};

namespace wsrelay::script {
namespace {

session::Session* session_of(wsrelay_session* s) { return reinterpret_cast<session::Session*>(s); }
wsrelay_session* handle_of(session::Session* s) { return reinterpret_cast<wsrelay_session*>(s); }

// Text frames must be valid UTF-8: a client fails the connection otherwise.
bool valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t n = 0;
    std::uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      n = 1, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      n = 2, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      n = 3, cp = c & 0x07;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    for (std::size_t k = 1; k <= n; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF)) {
      return false;
    }
    i += n + 1;
  }
  return true;
}

log::Level level_of(int level) {
  switch (level) {
    case WSRELAY_LOG_ERROR: return log::Level::Error;
    case WSRELAY_LOG_WARN: return log::Level::Warn;
    case WSRELAY_LOG_INFO: return log::Level::Info;
    default: return log::Level::Debug;
  }
}

void api_log(wsrelay_host* host, int level, const char* message) {
  try {
    const log::Level l = level_of(level);
    if (!log::enabled(l)) return;
    log::write(l, std::string_view(), (host != nullptr ? host->name : std::string("plugin")) + ": " + (message ? message : ""));
  } catch (...) {
  }
}

const char* api_setting(wsrelay_host* host, const char* key) {
  if (host == nullptr || key == nullptr) return nullptr;
  for (const auto& [name, value] : host->settings) {
    if (name == key) return value.c_str();
  }
  return nullptr;
}

wsrelay_session* api_find_session(wsrelay_host* host, const char* id) {
  if (host == nullptr || id == nullptr) return nullptr;
  const script::ScriptContext& context = host->engine->context();
  if (context.registry == nullptr) return nullptr;
  try {
    session::Session* s = context.registry->find(id);
    if (s == nullptr || !s->attached() || s->info().endpoint != context.endpoint) return nullptr;
    return handle_of(s);
  } catch (...) {
    return nullptr;
  }
}

const char* api_session_id(wsrelay_session* s) { return s != nullptr ? session_of(s)->id().c_str() : nullptr; }

const char* api_session_user(wsrelay_session* s) {
  if (s == nullptr || !session_of(s)->user()) return nullptr;
  return session_of(s)->user()->c_str();
}

void api_session_set_user(wsrelay_session* s, const char* user) {
  if (s == nullptr) return;
  try {
    session_of(s)->set_user(user != nullptr ? std::optional<std::string>(user) : std::nullopt);
  } catch (...) {
  }
}

int api_send(wsrelay_session* s, const char* data, size_t len, int binary) {
  if (s == nullptr || (data == nullptr && len > 0)) return WSRELAY_SEND_INVALID;
  try {
    const std::string_view payload(data != nullptr ? data : "", len);
    if (!binary && !valid_utf8(payload)) return WSRELAY_SEND_INVALID;
    switch (session_of(s)->send(binary ? frame::Frame::binary(payload) : frame::Frame::text(payload))) {
      case session::SendStatus::Queued: return WSRELAY_SEND_OK;
      case session::SendStatus::Overflow: return WSRELAY_SEND_QUEUE_FULL;
      case session::SendStatus::Closed: return WSRELAY_SEND_CLOSED;
    }
  } catch (...) {
  }
  return WSRELAY_SEND_CLOSED;
}

void api_close(wsrelay_session* s, int code, const char* reason) {
  if (s == nullptr) return;
  // The codes a server may send (RFC 6455 7.4), as session:close allows.
  const bool allowed = (code >= 1000 && code <= 1014 && code != 1005 && code != 1006) || (code >= 3000 && code <= 4999);
  try {
    std::string text = reason != nullptr ? reason : "";
    if (text.size() > 123) text.resize(123);
    session_of(s)->close(allowed ? code : 1011, std::move(text));
  } catch (...) {
  }
}

size_t api_publish(wsrelay_host* host, const char* channel, const char* data, size_t len, wsrelay_session* exclude) {
  if (host == nullptr || channel == nullptr || *channel == '\0' || (data == nullptr && len > 0)) return 0;
  pubsub::Hub* hub = host->engine->context().hub;
  if (hub == nullptr) return 0;
  try {
    const std::string_view payload(data != nullptr ? data : "", len);
    if (!valid_utf8(payload)) return 0;
    pubsub::Broker& broker = *hub;
    pubsub::PublishOptions options;
    options.exclude = session_of(exclude);
    const pubsub::ChannelOptions* kept = broker.channel_options(channel);
    if (kept != nullptr && kept->has_history()) {
      if (const char* problem = pubsub::history_message_problem(payload)) {
        log::warn(std::string("extension publish to '") + channel + "' refused: " + problem);
        return 0;
      }
    }
    return broker.publish(channel, frame::Frame::text(payload), options).delivered;
  } catch (...) {
    return 0;
  }
}

void api_auth_accept(wsrelay_auth* auth, const char* user, const char* claims_json) {
  if (auth == nullptr || auth->answered) return;
  try {
    auth->answered = true;
    auth->outcome.accepted = user != nullptr && *user != '\0';
    auth->outcome.user = user != nullptr ? user : "";
    auth->outcome.claims_json = claims_json != nullptr ? claims_json : "";
    if (!auth->outcome.accepted) auth->outcome.reason = "no user";
  } catch (...) {
  }
}

void api_auth_reject(wsrelay_auth* auth, const char* reason) {
  if (auth == nullptr || auth->answered) return;
  try {
    auth->answered = true;
    auth->outcome.accepted = false;
    auth->outcome.reason = reason != nullptr && *reason != '\0' ? reason : "rejected";
  } catch (...) {
  }
}

int api_verify_token(wsrelay_host* host, const char* token, size_t len, const char** claims_json, const char** subject,
                     const char** error) {
  static const char* const kNoAnswer = "internal error";
  if (error != nullptr) *error = kNoAnswer;
  if (host == nullptr || host->engine == nullptr || token == nullptr) return 0;
  try {
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    host->token = auth::verify_hs256(std::string_view(token, len), host->engine->context().jwt, now);
    if (claims_json != nullptr) *claims_json = host->token.claims_json.c_str();
    if (subject != nullptr) *subject = host->token.subject.c_str();
    if (error != nullptr) *error = host->token.error.c_str();
    return host->token.ok ? 1 : 0;
  } catch (...) {
    return 0;
  }
}

const wsrelay_api kApi = {
    WSRELAY_PLUGIN_ABI_VERSION,
    sizeof(wsrelay_api),
    api_log,
    api_setting,
    api_find_session,
    api_session_id,
    api_session_user,
    api_session_set_user,
    extension_lua::session_attr,
    extension_lua::session_set_attr,
    api_send,
    api_close,
    api_publish,
    extension_lua::arg_count,
    extension_lua::arg_type,
    extension_lua::arg_string,
    extension_lua::arg_number,
    extension_lua::arg_boolean,
    extension_lua::arg_json,
    extension_lua::arg_session,
    extension_lua::push_nil,
    extension_lua::push_boolean,
    extension_lua::push_number,
    extension_lua::push_string,
    extension_lua::push_json,
    extension_lua::error,
    extension_lua::call_host,
    api_auth_accept,
    api_auth_reject,
    api_verify_token,
};

bool valid_module_name(std::string_view name) {
  if (name.empty() || name.front() < 'a' || name.front() > 'z') return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; });
}

std::vector<std::pair<std::string, std::string>> settings_of(const script::ScriptContext& c) {
  return {{"jwt.secret", c.jwt.secret},
          {"jwt.leeway", std::to_string(c.jwt.leeway_s)},
          {"jwt.audience", c.jwt.audience},
          {"jwt.issuer", c.jwt.issuer},
          {"endpoint", c.endpoint},
          {"max_message_size", std::to_string(c.max_message_size)},
          {"heartbeat.interval", std::to_string(c.heartbeat_interval_s)},
          {"heartbeat.timeout", std::to_string(c.heartbeat_timeout_s)}};
}

}  // namespace

const wsrelay_api& extension_api() { return kApi; }

std::unique_ptr<Extensions> Extensions::create(const std::vector<extension::Enabled>& enabled, ScriptEngine& engine,
                                             std::string& error) {
  std::unique_ptr<Extensions> set(new Extensions());
  for (const extension::Enabled& e : enabled) {
    const wsrelay_plugin* plugin = e.plugin;
    if (plugin == nullptr) continue;
    const std::string name = extension::name_of(*plugin);
    if (std::string why = extension::check(*plugin); !why.empty()) {
      error = "extension '" + name + "': " + why;
      return nullptr;
    }
    auto host = std::make_unique<wsrelay_host>();
    host->plugin = plugin;
    host->name = name;
    host->engine = &engine;
    host->settings = settings_of(engine.context());
    if (plugin->create != nullptr) {
      char reason[256] = {0};
      if (plugin->create(&kApi, host.get(), e.options_json.c_str(), &host->state, reason, sizeof reason) != 0) {
        reason[sizeof reason - 1] = '\0';
        error = "extension '" + name + "': " + (reason[0] != '\0' ? reason : "create() failed");
        return nullptr;
      }
    }
    wsrelay_host* h = host.get();
    set->hosts_.push_back(std::move(host));  // from here on destroy() runs on failure too
    for (int i = 0; i < plugin->count_modules && plugin->modules != nullptr; ++i) {
      const wsrelay_module& m = plugin->modules[i];
      const std::string module_name = m.name != nullptr ? m.name : "";
      if (!valid_module_name(module_name)) {
        error = "extension '" + name + "': module name '" + module_name + "' must match [a-z][a-z0-9_]*";
        return nullptr;
      }
      if (is_reserved_relay_name(module_name)) {
        error = "extension '" + name + "': module name '" + module_name + "' is reserved: relay." + module_name +
                " belongs to the relay (docs/plugins.md lists the reserved names)";
        return nullptr;
      }
      if (const Module* other = set->find_module(module_name)) {
        error = "extension '" + name + "': module 'relay." + module_name + "' is also provided by extension '" +
                other->host->name + "'";
        return nullptr;
      }
      set->modules_.push_back({module_name, &m, h});
    }
    for (int i = 0; i < plugin->count_auth_providers && plugin->auth_providers != nullptr; ++i) {
      const wsrelay_auth_provider& p = plugin->auth_providers[i];
      if (p.name == nullptr || p.authenticate == nullptr) {
        error = "extension '" + name + "': auth provider " + std::to_string(i) + " has no name or function";
        return nullptr;
      }
      set->providers_.push_back({p.name, h, &p});
    }
    set->has_filters_ = set->has_filters_ || plugin->before_message != nullptr || plugin->after_message != nullptr;
  }
  return set;
}

Extensions::~Extensions() {
  for (auto it = hosts_.rbegin(); it != hosts_.rend(); ++it) {
    wsrelay_host& host = **it;
    if (host.plugin->destroy != nullptr) host.plugin->destroy(host.state);
  }
}

const Extensions::Module* Extensions::find_module(std::string_view name) const {
  for (const Module& m : modules_) {
    if (m.name == name) return &m;
  }
  return nullptr;
}

bool Extensions::before_message(session::Session& s, std::string_view data, bool binary) {
  const wsrelay_message message{handle_of(&s), data.data(), data.size(), binary ? 1 : 0};
  for (const auto& host : hosts_) {
    if (host->plugin->before_message == nullptr) continue;
    if (host->plugin->before_message(host->state, &message) == WSRELAY_FILTER_DROP) {
      log::debug("message dropped by extension '" + host->name + "'", session::log_fields(s));
      return false;
    }
  }
  return true;
}

void Extensions::after_message(session::Session& s, std::string_view data, bool binary) {
  const wsrelay_message message{handle_of(&s), data.data(), data.size(), binary ? 1 : 0};
  for (const auto& host : hosts_) {
    if (host->plugin->after_message != nullptr) host->plugin->after_message(host->state, &message);
  }
}

std::optional<AuthOutcome> Extensions::authenticate(std::string_view provider, std::string_view token) {
  for (const Provider& p : providers_) {
    if (!provider.empty() && p.name != provider) continue;
    const auto* entry = static_cast<const wsrelay_auth_provider*>(p.entry);
    wsrelay_auth auth;
    entry->authenticate(p.host->state, token.data(), token.size(), &auth);
    if (!auth.answered) {
      auth.outcome.accepted = false;
      auth.outcome.reason = "rejected";
    }
    return std::move(auth.outcome);
  }
  return std::nullopt;
}

}  // namespace wsrelay::script
