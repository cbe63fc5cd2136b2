#include "config/config.hpp"

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

namespace {

namespace fs = std::filesystem;

// Where a plain `wsrelay` looks for the demo page; set by the build.
#ifndef WSRELAY_BUILD_DIR
#define WSRELAY_BUILD_DIR ""
#endif
#ifndef WSRELAY_DEMO_DIRS
#define WSRELAY_DEMO_DIRS ""
#endif
// Where the built-in config finds the assistant's script (realtime.lua).
#ifndef WSRELAY_ASSISTANT_SCRIPTS
#define WSRELAY_ASSISTANT_SCRIPTS ""
#endif

using json::JsonPtr;
using JsonText = json::PrintedJson;

struct FdCloser {
  explicit FdCloser(int f) : fd(f) {}
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int fd;
};

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

// 1-based line and column of a byte offset. Columns count UTF-8 code points so
// they match what an editor shows for non-ASCII text.
std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::size_t line = 1;
  std::size_t column = 1;
  for (std::size_t i = 0; i < offset; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0u) != 0x80u) {
      ++column;
    }
  }
  return {line, column};
}

bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool is_placeholder_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  return std::all_of(name.begin(), name.end(),
                     [](char c) { return is_name_start(c) || (c >= '0' && c <= '9'); });
}

std::vector<std::string_view> split_segments(std::string_view path) {
  std::vector<std::string_view> segments;
  std::size_t start = 0;
  while (true) {
    const std::size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      segments.push_back(path.substr(start));
      return segments;
    }
    segments.push_back(path.substr(start, slash - start));
    start = slash + 1;
  }
}

// "/a/{x}" and "/a/{y}" match the same requests, so duplicates are detected on
// the path with placeholder names erased.
std::string route_shape(std::string_view path) {
  std::string shape;
  bool first = true;
  for (std::string_view seg : split_segments(path)) {
    if (!first) shape += '/';
    first = false;
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      shape += "{}";
    } else {
      shape += seg;
    }
  }
  return shape;
}

std::string host_port(const Listener& l) {
  const bool v6 = l.host.find(':') != std::string::npos;
  return (v6 ? "[" + l.host + "]" : l.host) + ":" + std::to_string(l.port);
}

// Reads a whole file; returns 0 or an errno value. POSIX I/O rather than
// iostreams so the message names the real cause (EISDIR, EACCES, ...).
int read_whole_file(const std::string& path, std::string& out) {
  int fd = -1;
  do {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) return errno;
  FdCloser closer{fd};
  char buf[16384];
  while (true) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n == 0) return 0;
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    out.append(buf, static_cast<std::size_t>(n));
  }
}

// Walks one parsed document, filling a Config and collecting every error.
class Loader {
 public:
  Loader(const std::string& source, const std::string& base_dir, const EnvLookup& env)
      : source_(source), base_dir_(base_dir), env_(env) {}

  void error(const std::string& path, std::string_view message) {
    std::string line = source_ + ": ";
    if (!path.empty()) line += path + ": ";
    line += message;
    errors_.push_back(std::move(line));
  }

  std::vector<std::string>& errors() { return errors_; }

  Config run(cJSON* root) {
    Config cfg;
    cfg.source = source_;
    cfg.base_dir = base_dir_;
    cfg.jwt.secret = env_secret();
    if (!cJSON_IsObject(root)) {
      error("", "expected a JSON object at the top level");
      return cfg;
    }
    check_keys(root, "", {"listen", "heartbeat", "log_level", "jwt", "endpoints", "watch_scripts", "limits",
                          "admin_token", "plugin_dirs", "extensions", "static"});
    cfg.admin_token = env_ ? env_("WSRELAY_ADMIN_TOKEN").value_or("") : "";
    if (const cJSON* v = member(root, "admin_token")) {
      if (auto s = get_string(v, "admin_token")) cfg.admin_token = *s;
    }
    read_limits(member(root, "limits"), cfg);
    read_listeners(member(root, "listen"), cfg);
    read_heartbeat(member(root, "heartbeat"), cfg);
    read_log_level(member(root, "log_level"), cfg);
    if (const cJSON* v = member(root, "watch_scripts")) {
      if (!cJSON_IsBool(v)) {
        error("watch_scripts", "expected a boolean");
      } else {
        cfg.watch_scripts = cJSON_IsTrue(v);
      }
    }
    read_jwt(member(root, "jwt"), cfg);
    read_endpoints(member(root, "endpoints"), cfg);
    read_plugin_dirs(member(root, "plugin_dirs"), cfg);
    read_extensions(member(root, "extensions"), cfg);
    read_static(member(root, "static"), cfg);
    return cfg;
  }

 private:
  // Case-sensitive on purpose: cJSON_GetObjectItem would accept "Port" while
  // check_keys reports it as unknown.
  static cJSON* member(const cJSON* obj, const char* key) {
    return cJSON_GetObjectItemCaseSensitive(obj, key);
  }

  std::string env_secret() const {
    if (!env_) return {};
    return env_(std::string(kJwtSecretEnv)).value_or("");
  }

  void check_keys(const cJSON* obj, const std::string& path,
                  std::initializer_list<std::string_view> allowed) {
    std::set<std::string> seen;
    for (const cJSON* item = obj->child; item != nullptr; item = item->next) {
      const std::string key = item->string != nullptr ? item->string : "";
      const std::string key_path = child_path(path, key);
      if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
        error(key_path, "unknown key");
      } else if (!seen.insert(key).second) {
        // cJSON keeps both copies and lookups see only the first; a silent
        // winner would hide a mistake.
        error(key_path, "duplicate key");
      }
    }
  }

  std::optional<std::string> get_string(const cJSON* item, const std::string& path) {
    if (!cJSON_IsString(item) || item->valuestring == nullptr) {
      error(path, "expected a string");
      return std::nullopt;
    }
    Expanded e = expand_env(item->valuestring, env_);
    if (!e.error.empty()) {
      error(path, e.error);
      return std::nullopt;
    }
    return std::move(e.value);
  }

  // A rate in messages per second. The floor is what keeps the token bucket
  // defined: below 0.001/s the wait for one token passes 1000 s per token
  // and, near 1e-300, overflows every integer the retry time is kept in.
  static constexpr double kMinRate = 0.001;
  static constexpr double kMaxRate = 1e6;
  std::optional<double> get_rate(const cJSON* item, const std::string& path, bool zero_is_off) {
    const std::string range = std::string(zero_is_off ? "must be 0 (off) or between" : "must be between") +
                              " 0.001 and 1000000";
    if (!cJSON_IsNumber(item)) {
      error(path, range + ", got " + describe_value(item));
      return std::nullopt;
    }
    const double d = item->valuedouble;
    if (zero_is_off && d == 0) return 0.0;
    if (!std::isfinite(d) || d < kMinRate || d > kMaxRate) {
      error(path, range + ", got " + number_text(d));
      return std::nullopt;
    }
    return d;
  }

  // The shortest text that reads back as d ("1e-300", "2.5", "1000001").
  static std::string number_text(double d) {
    char buf[64];
    // Fixed notation in the range people write by hand ("0.0009", not "9e-04").
    const double a = std::fabs(d);
    const bool fixed = a == 0 || (a >= 1e-6 && a < 1e15);
    auto [end, ec] = fixed ? std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed)
                           : std::to_chars(buf, buf + sizeof buf, d);
    if (ec != std::errc()) return "a number";
    return std::string(buf, end);
  }

  static std::string describe_value(const cJSON* item) {
    if (cJSON_IsString(item)) return "a string";
    if (cJSON_IsBool(item)) return "a boolean";
    if (cJSON_IsNull(item)) return "null";
    if (cJSON_IsArray(item)) return "an array";
    if (cJSON_IsObject(item)) return "an object";
    return "a non-number";
  }

  std::optional<long long> get_integer(const cJSON* item, const std::string& path, long long min,
                                       long long max) {
    if (!cJSON_IsNumber(item)) {
      error(path, "expected an integer");
      return std::nullopt;
    }
    const double d = item->valuedouble;
    if (!std::isfinite(d) || d != std::trunc(d)) {
      error(path, "expected an integer");
      return std::nullopt;
    }
    // Compare as doubles before converting: 1e30 must not overflow the cast.
    if (d < static_cast<double>(min) || d > static_cast<double>(max)) {
      if (max == INT_MAX) {
        error(path, d < static_cast<double>(min) ? "must be at least " + std::to_string(min)
                                                 : "must be at most " + std::to_string(max));
      } else {
        error(path, "must be between " + std::to_string(min) + " and " + std::to_string(max));
      }
      return std::nullopt;
    }
    return static_cast<long long>(d);
  }

  // --- listen -------------------------------------------------------------

  std::optional<Listener> read_listener(const cJSON* obj, const std::string& path) {
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

  void read_listeners(const cJSON* item, Config& cfg) {
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
    std::size_t i = 0;
    for (const cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
      const std::string el_path = index_path(path, i);
      if (!cJSON_IsObject(el)) {
        error(el_path, "expected an object");
        continue;
      }
      auto l = read_listener(el, el_path);
      if (!l) continue;
      // Port 0 asks the OS for a fresh port each time, so it never collides.
      bool duplicate = false;
      for (std::size_t j = 0; l->port != 0 && j < cfg.listeners.size(); ++j) {
        if (cfg.listeners[j].host == l->host && cfg.listeners[j].port == l->port) {
          error(el_path, "duplicate of " + paths[j] + " (" + host_port(*l) + ")");
          duplicate = true;
          break;
        }
      }
      if (duplicate) continue;
      cfg.listeners.push_back(std::move(*l));
      paths.push_back(el_path);
    }
  }

  // --- plugins ------------------------------------------------------------

  static bool is_plugin_name(std::string_view name) {
    return !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.';
    });
  }

  // "name" or {"name": "...", "options": {...}}. Returns the name and the
  // options object (null if none), or nullopt after an error.
  std::optional<std::pair<std::string, cJSON*>> read_plugin_ref(cJSON* el, const std::string& el_path,
                                                                std::string_view what) {
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

  void read_listener_protocols(cJSON* item, const std::string& path, Listener& l) {
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

  void read_plugin_dirs(const cJSON* item, Config& cfg) {
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

  // The folder served over HTTP GET (docs/configuration.md, "static"),
  // relative to the config file; canonical, as serve_static's containment
  // check compares paths by prefix.
  void read_static(const cJSON* item, Config& cfg) {
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

  void read_extensions(cJSON* item, Config& cfg) {
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

  // --- heartbeat, log_level, jwt ------------------------------------------

  void read_limits(const cJSON* item, Config& cfg) {
    if (item == nullptr) return;
    const std::string path = "limits";
    if (!cJSON_IsObject(item)) {
      error(path, "expected an object");
      return;
    }
    check_keys(item, path, {"max_connections", "max_connections_per_ip", "messages_per_second", "message_burst",
                            "user_messages_per_second", "ip_messages_per_second", "rate_limit_close_after",
                            "max_subscriptions", "max_channel_length", "max_queue_bytes", "slow_consumer",
                            "handshake_timeout", "script_instructions", "script_memory_mb", "message_types"});
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
    integer("script_instructions", 10000, 1LL << 40, l.script_instructions);
    integer("script_memory_mb", 1, 65536, l.script_memory_mb);
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

  // "message_types": {"chat": {"per_second": 5, "burst": 10}, ...}
  void read_message_type_rates(const cJSON* item, const std::string& path, Limits& l) {
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

  void read_heartbeat(const cJSON* item, Config& cfg) {
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

  void read_log_level(const cJSON* item, Config& cfg) {
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

  void read_jwt(const cJSON* item, Config& cfg) {
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

  // --- endpoints ------------------------------------------------------------

  // Reports every problem of an endpoint path; true when it is usable.
  bool check_endpoint_path(const std::string& value, const std::string& path) {
    const std::size_t before = errors_.size();
    if (value.empty() || value.front() != '/') error(path, "must start with \"/\"");
    if (std::any_of(value.begin(), value.end(),
                    [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; })) {
      error(path, "must not contain whitespace");
    }
    if (value.find_first_of("?#") != std::string::npos) {
      error(path, "must not contain \"?\" or \"#\"");
    }
    std::set<std::string_view> names;
    for (std::string_view seg : split_segments(value)) {
      if (seg.find_first_of("{}") == std::string_view::npos) continue;
      const bool whole = seg.size() >= 2 && seg.front() == '{' && seg.back() == '}';
      const std::string_view name = whole ? seg.substr(1, seg.size() - 2) : std::string_view{};
      if (!whole || !is_placeholder_name(name)) {
        error(path, "invalid placeholder in segment " + quote(seg) +
                        " (expected a whole segment \"{name}\" with name matching "
                        "[A-Za-z_][A-Za-z0-9_]*)");
      } else if (!names.insert(name).second) {
        error(path, "placeholder \"{" + std::string(name) + "}\" appears more than once");
      }
    }
    return errors_.size() == before;
  }

  void check_script_file(const std::string& path, Endpoint& ep) {
    fs::path p(ep.script_name);
    if (p.is_relative()) p = fs::path(base_dir_) / p;
    std::error_code ec;
    fs::path abs = fs::absolute(p, ec);
    if (ec) abs = p;
    abs = abs.lexically_normal();
    const std::string shown = abs.string();

    const fs::file_status st = fs::status(abs, ec);
    if (st.type() == fs::file_type::not_found) {
      error(path, "file not found: " + shown);
    } else if (ec) {
      error(path, "cannot access: " + shown + ": " + ec.message());
    } else if (!fs::is_regular_file(st)) {
      error(path, "not a regular file: " + shown);
    } else if (::access(shown.c_str(), R_OK) != 0) {
      error(path, "cannot read: " + shown + ": " + errno_text(errno));
    } else {
      ep.script_path = shown;
    }
  }

  // Expands "${...}" in every string of a free-form subtree, in place.
  void expand_tree(cJSON* node, const std::string& path) {
    if (cJSON_IsString(node) && node->valuestring != nullptr) {
      Expanded e = expand_env(node->valuestring, env_);
      if (!e.error.empty()) {
        error(path, e.error);
      } else if (e.value != node->valuestring &&
                 cJSON_SetValuestring(node, e.value.c_str()) == nullptr) {
        error(path, "out of memory");
      }
      return;
    }
    if (cJSON_IsObject(node)) {
      for (cJSON* c = node->child; c != nullptr; c = c->next) {
        expand_tree(c, child_path(path, c->string != nullptr ? c->string : ""));
      }
    } else if (cJSON_IsArray(node)) {
      std::size_t i = 0;
      for (cJSON* c = node->child; c != nullptr; c = c->next, ++i) expand_tree(c, index_path(path, i));
    }
  }

  // Returns the endpoint and whether its path is valid (for the uniqueness check).
  std::pair<Endpoint, bool> read_endpoint(cJSON* obj, const std::string& path) {
    Endpoint ep;
    ep.script_name = std::string(kBuiltinScriptName);
    ep.options_json = "{}";
    bool path_ok = false;
    check_keys(obj, path, {"path", "script", "max_message_size", "options", "upstream", "allowed_origins"});
    if (const cJSON* v = member(obj, "allowed_origins")) {
      const std::string origins_path = child_path(path, "allowed_origins");
      if (!cJSON_IsArray(v)) {
        error(origins_path, "expected an array of origins like \"https://example.com\"");
      } else {
        std::size_t i = 0;
        for (const cJSON* o = v->child; o != nullptr; o = o->next, ++i) {
          if (auto origin = get_string(o, index_path(origins_path, i))) {
            if (origin->empty() || (origin->rfind("http://", 0) != 0 && origin->rfind("https://", 0) != 0 &&
                                    *origin != "*" && *origin != "self")) {
              error(index_path(origins_path, i), "expected an origin like \"https://example.com\", \"self\" or \"*\"");
              continue;
            }
            while (origin->size() > 1 && origin->back() == '/') origin->pop_back();
            ep.allowed_origins.push_back(std::move(*origin));
          }
        }
      }
    }

    const std::string route_path = child_path(path, "path");
    if (const cJSON* v = member(obj, "path")) {
      if (auto s = get_string(v, route_path)) {
        path_ok = check_endpoint_path(*s, route_path);
        ep.path = std::move(*s);
      }
    } else {
      error(route_path, "required key is missing");
    }

    if (const cJSON* v = member(obj, "script")) {
      const std::string script_path = child_path(path, "script");
      if (auto s = get_string(v, script_path)) {
        if (s->empty()) {
          error(script_path, "expected a non-empty string");
        } else {
          ep.script_name = std::move(*s);
          check_script_file(script_path, ep);
        }
      }
    }

    if (const cJSON* v = member(obj, "max_message_size")) {
      if (auto n = get_integer(v, child_path(path, "max_message_size"), 1,
                               static_cast<long long>(kMaxMessageSizeLimit))) {
        ep.max_message_size = static_cast<std::size_t>(*n);
      }
    }

    if (cJSON* v = member(obj, "options")) {
      const std::string options_path = child_path(path, "options");
      if (!cJSON_IsObject(v)) {
        error(options_path, "expected an object");
      } else {
        const std::size_t before = errors_.size();
        expand_tree(v, options_path);
        if (errors_.size() == before) {
          JsonText text(cJSON_PrintUnformatted(v));
          if (text) {
            ep.options_json = text.get();
          } else {
            error(options_path, "out of memory");
          }
        }
      }
    }
    if (const cJSON* v = member(obj, "upstream")) ep.upstream = read_upstream(v, child_path(path, "upstream"));
    return {std::move(ep), path_ok};
  }

  // --- upstream -----------------------------------------------------------

  // ws[s]://host[:port][/path][?query]
  bool parse_ws_url(const std::string& url, Upstream& up, const std::string& path) {
    std::string_view rest = url;
    if (rest.rfind("wss://", 0) == 0) {
      up.tls = true;
      rest.remove_prefix(6);
    } else if (rest.rfind("ws://", 0) == 0) {
      up.tls = false;
      rest.remove_prefix(5);
    } else {
      error(path, "expected a ws:// or wss:// URL");
      return false;
    }
    const std::size_t slash = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, slash);
    std::string target = slash == std::string_view::npos ? "/" : std::string(rest.substr(slash));
    if (!target.empty() && target[0] == '?') target = "/" + target;
    if (authority.empty() || authority.find('@') != std::string_view::npos) {
      error(path, "expected a host in the URL (and no user info)");
      return false;
    }
    int port = up.tls ? 443 : 80;
    std::string_view host = authority;
    if (!authority.empty() && authority.front() == '[') {
      const std::size_t close = authority.find(']');
      if (close == std::string_view::npos) {
        error(path, "unterminated [IPv6] host in the URL");
        return false;
      }
      host = authority.substr(1, close - 1);
      authority.remove_prefix(close + 1);
      if (!authority.empty() && authority.front() != ':') {
        error(path, "unexpected characters after the [IPv6] host");
        return false;
      }
    } else if (const std::size_t colon = authority.rfind(':'); colon != std::string_view::npos) {
      host = authority.substr(0, colon);
      authority.remove_prefix(colon);
    } else {
      authority = {};
    }
    if (!authority.empty()) {  // ":port"
      const std::string digits(authority.substr(1));
      char* end = nullptr;
      const long value = std::strtol(digits.c_str(), &end, 10);
      if (digits.empty() || *end != '\0' || value < 1 || value > 65535) {
        error(path, "invalid port in the URL");
        return false;
      }
      port = static_cast<int>(value);
    }
    if (host.empty()) {
      error(path, "expected a host in the URL");
      return false;
    }
    up.host = std::string(host);
    up.port = port;
    up.path = target;
    return true;
  }

  std::optional<Upstream> read_upstream(const cJSON* obj, const std::string& path) {
    if (!cJSON_IsObject(obj)) {
      error(path, "expected an object");
      return std::nullopt;
    }
    const std::size_t before = errors_.size();
    Upstream up;
    check_keys(obj, path, {"url", "headers", "connect", "tls_insecure", "queue_limit", "on_close", "retries",
                           "backoff_ms", "backoff_max_ms"});
    const std::string url_path = child_path(path, "url");
    if (const cJSON* v = member(obj, "url")) {
      if (auto s = get_string(v, url_path)) {
        up.url = *s;
        parse_ws_url(*s, up, url_path);
      }
    } else {
      error(url_path, "required key is missing");
    }
    if (const cJSON* v = member(obj, "headers")) {
      const std::string headers_path = child_path(path, "headers");
      if (!cJSON_IsObject(v)) {
        error(headers_path, "expected an object of header names to string values");
      } else {
        for (const cJSON* h = v->child; h != nullptr; h = h->next) {
          const std::string name = h->string != nullptr ? h->string : "";
          const std::string header_path = child_path(headers_path, name);
          const bool token = !name.empty() && std::all_of(name.begin(), name.end(), [](char c) {
            return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_';
          });
          if (!token) {
            error(header_path, "not a valid header name");
            continue;
          }
          if (auto value = get_string(h, header_path)) {
            if (value->find_first_of("\r\n") != std::string::npos) {
              error(header_path, "header values must not contain line breaks");
              continue;
            }
            up.headers.emplace_back(name, std::move(*value));
          }
        }
      }
    }
    if (const cJSON* v = member(obj, "connect")) {
      const std::string connect_path = child_path(path, "connect");
      if (auto s = get_string(v, connect_path)) {
        if (*s == "open") {
          up.connect_on_open = true;
        } else if (*s == "lazy") {
          up.connect_on_open = false;
        } else {
          error(connect_path, "expected \"open\" or \"lazy\" (got " + quote(*s) + ")");
        }
      }
    }
    if (const cJSON* v = member(obj, "tls_insecure")) {
      if (!cJSON_IsBool(v)) {
        error(child_path(path, "tls_insecure"), "expected a boolean");
      } else {
        up.tls_insecure = cJSON_IsTrue(v);
      }
    }
    if (const cJSON* v = member(obj, "on_close")) {
      const std::string on_close_path = child_path(path, "on_close");
      if (auto s = get_string(v, on_close_path)) {
        if (*s == "close_client" || *s == "reconnect" || *s == "keep") {
          up.on_close = *s;
        } else {
          error(on_close_path, "expected \"close_client\", \"reconnect\" or \"keep\" (got " + quote(*s) + ")");
        }
      }
    }
    if (const cJSON* v = member(obj, "queue_limit")) {
      if (auto n = get_integer(v, child_path(path, "queue_limit"), 1, 100000)) up.queue_limit = static_cast<std::size_t>(*n);
    }
    if (const cJSON* v = member(obj, "retries")) {
      if (auto n = get_integer(v, child_path(path, "retries"), 0, 1000)) up.retries = static_cast<int>(*n);
    }
    if (const cJSON* v = member(obj, "backoff_ms")) {
      if (auto n = get_integer(v, child_path(path, "backoff_ms"), 10, 600000)) up.backoff_ms = static_cast<int>(*n);
    }
    if (const cJSON* v = member(obj, "backoff_max_ms")) {
      if (auto n = get_integer(v, child_path(path, "backoff_max_ms"), 10, 3600000)) up.backoff_max_ms = static_cast<int>(*n);
    }
    if (errors_.size() != before) return std::nullopt;
    return up;
  }

  void read_endpoints(const cJSON* item, Config& cfg) {
    const std::string path = "endpoints";
    if (item == nullptr) {
      error(path, "required key is missing");
      return;
    }
    if (!cJSON_IsArray(item) || item->child == nullptr) {
      error(path, "expected a non-empty array");
      return;
    }
    std::map<std::string, std::pair<std::string, std::string>> routes;  // shape -> (key path, path)
    std::size_t i = 0;
    for (cJSON* el = item->child; el != nullptr; el = el->next, ++i) {
      const std::string el_path = index_path(path, i);
      if (!cJSON_IsObject(el)) {
        error(el_path, "expected an object");
        continue;
      }
      auto [ep, path_ok] = read_endpoint(el, el_path);
      if (path_ok) {
        const std::string route_key_path = child_path(el_path, "path");
        auto [it, inserted] = routes.try_emplace(route_shape(ep.path), route_key_path, ep.path);
        if (!inserted) {
          error(route_key_path, "duplicate of " + it->second.first + " " + quote(it->second.second));
        }
      }
      cfg.endpoints.push_back(std::move(ep));
    }
  }

  std::string source_;
  std::string base_dir_;
  const EnvLookup& env_;
  std::vector<std::string> errors_;
};

}  // namespace

LoadResult parse(std::string_view text, const std::string& source_name, const std::string& base_dir,
                 const EnvLookup& env) {
  Loader loader(source_name, base_dir, env);
  LoadResult result;

  // cJSON stops at a NUL byte, which would silently ignore the rest of the text.
  const std::size_t nul = text.find('\0');
  // A NUL-terminated copy with the NUL counted in the length: that is how
  // cJSON detects trailing garbage after the top-level value.
  const std::string buffer(text.substr(0, nul));
  const char* end = nullptr;
  JsonPtr root(cJSON_ParseWithLengthOpts(buffer.c_str(), buffer.size() + 1, &end, 1));
  if (!root || nul != std::string_view::npos) {
    // The per-call end pointer, unlike cJSON_GetErrorPtr(), is not shared
    // between threads.
    const std::size_t offset = !root && end != nullptr ? static_cast<std::size_t>(end - buffer.c_str()) : nul;
    const auto [line, column] = line_column(text, offset);
    loader.error("", "invalid JSON near line " + std::to_string(line) + ", column " + std::to_string(column));
    result.errors = std::move(loader.errors());
    return result;
  }

  // cJSON would cut a string at \u0000 ("secret\u0000rest" reads as
  // "secret"): a silently shortened secret is worse than an error.
  if (const std::size_t escaped = json::find_nul(text); escaped != std::string_view::npos) {
    const auto [line, column] = line_column(text, escaped);
    loader.error("", "\\u0000 in a string is not supported (line " + std::to_string(line) + ", column " +
                         std::to_string(column) + ")");
    result.errors = std::move(loader.errors());
    return result;
  }

  Config cfg = loader.run(root.get());
  result.errors = std::move(loader.errors());
  if (result.errors.empty()) result.config = std::move(cfg);
  return result;
}

LoadResult load_file(const std::string& path, const EnvLookup& env) {
  std::string text;
  if (const int err = read_whole_file(path, text); err != 0) {
    LoadResult result;
    result.errors.push_back(path + ": cannot read: " + errno_text(err));
    return result;
  }
  std::error_code ec;
  fs::path abs = fs::absolute(fs::path(path), ec);
  if (ec) abs = fs::path(path);
  return parse(text, path, abs.lexically_normal().parent_path().string(), env);
}

namespace {

// Data files (the demo page, the assistant's script) are looked for in the
// installed share folder, then in the source tree. A build-tree binary flips
// that order: an older installed copy must not shadow the tree being worked on.
bool loaded_from_build_tree() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&loaded_from_build_tree), &info) == 0 || info.dli_fname == nullptr) return false;
  std::error_code ec;
  const fs::path here = fs::canonical(info.dli_fname, ec).parent_path();
  const fs::path build = fs::canonical(WSRELAY_BUILD_DIR, ec);
  return !ec && here == build;
}

std::vector<std::string> data_candidates(std::initializer_list<const char*> installed_then_source) {
  std::vector<std::string> out;
  for (const char* path : installed_then_source) {
    if (path[0] != '\0') out.emplace_back(path);
  }
  if (loaded_from_build_tree()) std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

Config default_config(const EnvLookup& env) {
  Config cfg;
  cfg.listeners.push_back(Listener{});
  Endpoint ep;
  ep.path = "/ws";
  ep.script_name = std::string(kBuiltinScriptName);
  ep.options_json = "{}";
  cfg.endpoints.push_back(std::move(ep));
  if (env) cfg.jwt.secret = env(std::string(kJwtSecretEnv)).value_or("");
  cfg.admin_token = env ? env("WSRELAY_ADMIN_TOKEN").value_or("") : "";
  // The demo page, from the installed share folder or this source tree, so
  // that a plain `wsrelay` (and `make run`) serves it at /.
  for (const std::string& dir : data_candidates({WSRELAY_DEMO_DIRS})) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) {
      cfg.static_dir = fs::canonical(dir, ec).string();
      break;
    }
  }
  return cfg;
}

LoadResult load_default(const EnvLookup& env) {
  LoadResult result;
  Config cfg = default_config(env);
  const std::string key = env ? env(std::string(kAssistantKeyEnv)).value_or("") : "";
  if (key.empty()) {
    result.config = std::move(cfg);
    return result;
  }
  std::string script;
  std::string looked;
  for (const std::string& file : data_candidates({WSRELAY_ASSISTANT_SCRIPTS})) {
    std::error_code ec;
    looked += (looked.empty() ? "" : ", ") + file;
    if (fs::is_regular_file(file, ec)) {
      script = fs::canonical(file, ec).string();
      break;
    }
  }
  const std::string source = "<built-in assistant>";
  if (script.empty()) {
    result.errors.push_back(source + ": " + std::string(kAssistantKeyEnv) +
                            " is set but the assistant's script realtime.lua is missing (looked in: " +
                            (looked.empty() ? "nowhere" : looked) + ")");
    return result;
  }
  // The endpoint as a config file would say it (examples/realtime-relay), so
  // the URL and the key go through the same ${VAR} expansion and checks.
  JsonPtr root(cJSON_CreateObject());
  cJSON* endpoints = cJSON_AddArrayToObject(root.get(), "endpoints");
  cJSON* ep = cJSON_CreateObject();
  cJSON_AddItemToArray(endpoints, ep);
  cJSON_AddStringToObject(ep, "path", std::string(kAssistantPath).c_str());
  // Named as it is in the file's folder, which is the base of relative paths:
  // logs, errors and /status say "realtime.lua".
  cJSON_AddStringToObject(ep, "script", fs::path(script).filename().string().c_str());
  // Only the page the relay serves may spend the key (not any site the
  // browser visits): its Origin must name this host.
  cJSON* origins = cJSON_AddArrayToObject(ep, "allowed_origins");
  cJSON_AddItemToArray(origins, cJSON_CreateString("self"));
  cJSON* upstream = cJSON_AddObjectToObject(ep, "upstream");
  const std::string url = "${" + std::string(kAssistantUrlEnv) + ":-" + std::string(kAssistantDefaultUrl) + "}";
  cJSON_AddStringToObject(upstream, "url", url.c_str());
  cJSON* headers = cJSON_AddObjectToObject(upstream, "headers");
  const std::string authorization = "Bearer ${" + std::string(kAssistantKeyEnv) + "}";
  cJSON_AddStringToObject(headers, "Authorization", authorization.c_str());
  cJSON_AddStringToObject(upstream, "connect", "open");
  cJSON_AddStringToObject(upstream, "on_close", "close_client");
  // A text panel: ask for text replies only (no audio to pay for and drop).
  cJSON* options = cJSON_AddObjectToObject(ep, "options");
  cJSON* response = cJSON_AddObjectToObject(options, "response");
  cJSON* modalities = cJSON_AddArrayToObject(response, "output_modalities");
  cJSON_AddItemToArray(modalities, cJSON_CreateString("text"));
  JsonText text(cJSON_PrintUnformatted(root.get()));
  if (!text) {
    result.errors.push_back(source + ": out of memory");
    return result;
  }
  LoadResult assistant = parse(text.get(), source, fs::path(script).parent_path().string(), env);
  if (!assistant.config) return assistant;
  cfg.endpoints.push_back(std::move(assistant.config->endpoints.front()));
  result.config = std::move(cfg);
  return result;
}

}  // namespace wsrelay::config
