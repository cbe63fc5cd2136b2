#include "server/plugin_loader.hpp"

#include "extension/extension.hpp"
#include "util/log.hpp"

#include <libwebsockets.h>
#include <wsrelay/plugin.h>

#include <dlfcn.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <map>

namespace wsrelay::server {
namespace {

namespace fs = std::filesystem;

constexpr const char* kProtocolClass = "lws_protocol_plugin";
// lws_plat_dlopen() (lws 4.1) returns without loading, and without a word,
// when the symbol name is shorter than this.
constexpr std::size_t kLwsMinSymbol = 6;

struct ProbeHandle {
  void* handle;
  ~ProbeHandle() {
    if (handle != nullptr) dlclose(handle);
  }
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
  return out.empty() ? "none" : out;
}

// Where this library lives; the installed plugin folder is next to it.
void anchor() {}

}  // namespace

std::string PluginSet::lws_symbol_of(std::string_view file_name) {
  const std::size_t sep = file_name.find_first_of("_-");
  if (sep == std::string_view::npos) return {};
  std::string_view rest = file_name.substr(sep + 1);
  return std::string(rest.substr(0, rest.find('.')));
}

std::vector<std::string> PluginSet::default_dirs() {
  std::vector<std::string> dirs;
  Dl_info info{};
  if (dladdr(reinterpret_cast<void*>(&anchor), &info) != 0 && info.dli_fname != nullptr) {
    std::error_code ec;
    const fs::path lib = fs::canonical(info.dli_fname, ec);
    if (!ec) dirs.push_back((lib.parent_path() / WSRELAY_PLUGIN_SUBDIR).string());
  }
  const std::string build_dir = WSRELAY_PLUGIN_BUILD_DIR;
  if (std::find(dirs.begin(), dirs.end(), build_dir) == dirs.end()) dirs.push_back(build_dir);
  return dirs;
}

bool PluginSet::needed(const config::Config& config, bool with_protocols) {
  if (!config.extensions.empty()) return true;
  if (!with_protocols) return false;
  return std::any_of(config.listeners.begin(), config.listeners.end(),
                     [](const config::Listener& l) { return !l.protocols.empty(); });
}

std::unique_ptr<PluginSet> PluginSet::load(const config::Config& config, std::vector<std::string>& errors) {
  if (config.plugin_dirs_set) return load_dirs(config.plugin_dirs, true, errors);
  return load_dirs(default_dirs(), false, errors);
}

std::unique_ptr<PluginSet> PluginSet::load_dirs(const std::vector<std::string>& dirs, bool dirs_required,
                                                std::vector<std::string>& errors) {
  std::unique_ptr<PluginSet> set(new PluginSet());
  const std::size_t before = errors.size();
  for (const auto& dir : dirs) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) {
      if (dirs_required) errors.push_back("plugin folder not found: " + dir);
      continue;
    }
    set->dirs_.push_back(dir);
    set->load_dir(dir, errors);
  }
  if (errors.size() != before) return nullptr;
  for (const auto& l : set->loaded_) log::debug("plugin loaded: " + l.file);
  return set;
}

void PluginSet::load_dir(const std::string& dir, std::vector<std::string>& errors) {
  std::error_code ec;
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir, ec)) names.push_back(entry.path().filename().string());
  if (ec) {
    errors.push_back("cannot read the plugin folder " + dir + ": " + ec.message());
    return;
  }
  std::sort(names.begin(), names.end());  // lws scans in alphasort order too
  // Every file lws would consider for a symbol: with a symbol as its filter,
  // lws_plugins_init loads each of them.
  std::map<std::string, std::vector<std::string>> by_symbol;
  for (const auto& name : names) {
    if (name.size() < 7 || name.find('~') != std::string::npos) continue;  // lws skips these
    const std::string symbol = lws_symbol_of(name);
    if (symbol.empty() || !fs::is_regular_file(fs::path(dir) / name, ec)) continue;
    by_symbol[symbol].push_back(name);
  }
  for (const auto& name : names) {
    if (!ends_with(name, ".so")) continue;
    const std::string symbol = lws_symbol_of(name);
    if (symbol.empty() || !fs::is_regular_file(fs::path(dir) / name, ec)) continue;
    const std::string file = (fs::path(dir) / name).string();
    if (by_symbol[symbol].size() > 1) {
      errors.push_back(file + ": lws would load every one of " + join(by_symbol[symbol]) +
                       " for the symbol '" + symbol + "' (it matches the name between the first '_' or '-' "
                       "and the first '.'): keep one");
      continue;
    }
    if (std::find(symbols_.begin(), symbols_.end(), symbol) != symbols_.end()) {
      log::debug("plugin " + file + " is shadowed by one of the same name in an earlier folder");
      continue;
    }
    if (symbol.size() < kLwsMinSymbol) {
      errors.push_back(file + ": libwebsockets 4.1 does not load a plugin whose symbol ('" + symbol +
                       "', from the file name) is shorter than 6 characters: rename the file");
      continue;
    }
    load_file(dir, name, symbol, errors);
  }
}

void PluginSet::load_file(const std::string& dir, const std::string& name, const std::string& symbol,
                          std::vector<std::string>& errors) {
  const std::string file = (fs::path(dir) / name).string();
  // The probe: what lws would silently refuse, said with the file's name.
  ProbeHandle probe{dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL)};
  if (probe.handle == nullptr) {
    const char* why = dlerror();
    errors.push_back(file + ": cannot load: " + (why != nullptr ? why : "unknown error"));
    return;
  }
  dlerror();
  const auto* hdr = static_cast<const lws_plugin_header_t*>(dlsym(probe.handle, symbol.c_str()));
  if (hdr == nullptr) {
    errors.push_back(file + ": no exported symbol '" + symbol +
                     "' (lws looks up the name after the first '_' or '-' of the file name, up to the first '.')");
    return;
  }
  if (hdr->api_magic != LWS_PLUGIN_API_MAGIC) {
    errors.push_back(file + ": lws plugin API magic " + std::to_string(hdr->api_magic) + ", this libwebsockets expects " +
                     std::to_string(LWS_PLUGIN_API_MAGIC) + " (rebuild the plugin against this libwebsockets)");
    return;
  }
  const std::string cls = hdr->_class != nullptr ? hdr->_class : "";
  const bool is_extension = cls == WSRELAY_PLUGIN_CLASS;
  if (!is_extension && cls != kProtocolClass) {
    errors.push_back(file + ": plugin class '" + cls + "' is neither '" + kProtocolClass + "' nor '" +
                     WSRELAY_PLUGIN_CLASS + "'");
    return;
  }
  if (is_extension) {
    const auto* plugin = reinterpret_cast<const wsrelay_plugin*>(hdr);
    if (std::string why = extension::check(*plugin); !why.empty()) {
      errors.push_back(file + ": refused: " + why);
      return;
    }
    const std::string ext_name = extension::name_of(*plugin);
    for (const auto& b : extension::builtins()) {
      if (extension::name_of(*b.plugin) == ext_name) {
        log::debug("plugin " + file + ": extension '" + ext_name + "' is built in; the file is not loaded");
        return;
      }
    }
    if (extension(ext_name) != nullptr) {
      errors.push_back(file + ": another plugin already provides the extension '" + ext_name + "'");
      return;
    }
  } else {
    const auto* pp = reinterpret_cast<const lws_plugin_protocol_t*>(hdr);
    if (pp->protocols == nullptr || pp->count_protocols <= 0) {
      errors.push_back(file + ": a protocol plugin without protocols");
      return;
    }
    for (int i = 0; i < pp->count_protocols; ++i) {
      const char* pname = pp->protocols[i].name;
      if (pname == nullptr || pp->protocols[i].callback == nullptr) {
        errors.push_back(file + ": protocol " + std::to_string(i) + " has no name or callback");
        return;
      }
      if (std::strcmp(pname, "wsrelay") == 0) {
        log::debug("plugin " + file + ": the relay protocol is built in; the file is not loaded");
        return;
      }
      if (protocol(pname) != nullptr) {
        errors.push_back(file + ": another plugin already provides the protocol '" + pname + "'");
        return;
      }
    }
  }
  lws_plugin** list = is_extension ? &extension_list_ : &protocol_list_;
  const lws_plugin* before = *list;
  const char* dirs[] = {dir.c_str(), nullptr};
  lws_plugins_init(list, dirs, cls.c_str(), symbol.c_str(), nullptr, nullptr);
  if (*list == before || (*list)->hdr != hdr) {
    errors.push_back(file + ": lws_plugins_init did not load it (see the lws log lines above)");
    return;
  }
  loaded_.push_back({file, is_extension, hdr});
  symbols_.push_back(symbol);
}

PluginSet::~PluginSet() {
  lws_plugins_destroy(&protocol_list_, nullptr, nullptr);
  lws_plugins_destroy(&extension_list_, nullptr, nullptr);
}

const lws_protocols* PluginSet::protocol(std::string_view name) const {
  for (const lws_plugin* p = protocol_list_; p != nullptr; p = p->list) {
    const auto* pp = reinterpret_cast<const lws_plugin_protocol_t*>(p->hdr);
    for (int i = 0; i < pp->count_protocols; ++i) {
      if (name == pp->protocols[i].name) return &pp->protocols[i];
    }
  }
  return nullptr;
}

const wsrelay_plugin* PluginSet::extension(std::string_view name) const {
  for (const lws_plugin* p = extension_list_; p != nullptr; p = p->list) {
    const auto* plugin = reinterpret_cast<const wsrelay_plugin*>(p->hdr);
    if (extension::name_of(*plugin) == name) return plugin;
  }
  return nullptr;
}

std::vector<std::string> PluginSet::protocol_names() const {
  std::vector<std::string> names;
  for (const lws_plugin* p = protocol_list_; p != nullptr; p = p->list) {
    const auto* pp = reinterpret_cast<const lws_plugin_protocol_t*>(p->hdr);
    for (int i = 0; i < pp->count_protocols; ++i) names.emplace_back(pp->protocols[i].name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::vector<std::string> PluginSet::extension_names() const {
  std::vector<std::string> names;
  for (const lws_plugin* p = extension_list_; p != nullptr; p = p->list) {
    names.push_back(extension::name_of(*reinterpret_cast<const wsrelay_plugin*>(p->hdr)));
  }
  std::sort(names.begin(), names.end());
  return names;
}

std::string PluginSet::describe_dirs() const { return "plugin folders: " + join(dirs_); }

}  // namespace wsrelay::server
