// fuzz_config: config::parse (and env expansion) on arbitrary text.
//
// Invariants checked beyond "no crash, no sanitizer report":
//  * a config is returned exactly when there are no errors, and every error
//    starts with the source name;
//  * a config that passed validation is usable as the server would use it:
//    listeners and endpoints are present, every endpoint path starts with "/"
//    and its PathPattern matches a concrete path built from it (placeholders
//    captured by name), options re-parse as a JSON object, upstream URLs have
//    a host, a port and a path, header values carry no line breaks;
//  * expand_env leaves text without "$" unchanged;
//  * an accepted config holds no "\u0000" escape (cJSON would truncate the
//    string there): json::parse, which refuses those, accepts it too.
// A config whose endpoints all use the built-in script is also turned into a
// Relay (scripts loaded, options handed to Lua), as `wsrelay` would.
#include "fuzz_common.hpp"

#include "config/config.hpp"
#include "json/json.hpp"
#include "http/path_pattern.hpp"
#include "server/relay.hpp"

#include <cjson/cJSON.h>

#include <set>

using namespace wsrelay;

namespace {

// "/a/{x}/b" -> "/a/v0/b", with the names in order.
std::string concrete_path(const std::string& pattern, std::vector<std::string>& names) {
  std::string out;
  std::size_t start = 1;
  while (start <= pattern.size()) {
    const std::size_t slash = pattern.find('/', start);
    const std::size_t end = slash == std::string::npos ? pattern.size() : slash;
    const std::string seg = pattern.substr(start, end - start);
    out += '/';
    if (seg.size() > 2 && seg.front() == '{' && seg.back() == '}') {
      out += "v" + std::to_string(names.size());
      names.push_back(seg.substr(1, seg.size() - 2));
    } else {
      out += seg;
    }
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return out;
}

void check_config(const config::Config& cfg) {
  FUZZ_CHECK(!cfg.listeners.empty());
  FUZZ_CHECK(!cfg.endpoints.empty());
  for (const auto& l : cfg.listeners) {
    FUZZ_CHECK(!l.host.empty());
    FUZZ_CHECK(l.port >= 0 && l.port <= 65535);
  }
  std::set<std::string> paths;
  for (const auto& ep : cfg.endpoints) {
    FUZZ_CHECK(!ep.path.empty() && ep.path.front() == '/');
    FUZZ_CHECK(ep.max_message_size >= 1 && ep.max_message_size <= config::kMaxMessageSizeLimit);
    json::JsonPtr options = json::parse(ep.options_json);
    FUZZ_CHECK(options != nullptr && cJSON_IsObject(options.get()));

    const http::PathPattern pattern(ep.path);
    std::vector<std::string> names;
    const std::string concrete = concrete_path(ep.path, names);
    http::PathPattern::Params params;
    FUZZ_CHECK(pattern.match(concrete, params));
    if (pattern.has_placeholders()) {
      FUZZ_CHECK(params.size() == names.size());
      for (std::size_t i = 0; i < names.size(); ++i) {
        FUZZ_CHECK(params[i].first == names[i]);
        FUZZ_CHECK(params[i].second == "v" + std::to_string(i));
      }
    } else {
      FUZZ_CHECK(concrete == ep.path);
    }

    if (ep.upstream) {
      const config::Upstream& up = *ep.upstream;
      FUZZ_CHECK(!up.host.empty());
      FUZZ_CHECK(up.port >= 1 && up.port <= 65535);
      FUZZ_CHECK(!up.path.empty() && up.path.front() == '/');
      FUZZ_CHECK(up.queue_limit >= 1);
      for (const auto& [name, value] : up.headers) {
        FUZZ_CHECK(!name.empty());
        FUZZ_CHECK(value.find_first_of("\r\n") == std::string::npos);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  fuzz::quiet_logs();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text = fuzz::as_text(data, size);
  static const config::EnvLookup env = fuzz::fake_env();

  const config::Expanded expanded = config::expand_env(text, env);
  if (text.find('$') == std::string_view::npos) {
    FUZZ_CHECK(expanded.error.empty() && expanded.value == text);
  }

  // Relative script paths resolve against scripts/, so "standard.lua" exists.
  const config::LoadResult result = config::parse(text, "fuzz.json", WSRELAY_SOURCE_DIR "/scripts", env);
  FUZZ_CHECK(result.config.has_value() == result.errors.empty());
  for (const std::string& e : result.errors) FUZZ_CHECK(e.rfind("fuzz.json: ", 0) == 0);
  if (!result.config) return 0;
  check_config(*result.config);
  // An accepted config is JSON that json::parse accepts too (once cJSON's
  // wider idea of trailing whitespace, any byte <= 0x20, is trimmed): in
  // particular no string in it holds "\u0000", which cJSON would cut short
  // ("secret": "abc\u0000def" would become "abc").
  // A leading byte order mark is the one thing configs allow beyond it.
  std::string_view trimmed = text;
  if (trimmed.substr(0, 3) == "\xEF\xBB\xBF") trimmed.remove_prefix(3);
  while (!trimmed.empty() && static_cast<unsigned char>(trimmed.back()) <= 0x20) trimmed.remove_suffix(1);
  FUZZ_CHECK(json::parse(trimmed) != nullptr);

  // Only the built-in script (a file named in the input could be any file),
  // and only a few endpoints, so one input stays cheap.
  bool builtin_only = result.config->endpoints.size() <= 4;
  for (const auto& ep : result.config->endpoints) builtin_only = builtin_only && ep.script_path.empty();
  if (builtin_only) {
    std::vector<std::string> errors;
    std::unique_ptr<server::Relay> relay = server::Relay::create(*result.config, errors);
    FUZZ_CHECK(relay != nullptr && errors.empty());
    http::PathPattern::Params params;
    for (const auto& ep : result.config->endpoints) {
      if (http::PathPattern(ep.path).has_placeholders()) continue;
      FUZZ_CHECK(relay->match(ep.path, params) != nullptr);
    }
  }
  return 0;
}
