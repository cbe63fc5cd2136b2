#include "extension/extension.hpp"

#include <wsrelay/plugin.h>

#include <cstring>

// Extension plugins linked into the core (built with LWS_PLUGIN_STATIC from
// the same sources as their shared objects).
extern "C" const wsrelay_plugin wsrelay_static_ext_jwt;

namespace wsrelay::extension {

const std::vector<Enabled>& builtins() {
  static const std::vector<Enabled> list = {{&wsrelay_static_ext_jwt, "{}"}};
  return list;
}

std::string name_of(const wsrelay_plugin& plugin) {
  return plugin.hdr.name != nullptr ? plugin.hdr.name : "";
}

std::string check(const wsrelay_plugin& plugin) {
  if (plugin.hdr.api_magic != LWS_PLUGIN_API_MAGIC) {
    return "lws plugin API magic " + std::to_string(plugin.hdr.api_magic) + ", expected " +
           std::to_string(LWS_PLUGIN_API_MAGIC);
  }
  if (plugin.hdr._class == nullptr || std::strcmp(plugin.hdr._class, WSRELAY_PLUGIN_CLASS) != 0) {
    return std::string("class '") + (plugin.hdr._class ? plugin.hdr._class : "") + "', expected '" +
           WSRELAY_PLUGIN_CLASS + "'";
  }
  if (plugin.abi_version != WSRELAY_PLUGIN_ABI_VERSION) {
    return "built against wsrelay plugin ABI " + std::to_string(plugin.abi_version) + ", this wsrelay speaks ABI " +
           std::to_string(WSRELAY_PLUGIN_ABI_VERSION) + " (rebuild the plugin against this wsrelay's plugin.h)";
  }
  if (plugin.hdr.name == nullptr || *plugin.hdr.name == '\0') return "the plugin header has no name";
  return {};
}

std::string plugin_not_found(std::string_view place, std::string_view kind, std::string_view name,
                             std::string_view dirs, const std::vector<std::string>& found,
                             std::string_view found_label) {
  std::string names;
  for (const auto& n : found) names += (names.empty() ? "" : ", ") + n;
  return std::string(place) + ": no " + std::string(kind) + " \"" + std::string(name) + "\" (" + std::string(dirs) +
         "; " + std::string(found_label) + ": " + (names.empty() ? "none" : names) + ")";
}

}  // namespace wsrelay::extension
