// wsrelay_plugin_check FILE CLASS: what every built plugin must satisfy, the
// way libwebsockets will judge it — and then lws itself loading it.
//   - dlopen(RTLD_NOW) succeeds (no undefined symbol)
//   - it exports the symbol lws derives from the file name (everything after
//     the first '_' or '-', cut at the first '.'), at least 6 characters long
//   - the header's api_magic is LWS_PLUGIN_API_MAGIC and its class is CLASS
//   - lws_protocol_plugin: named protocols with callbacks
//     wsrelay_plugin: WSRELAY_PLUGIN_ABI_VERSION, a name, sane hook tables
//   - lws_plugins_init(), filtered on that symbol, loads it
// Prints what it checked; exits 1 on the first failure.
#include <libwebsockets.h>
#include <wsrelay/plugin.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <string>

namespace {

int fail(const std::string& file, const std::string& why) {
  std::fprintf(stderr, "FAIL %s: %s\n", file.c_str(), why.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: wsrelay_plugin_check FILE CLASS\n");
    return 2;
  }
  const std::string file = argv[1];
  const std::string expected_class = argv[2];
  const std::filesystem::path path(file);
  const std::string name = path.filename().string();
  const std::size_t sep = name.find_first_of("_-");
  if (sep == std::string::npos) return fail(file, "no '_' or '-' in the file name: lws finds no symbol");
  std::string symbol = name.substr(sep + 1);
  symbol = symbol.substr(0, symbol.find('.'));
  if (symbol.size() < 6) return fail(file, "symbol '" + symbol + "' is shorter than 6 characters: lws 4.1 skips it");

  void* handle = dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) return fail(file, std::string("dlopen: ") + dlerror());
  const auto* hdr = static_cast<const lws_plugin_header_t*>(dlsym(handle, symbol.c_str()));
  if (hdr == nullptr) return fail(file, "no exported symbol '" + symbol + "'");
  if (hdr->api_magic != LWS_PLUGIN_API_MAGIC) {
    return fail(file, "api_magic " + std::to_string(hdr->api_magic) + " != " + std::to_string(LWS_PLUGIN_API_MAGIC));
  }
  if (hdr->_class == nullptr || expected_class != hdr->_class) {
    return fail(file, std::string("class '") + (hdr->_class ? hdr->_class : "(null)") + "', expected '" +
                          expected_class + "'");
  }
  if (hdr->name == nullptr || *hdr->name == '\0') return fail(file, "the header has no name");

  if (expected_class == "lws_protocol_plugin") {
    const auto* pp = reinterpret_cast<const lws_plugin_protocol_t*>(hdr);
    if (pp->protocols == nullptr || pp->count_protocols <= 0) return fail(file, "no protocols");
    for (int i = 0; i < pp->count_protocols; ++i) {
      if (pp->protocols[i].name == nullptr || pp->protocols[i].callback == nullptr) {
        return fail(file, "protocol " + std::to_string(i) + " lacks a name or a callback");
      }
      std::printf("  protocol %s\n", pp->protocols[i].name);
    }
  } else if (expected_class == WSRELAY_PLUGIN_CLASS) {
    const auto* p = reinterpret_cast<const wsrelay_plugin*>(hdr);
    if (p->abi_version != WSRELAY_PLUGIN_ABI_VERSION) {
      return fail(file, "abi_version " + std::to_string(p->abi_version) + " != " +
                            std::to_string(WSRELAY_PLUGIN_ABI_VERSION));
    }
    if ((p->count_modules > 0) != (p->modules != nullptr)) return fail(file, "modules and count_modules disagree");
    for (int i = 0; i < p->count_modules; ++i) {
      if (p->modules[i].name == nullptr || p->modules[i].functions == nullptr) return fail(file, "a module lacks a name");
      std::printf("  module relay.%s\n", p->modules[i].name);
    }
    if ((p->count_auth_providers > 0) != (p->auth_providers != nullptr)) {
      return fail(file, "auth_providers and count_auth_providers disagree");
    }
  } else {
    return fail(file, "unknown expected class " + expected_class);
  }

  // And lws, given the folder and the symbol as its filter, loads it.
  lws_set_log_level(LLL_ERR, nullptr);
  lws_plugin* list = nullptr;
  const std::string dir = path.parent_path().string();
  const char* dirs[] = {dir.c_str(), nullptr};
  lws_plugins_init(&list, dirs, expected_class.c_str(), symbol.c_str(), nullptr, nullptr);
  const bool loaded = list != nullptr && list->hdr == hdr;
  if (loaded) {
    std::printf("ok %s: symbol '%s', class '%s', magic %u, name '%s'\n", file.c_str(), symbol.c_str(),
                expected_class.c_str(), LWS_PLUGIN_API_MAGIC, hdr->name);
  }
  lws_plugins_destroy(&list, nullptr, nullptr);
  dlclose(handle);
  if (!loaded) return fail(file, "lws_plugins_init did not load it");
  return 0;
}
