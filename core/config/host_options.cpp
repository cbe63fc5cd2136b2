#include "config/host_options.hpp"

#include <cjson/cJSON.h>

#include <cstdlib>
#include <filesystem>

namespace wsrelay::config {

namespace {

LoadResult failed(std::string error) {
  LoadResult result;
  result.errors.push_back(std::move(error));
  return result;
}

// "script" + "path" [+ "max_message_size"]: a one-endpoint config, validated
// like a config file ("pvo: endpoints[0].script: file not found: ...").
LoadResult one_endpoint(const char* script, const char* path, const char* max_size, const EnvLookup& env) {
  cJSON* ep = cJSON_CreateObject();
  cJSON_AddStringToObject(ep, "path", path);
  cJSON_AddStringToObject(ep, "script", script);
  if (max_size != nullptr) {
    char* end = nullptr;
    const double n = std::strtod(max_size, &end);
    if (end == max_size || *end != '\0') {
      cJSON_Delete(ep);
      return failed(std::string("pvo: max_message_size: expected an integer, got \"") + max_size + "\"");
    }
    cJSON_AddNumberToObject(ep, "max_message_size", n);
  }
  std::error_code ec;
  return parse_endpoint(ep, "pvo", std::filesystem::current_path(ec).string(), env);
}

}  // namespace

HostLoad from_host_options(const OptionLookup& option, const EnvLookup& env) {
  const char* config_path = option("config");
  const char* script = option("script");
  const char* path = option("path");
  HostLoad out;
  if (config_path != nullptr) {
    if (script != nullptr || path != nullptr) {
      out.loaded = failed("pvo: set either \"config\" or \"script\" + \"path\", not both");
      return out;
    }
    out.loaded = load_file(config_path, env);
  } else if (script != nullptr && path != nullptr) {
    out.loaded = one_endpoint(script, path, option("max_message_size"), env);
  } else {
    out.loaded = failed("pvo: the protocol \"wsrelay\" needs the pvo \"config\" (a wsrelay config file) or "
                        "\"script\" and \"path\"");
  }
  if (!out.loaded.config) return out;
  const Config& cfg = *out.loaded.config;
  if (cfg.watch_scripts) out.warnings.push_back("pvo config: watch_scripts is ignored in a plugin (no file watch)");
  for (const auto& l : cfg.listeners) {
    if (!l.protocols.empty()) {
      out.warnings.push_back("pvo config: listen.protocols is ignored in a plugin (the host lists protocols)");
    }
  }
  return out;
}

}  // namespace wsrelay::config
