// The config loader's inside, shared by its files: the Loader that walks
// one parsed document (config.cpp runs it; loader.cpp has its value
// readers, read_server.cpp the server-wide sections, read_endpoints.cpp the
// endpoints and their upstreams) and the text helpers its errors use.
// Not part of config.hpp's interface.
#pragma once

#include "config/config.hpp"

#include <cjson/cJSON.h>

#include <cstddef>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::config {

// strerror as a std::string, thread-safe.
std::string errno_text(int err);

std::string quote(std::string_view s);

std::string child_path(const std::string& parent, std::string_view key);

std::string index_path(const std::string& parent, std::size_t i);

// 1-based line and column of a byte offset. Columns count UTF-8 code points so
// they match what an editor shows for non-ASCII text.
std::pair<std::size_t, std::size_t> line_column(std::string_view text, std::size_t offset);

bool is_name_start(char c);

bool is_placeholder_name(std::string_view name);

std::vector<std::string_view> split_segments(std::string_view path);

// "/a/{x}" and "/a/{y}" match the same requests, so duplicates are detected on
// the path with placeholder names erased.
std::string route_shape(std::string_view path);

std::string host_port(const Listener& l);

// Reads a whole file; returns 0 or an errno value. POSIX I/O rather than
// iostreams so the message names the real cause (EISDIR, EACCES, ...).
int read_whole_file(const std::string& path, std::string& out);

// Walks one parsed document, filling a Config and collecting every error.
class Loader {
 public:
  Loader(const std::string& source, const std::string& base_dir, const EnvLookup& env)
      : source_(source), base_dir_(base_dir), env_(env) {}

  void error(const std::string& path, std::string_view message);

  std::vector<std::string>& errors() { return errors_; }

  Config run(cJSON* root);

 private:
  // Case-sensitive on purpose: cJSON_GetObjectItem would accept "Port" while
  // check_keys reports it as unknown.
  static cJSON* member(const cJSON* obj, const char* key);

  std::string env_secret() const;

  // fn(element, its path) for each object of an array; an element that is
  // not an object is an error ("expected an object") and skipped.
  template <typename F>
  void for_each_object(const cJSON* array, const std::string& path, F&& fn) {
    std::size_t i = 0;
    for (const cJSON* el = array->child; el != nullptr; el = el->next, ++i) {
      const std::string el_path = index_path(path, i);
      if (!cJSON_IsObject(el)) {
        error(el_path, "expected an object");
        continue;
      }
      fn(el, el_path);
    }
  }

  void check_keys(const cJSON* obj, const std::string& path,
                  std::initializer_list<std::string_view> allowed);

  std::optional<std::string> get_string(const cJSON* item, const std::string& path);

  // A rate in messages per second. The floor is what keeps the token bucket
  // defined: below 0.001/s the wait for one token passes 1000 s per token
  // and, near 1e-300, overflows every integer the retry time is kept in.
  static constexpr double kMinRate = 0.001;

  static constexpr double kMaxRate = 1e6;

  std::optional<double> get_rate(const cJSON* item, const std::string& path, bool zero_is_off);

  // The shortest text that reads back as d ("1e-300", "2.5", "1000001").
  static std::string number_text(double d);

  static std::string describe_value(const cJSON* item);

  std::optional<long long> get_integer(const cJSON* item, const std::string& path, long long min,
                                       long long max);

  std::optional<Listener> read_listener(const cJSON* obj, const std::string& path);

  void read_listeners(const cJSON* item, Config& cfg);

  static bool is_plugin_name(std::string_view name);

  // "name" or {"name": "...", "options": {...}}. Returns the name and the
  // options object (null if none), or nullopt after an error.
  std::optional<std::pair<std::string, cJSON*>> read_plugin_ref(cJSON* el, const std::string& el_path,
                                                                std::string_view what);

  void read_listener_protocols(cJSON* item, const std::string& path, Listener& l);

  void read_plugin_dirs(const cJSON* item, Config& cfg);

  // The folder served over HTTP GET (docs/configuration.md, "static"),
  // relative to the config file; canonical, as serve_static's containment
  // check compares paths by prefix.
  void read_static(const cJSON* item, Config& cfg);

  void read_extensions(cJSON* item, Config& cfg);

  void read_limits(const cJSON* item, Config& cfg);

  // "channel_options": [{"match": "room*", "history_size": 100, ...}, ...]
  void read_channel_options(const cJSON* item, Config& cfg);
  std::optional<pubsub::ChannelRule> read_channel_rule(const cJSON* obj, const std::string& path);

  // "message_types": {"chat": {"per_second": 5, "burst": 10}, ...}
  void read_message_type_rates(const cJSON* item, const std::string& path, Limits& l);

  void read_heartbeat(const cJSON* item, Config& cfg);

  void read_log_level(const cJSON* item, Config& cfg);

  void read_jwt(const cJSON* item, Config& cfg);

  // Reports every problem of an endpoint path; true when it is usable.
  bool check_endpoint_path(const std::string& value, const std::string& path);

  void check_script_file(const std::string& path, Endpoint& ep);

  // Expands "${...}" in every string of a free-form subtree, in place.
  void expand_tree(cJSON* node, const std::string& path);

  // Returns the endpoint and whether its path is valid (for the uniqueness check).
  std::pair<Endpoint, bool> read_endpoint(cJSON* obj, const std::string& path);

  // ws[s]://host[:port][/path][?query]
  bool parse_ws_url(const std::string& url, Upstream& up, const std::string& path);

  std::optional<Upstream> read_upstream(const cJSON* obj, const std::string& path);

  void read_endpoints(const cJSON* item, Config& cfg);

  std::string source_;

  std::string base_dir_;

  const EnvLookup& env_;

  std::vector<std::string> errors_;
};

}  // namespace wsrelay::config
