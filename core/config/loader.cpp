// The Loader's common part: errors, the top-level walk, and the readers of
// one value (string, integer, rate) that every section uses.
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

namespace {

struct FdCloser {
  explicit FdCloser(int f) : fd(f) {}
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
  FdCloser(const FdCloser&) = delete;
  FdCloser& operator=(const FdCloser&) = delete;
  int fd;
};

}  // namespace

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

std::string child_path(const std::string& parent, std::string_view key) {
  if (parent.empty()) return std::string(key);
  return parent + "." + std::string(key);
}

std::string index_path(const std::string& parent, std::size_t i) {
  return parent + "[" + std::to_string(i) + "]";
}

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


void Loader::error(const std::string& path, std::string_view message) {
  std::string line = source_ + ": ";
  if (!path.empty()) line += path + ": ";
  line += message;
  errors_.push_back(std::move(line));
}

Config Loader::run(cJSON* root) {
  Config cfg;
  cfg.source = source_;
  cfg.base_dir = base_dir_;
  cfg.jwt.secret = env_secret();
  if (!cJSON_IsObject(root)) {
    error("", "expected a JSON object at the top level");
    return cfg;
  }
  check_keys(root, "", {"listen", "heartbeat", "log_level", "jwt", "endpoints", "watch_scripts", "limits",
                        "admin_token", "plugin_dirs", "extensions", "static", "channel_options"});
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
  read_channel_options(member(root, "channel_options"), cfg);
  return cfg;
}

cJSON* Loader::member(const cJSON* obj, const char* key) {
  return cJSON_GetObjectItemCaseSensitive(obj, key);
}

std::string Loader::env_secret() const {
  if (!env_) return {};
  return env_(std::string(kJwtSecretEnv)).value_or("");
}

void Loader::check_keys(const cJSON* obj, const std::string& path, std::initializer_list<std::string_view> allowed) {
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

std::optional<std::string> Loader::get_string(const cJSON* item, const std::string& path) {
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

std::optional<double> Loader::get_rate(const cJSON* item, const std::string& path, bool zero_is_off) {
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

std::string Loader::number_text(double d) {
  char buf[64];
  // Fixed notation in the range people write by hand ("0.0009", not "9e-04").
  const double a = std::fabs(d);
  const bool fixed = a == 0 || (a >= 1e-6 && a < 1e15);
  auto [end, ec] = fixed ? std::to_chars(buf, buf + sizeof buf, d, std::chars_format::fixed)
                         : std::to_chars(buf, buf + sizeof buf, d);
  if (ec != std::errc()) return "a number";
  return std::string(buf, end);
}

std::string Loader::describe_value(const cJSON* item) {
  if (cJSON_IsString(item)) return "a string";
  if (cJSON_IsBool(item)) return "a boolean";
  if (cJSON_IsNull(item)) return "null";
  if (cJSON_IsArray(item)) return "an array";
  if (cJSON_IsObject(item)) return "an object";
  return "a non-number";
}

std::optional<long long> Loader::get_integer(const cJSON* item, const std::string& path, long long min, long long max) {
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

}  // namespace wsrelay::config
