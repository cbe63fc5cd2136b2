#include "config/config.hpp"
#include "config/loader.hpp"
#include "util/log.hpp"

#include "json/json.hpp"
#include "json/strict.hpp"

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

  // The one JSON rule (json/strict.hpp) holds for configs too: a number no
  // double holds, a leading zero or an integer beyond int64 is an error, not
  // whatever cJSON makes of it. A repeated key is left to the loader, which
  // names it by its path ("listen.port: duplicate key"). A UTF-8 byte order
  // mark, which editors write and cJSON skips, is allowed here only.
  std::string_view body = text;
  if (body.substr(0, 3) == "\xEF\xBB\xBF") body.remove_prefix(3);
  json::StrictError strict;
  if (!json::validate_strict(body, &strict) && strict.reason.rfind("duplicate key", 0) != 0) {
    const auto [line, column] = line_column(text, strict.offset + (text.size() - body.size()));
    loader.error("", "invalid JSON near line " + std::to_string(line) + ", column " + std::to_string(column) + ": " +
                         strict.reason);
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
  cJSON* ep = cJSON_CreateObject();
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
  LoadResult assistant = parse_endpoint(ep, source, fs::path(script).parent_path().string(), env);
  if (!assistant.config) return assistant;
  cfg.endpoints.push_back(std::move(assistant.config->endpoints.front()));
  result.config = std::move(cfg);
  return result;
}

LoadResult parse_endpoint(cJSON* endpoint, const std::string& source_name, const std::string& base_dir,
                          const EnvLookup& env) {
  JsonPtr root(cJSON_CreateObject());
  cJSON* endpoints = root ? cJSON_AddArrayToObject(root.get(), "endpoints") : nullptr;
  if (endpoints == nullptr || endpoint == nullptr) {
    cJSON_Delete(endpoint);
    LoadResult out_of_memory;
    out_of_memory.errors.push_back(source_name + ": out of memory");
    return out_of_memory;
  }
  cJSON_AddItemToArray(endpoints, endpoint);
  JsonText text(cJSON_PrintUnformatted(root.get()));
  if (!text) {
    LoadResult out_of_memory;
    out_of_memory.errors.push_back(source_name + ": out of memory");
    return out_of_memory;
  }
  return parse(text.get(), source_name, base_dir, env);
}

void register_secrets(const Config& config) {
  log::add_secret(config.jwt.secret);
  log::add_secret(config.admin_token);
  for (const auto& ep : config.endpoints) {
    if (!ep.upstream) continue;
    for (const auto& header : ep.upstream->headers) log::add_secret(header.second);
  }
}

}  // namespace wsrelay::config
