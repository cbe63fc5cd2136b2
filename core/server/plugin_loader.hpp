// plugin_loader: the shared-object plugins of one server, loaded with lws's
// own lws_plugins_init() (Debian's lws 4.1 has the plugin API but no
// info.plugin_dirs, so the relay loads them itself).
// Owns: the two lws plugin lists (protocol plugins, class
// "lws_protocol_plugin"; extension plugins, class "wsrelay_plugin"), released
// with lws_plugins_destroy(). It must outlive every vhost and Relay using
// what it loaded: their code lives in these objects.
// Uses: config (plugin_dirs, which protocols and extensions are wanted),
// extension::check (the ABI version rule).
//
// lws_plugins_init() reports nothing, stops scanning a folder at the first
// file it cannot load, and silently skips a plugin whose symbol name is
// shorter than 6 characters. So each file is first probed here (dlopen,
// symbol, magic, class, ABI) to name it in a clear error, then handed to lws
// alone, by passing its symbol name as lws's filter.
#pragma once

#include "config/config.hpp"
#include "extension/extension.hpp"

#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct lws_plugin;
struct lws_protocols;
struct wsrelay_plugin;

namespace wsrelay::server {

class PluginSet final : public extension::Catalog {
 public:
  // Whether the config uses plugins: extensions, or (with_protocols) a
  // listener serving plugin protocols. Without that nothing is loaded.
  static bool needed(const config::Config& config, bool with_protocols = true);

  // Loads every plugin of config.plugin_dirs (or default_dirs()). On failure
  // returns null and appends errors naming the file.
  static std::unique_ptr<PluginSet> load(const config::Config& config, std::vector<std::string>& errors);
  // The same for explicit folders; missing folders are errors only if required.
  static std::unique_ptr<PluginSet> load_dirs(const std::vector<std::string>& dirs, bool dirs_required,
                                              std::vector<std::string>& errors);

  // The installed plugin folder (next to libwsrelay_core.so), then this
  // build tree's; duplicates removed.
  static std::vector<std::string> default_dirs();

  // The symbol lws looks up in a plugin file: everything after the first '_'
  // or '-' of the file name, cut at the first '.'. Empty if there is none.
  static std::string lws_symbol_of(std::string_view file_name);

  ~PluginSet() override;
  PluginSet(const PluginSet&) = delete;
  PluginSet& operator=(const PluginSet&) = delete;

  // A protocol from a loaded protocol plugin, or null.
  const lws_protocols* protocol(std::string_view name) const;
  // A loaded extension plugin by its name, or null.
  const wsrelay_plugin* extension(std::string_view name) const override;

  std::vector<std::string> protocol_names() const;
  std::vector<std::string> extension_names() const override;
  const std::vector<std::string>& dirs() const { return dirs_; }
  // "plugin folders: a, b" for error messages.
  std::string describe_dirs() const override;

 private:
  PluginSet() = default;
  struct Loaded {
    std::string file;  // full path
    bool extension;    // class wsrelay_plugin, else lws_protocol_plugin
    const void* header;
  };
  void load_dir(const std::string& dir, std::vector<std::string>& errors);
  void load_file(const std::string& dir, const std::string& name, const std::string& symbol,
                 std::vector<std::string>& errors);

  lws_plugin* protocol_list_ = nullptr;
  lws_plugin* extension_list_ = nullptr;
  std::vector<Loaded> loaded_;
  std::vector<std::string> dirs_;
  std::vector<std::string> symbols_;  // loaded so far: a later folder's same-named file is shadowed
};

}  // namespace wsrelay::server
