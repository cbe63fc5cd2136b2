// The server-wide sections of a config: listen, plugins and extensions,
// static, limits, heartbeat, log_level, jwt.
#include "config/loader.hpp"

#include "json/json.hpp"

#include <cjson/cJSON.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cmath>
#include <filesystem>
#include <initializer_list>
#include <map>
#include <memory>
#include <set>
#include <system_error>
#include <type_traits>
#include <utility>

namespace wsrelay::config {

namespace fs = std::filesystem;
using json::JsonPtr;
using JsonText = json::PrintedJson;

std::optional<Listener> Loader::read_listener(const cJSON* obj, const std::string& path) {
  const std::size_t before = errors_.size();
  Listener l;
  check_keys(obj, path, {"host", "port", "tls", "protocols"});
  if (cJSON* v = member(obj, "protocols")) read_listener_protocols(v, child_path(path, "protocols"), l);
  if (const cJSON* tls = member(obj, "tls")) {
    const std::string tls_path = child_path(path, "tls");
    if (!cJSON_IsObject(tls)) {
      error(tls_path, "expected an object with \"cert\" and \"key\"");
    } else {
      check_keys(tls, tls_path, {"cert", "key"});
      for (const char* key : {"cert", "key"}) {
        const std::string key_path = child_path(tls_path, key);
        const cJSON* v = member(tls, key);
        if (v == nullptr) {
          error(key_path, "required key is missing");
          continue;
        }
        auto file = get_string(v, key_path);
        if (!file) continue;
        std::string resolved = fs::path(*file).is_absolute() ? *file : (fs::path(base_dir_) / *file).string();
        if (access(resolved.c_str(), R_OK) != 0) {
          error(key_path, "file not found or not readable: " + resolved);
          continue;
        }
        (std::string_view(key) == "cert" ? l.tls_cert : l.tls_key) = resolved;
      }
    }
  }
  if (const cJSON* host = member(obj, "host")) {
    const std::string host_path = child_path(path, "host");
    if (auto v = get_string(host, host_path)) {
      if (v->empty()) {
        error(host_path, "expected a non-empty string");
      } else {
        l.host = std::move(*v);
      }
    }
  }
  if (const cJSON* port = member(obj, "port")) {
    if (auto v = get_integer(port, child_path(path, "port"), 0, 65535)) l.port = static_cast<int>(*v);
  }
  if (errors_.size() != before) return std::nullopt;
  return l;
}

void Loader::read_listeners(const cJSON* item, Config& cfg) {
  const std::string path = "listen";
  if (item == nullptr) {
    cfg.listeners.push_back(Listener{});
    return;
  }
  if (cJSON_IsObject(item)) {
    if (auto l = read_listener(item, path)) cfg.listeners.push_back(std::move(*l));
    return;
  }
  if (!cJSON_IsArray(item) || item->child == nullptr) {
    error(path, "expected an object or a non-empty array of objects");
    return;
  }
  std::vector<std::string> paths;  // parallel to cfg.listeners
  for_each_object(item, path, [&](const cJSON* el, const std::string& el_path) {
    auto l = read_listener(el, el_path);
    if (!l) return;
    // Port 0 asks the OS for a fresh port each time, so it never collides.
    for (std::size_t j = 0; l->port != 0 && j < cfg.listeners.size(); ++j) {
      if (cfg.listeners[j].host == l->host && cfg.listeners[j].port == l->port) {
        error(el_path, "duplicate of " + paths[j] + " (" + host_port(*l) + ")");
        return;
      }
    }
    cfg.listeners.push_back(std::move(*l));
    paths.push_back(el_path);
  });
}

bool Loader::is_plugin_name(std::string_view name) {
  return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
  });
}

std::optional<std::pair<std::string, cJSON*>> Loader::read_plugin_ref(cJSON* el, const std::string& el_path, std::string_view what) {
  cJSON* options = nullptr;
  const cJSON* name_item = el;
  std::string name_path = el_path;
  if (cJSON_IsObject(el)) {
    check_keys(el, el_path, {"name", "options"});
    name_path = child_path(el_path, "name");
    name_item = member(el, "name");
    if (name_item == nullptr) {
      error(name_path, "required key is missing");
      return std::nullopt;
    }
    options = member(el, "options");
    if (options != nullptr && !cJSON_IsObject(options)) {
      error(child_path(el_path, "options"), "expected an object");
      return std::nullopt;
    }
  } else if (!cJSON_IsString(el)) {
    error(el_path, "expected a " + std::string(what) + " name or {\"name\": ..., \"options\": {...}}");
    return std::nullopt;
  }
  auto name = get_string(name_item, name_path);
  if (!name) return std::nullopt;
  if (!is_plugin_name(*name)) {
    error(name_path, "expected a " + std::string(what) + " name of letters, digits, '-', '_' or '.' (got " +
                         quote(*name) + ")");
    return std::nullopt;
  }
  if (options != nullptr) expand_tree(options, child_path(el_path, "options"));
  return std::make_pair(std::move(*name), options);
}

void Loader::read_listener_protocols(cJSON* item, const std::string& path, Listener& l) {
  if (!cJSON_IsArray(item)) {
    error(path, "expected an array of protocol names");
    return;
  }
  std::set<std::string> seen;
  std::size_t i = 0;
  for (cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
    const std::string el_path = index_path(path, i);
    auto ref = read_plugin_ref(el, el_path, "protocol");
    if (!ref) continue;
    if (ref->first == "wsrelay" || ref->first == "wsrelay-upstream") {
      error(el_path, quote(ref->first) + " is built in and always served");
      continue;
    }
    if (!seen.insert(ref->first).second) {
      error(el_path, "duplicate protocol " + quote(ref->first));
      continue;
    }
    PluginProtocol p;
    p.name = ref->first;
    p.key_path = el_path;
    for (const cJSON* o = ref->second != nullptr ? ref->second->child : nullptr; o != nullptr; o = o->next) {
      const std::string o_path = child_path(child_path(el_path, "options"), o->string ? o->string : "");
      if (cJSON_IsString(o)) {
        p.options.emplace_back(o->string, o->valuestring);
      } else if (cJSON_IsNumber(o) || cJSON_IsBool(o)) {
        JsonText text(cJSON_PrintUnformatted(o));
        p.options.emplace_back(o->string, text ? text.get() : "");
      } else {
        error(o_path, "expected a string, number or boolean (lws options are text)");
      }
    }
    l.protocols.push_back(std::move(p));
  }
}

void Loader::read_plugin_dirs(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "plugin_dirs";
  if (!cJSON_IsArray(item)) {
    error(path, "expected an array of folders");
    return;
  }
  cfg.plugin_dirs_set = true;
  std::size_t i = 0;
  for (const cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
    const std::string el_path = index_path(path, i);
    auto dir = get_string(el, el_path);
    if (!dir) continue;
    if (dir->empty()) {
      error(el_path, "expected a non-empty string");
      continue;
    }
    fs::path p(*dir);
    if (p.is_relative()) p = fs::path(base_dir_) / p;
    const std::string shown = p.lexically_normal().string();
    std::error_code ec;
    if (!fs::is_directory(p, ec)) {
      error(el_path, "not a folder: " + shown);
      continue;
    }
    cfg.plugin_dirs.push_back(shown);
  }
}

void Loader::read_static(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  auto dir = get_string(item, "static");
  if (!dir) return;
  if (dir->empty()) {
    error("static", "expected a non-empty string");
    return;
  }
  fs::path p(*dir);
  if (p.is_relative()) p = fs::path(base_dir_) / p;
  std::error_code ec;
  if (!fs::is_directory(p, ec)) {
    error("static", "not a folder: " + p.lexically_normal().string());
    return;
  }
  cfg.static_dir = fs::canonical(p, ec).string();
}

void Loader::read_extensions(cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "extensions";
  if (!cJSON_IsArray(item)) {
    error(path, "expected an array of extension names");
    return;
  }
  std::set<std::string> seen;
  std::size_t i = 0;
  for (cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
    const std::string el_path = index_path(path, i);
    auto ref = read_plugin_ref(el, el_path, "extension");
    if (!ref) continue;
    if (!seen.insert(ref->first).second) {
      error(el_path, "duplicate extension " + quote(ref->first));
      continue;
    }
    ExtensionConfig e;
    e.name = ref->first;
    e.key_path = el_path;
    if (ref->second != nullptr) {
      JsonText text(cJSON_PrintUnformatted(ref->second));
      e.options_json = text ? text.get() : "{}";
    }
    cfg.extensions.push_back(std::move(e));
  }
}

void Loader::read_limits(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "limits";
  if (!cJSON_IsObject(item)) {
    error(path, "expected an object");
    return;
  }
  check_keys(item, path, {"max_connections", "max_connections_per_ip", "messages_per_second", "message_burst",
                          "user_messages_per_second", "ip_messages_per_second", "rate_limit_close_after",
                          "max_subscriptions", "max_channel_length", "max_queue_bytes", "slow_consumer",
                          "handshake_timeout", "script_instructions", "script_memory_mb", "message_types",
                          "max_http_header_data", "history_memory_mb", "script_timers", "http_requests",
                          "http_timeout", "http_response_bytes", "waiting_messages"});
  Limits& l = cfg.limits;
  auto integer = [&](const char* key, long long min, long long max, auto& target) {
    if (const cJSON* v = member(item, key)) {
      if (auto n = get_integer(v, child_path(path, key), min, max)) {
        target = static_cast<std::remove_reference_t<decltype(target)>>(*n);
      }
    }
  };
  auto rate = [&](const char* key, double& target) {
    if (const cJSON* v = member(item, key)) {
      if (auto r = get_rate(v, child_path(path, key), true)) target = *r;
    }
  };
  integer("max_connections", 0, 10000000, l.max_connections);
  integer("max_connections_per_ip", 0, 10000000, l.max_connections_per_ip);
  rate("messages_per_second", l.messages_per_second);
  integer("message_burst", 1, 1000000, l.message_burst);
  rate("user_messages_per_second", l.user_messages_per_second);
  rate("ip_messages_per_second", l.ip_messages_per_second);
  integer("rate_limit_close_after", 0, 1000000, l.rate_limit_close_after);
  integer("max_subscriptions", 0, 1000000, l.max_subscriptions);
  integer("max_channel_length", 1, 65536, l.max_channel_length);
  integer("max_queue_bytes", 65536, 1LL << 34, l.max_queue_bytes);
  integer("handshake_timeout", 1, 3600, l.handshake_timeout_s);
  integer("max_http_header_data", 1024, 65535, l.max_http_header_data);
  integer("script_instructions", 10000, 1LL << 40, l.script_instructions);
  integer("script_memory_mb", 1, 65536, l.script_memory_mb);
  integer("history_memory_mb", 1, 65536, l.history_memory_mb);
  integer("script_timers", 1, 1000000, l.script_timers);
  integer("http_requests", 1, 100000, l.http_requests);
  integer("http_timeout", 1, 300, l.http_timeout_s);
  integer("http_response_bytes", 1024, 1LL << 30, l.http_response_bytes);
  integer("waiting_messages", 0, 100000, l.waiting_messages);
  read_message_type_rates(member(item, "message_types"), child_path(path, "message_types"), l);
  if (const cJSON* v = member(item, "slow_consumer")) {
    if (auto s = get_string(v, child_path(path, "slow_consumer"))) {
      if (*s != "disconnect" && *s != "drop_oldest") {
        error(child_path(path, "slow_consumer"), "expected \"disconnect\" or \"drop_oldest\" (got " + quote(*s) + ")");
      } else {
        l.slow_consumer = *s;
      }
    }
  }
}

void Loader::read_message_type_rates(const cJSON* item, const std::string& path, Limits& l) {
  if (item == nullptr) return;
  if (!cJSON_IsObject(item)) {
    error(path, "expected an object mapping message types to {\"per_second\", \"burst\"}");
    return;
  }
  for (const cJSON* entry = item->child; entry != nullptr; entry = entry->next) {
    const std::string name = entry->string != nullptr ? entry->string : "";
    const std::string entry_path = child_path(path, name.c_str());
    if (name.empty()) {
      error(path, "a message type name must not be empty");
      continue;
    }
    if (!cJSON_IsObject(entry)) {
      error(entry_path, "expected an object like {\"per_second\": 5, \"burst\": 10}");
      continue;
    }
    check_keys(entry, entry_path, {"per_second", "burst"});
    MessageTypeRate rate{name, 0, 0};
    const cJSON* per_second = member(entry, "per_second");
    if (per_second == nullptr) {
      error(entry_path, "missing \"per_second\"");
      continue;
    }
    // 0 would mean "never" here, not "off": leaving the type out is how to
    // not limit it, so per-type rates have no off value.
    auto per = get_rate(per_second, child_path(entry_path, "per_second"), false);
    if (!per) continue;
    rate.per_second = *per;
    // Default burst: one second's worth, at least one message.
    rate.burst = std::max(1, static_cast<int>(std::ceil(rate.per_second)));
    if (const cJSON* burst = member(entry, "burst")) {
      if (auto n = get_integer(burst, child_path(entry_path, "burst"), 1, 1000000)) {
        rate.burst = static_cast<int>(*n);
      } else {
        continue;
      }
    }
    l.message_types.push_back(std::move(rate));
  }
}

void Loader::read_heartbeat(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "heartbeat";
  if (!cJSON_IsObject(item)) {
    error(path, "expected an object");
    return;
  }
  check_keys(item, path, {"interval", "timeout"});
  bool ok = true;
  if (const cJSON* v = member(item, "interval")) {
    if (auto n = get_integer(v, child_path(path, "interval"), 1, INT_MAX)) {
      cfg.heartbeat.interval_s = static_cast<int>(*n);
    } else {
      ok = false;
    }
  }
  if (const cJSON* v = member(item, "timeout")) {
    if (auto n = get_integer(v, child_path(path, "timeout"), 1, INT_MAX)) {
      cfg.heartbeat.timeout_s = static_cast<int>(*n);
    } else {
      ok = false;
    }
  }
  // A timeout at or below the ping interval would close healthy idle
  // clients before their next ping could arrive.
  if (ok && cfg.heartbeat.timeout_s <= cfg.heartbeat.interval_s) {
    error(child_path(path, "timeout"), "must be greater than heartbeat.interval (" +
                                           std::to_string(cfg.heartbeat.interval_s) + ")");
  }
}

void Loader::read_log_level(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "log_level";
  auto v = get_string(item, path);
  if (!v) return;
  if (*v != "error" && *v != "warn" && *v != "info" && *v != "debug") {
    error(path, "expected one of error, warn, info, debug (got " + quote(*v) + ")");
    return;
  }
  cfg.log_level = std::move(*v);
}

void Loader::read_jwt(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "jwt";
  if (!cJSON_IsObject(item)) {
    error(path, "expected an object");
    return;
  }
  check_keys(item, path, {"secret", "leeway", "audience", "issuer"});
  if (const cJSON* v = member(item, "secret")) {
    if (auto s = get_string(v, child_path(path, "secret"))) cfg.jwt.secret = std::move(*s);
  }
  if (const cJSON* v = member(item, "leeway")) {
    if (auto n = get_integer(v, child_path(path, "leeway"), 0, 3600)) cfg.jwt.leeway_s = static_cast<int>(*n);
  }
  if (const cJSON* v = member(item, "audience")) {
    if (auto s = get_string(v, child_path(path, "audience"))) cfg.jwt.audience = std::move(*s);
  }
  if (const cJSON* v = member(item, "issuer")) {
    if (auto s = get_string(v, child_path(path, "issuer"))) cfg.jwt.issuer = std::move(*s);
  }
}

}  // namespace wsrelay::config
