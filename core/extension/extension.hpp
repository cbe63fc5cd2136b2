// extension: the relay's side of extension plugins (include/wsrelay/plugin.h)
// that scripts and the server need to know about, without lws or Lua.
// Owns: the list of extensions built into the core (jwt), the ABI check.
// Uses: nothing at run time; Instances (instances.hpp) brings plugins to life.
#pragma once

#include <string>
#include <string_view>
#include <vector>

struct wsrelay_plugin;

namespace wsrelay::extension {

// One extension enabled for an endpoint script: the plugin and its options.
struct Enabled {
  const wsrelay_plugin* plugin = nullptr;
  std::string options_json = "{}";
};

// The extensions linked into the core, always enabled, in this order.
const std::vector<Enabled>& builtins();

// Where extension plugins named in a config are found (server::PluginSet:
// the shared objects of the plugin folders).
class Catalog {
 public:
  virtual ~Catalog() = default;
  virtual const wsrelay_plugin* extension(std::string_view name) const = 0;
  virtual std::vector<std::string> extension_names() const = 0;
  // For errors: where it looked ("plugin folders: a, b").
  virtual std::string describe_dirs() const = 0;
};

// The error of a config that names a plugin no plugin folder has:
// "<place>: no <kind> \"<name>\" (<dirs>; <found_label>: a, b)" ("none"
// when nothing was found). For extension and protocol plugins alike.
std::string plugin_not_found(std::string_view place, std::string_view kind, std::string_view name,
                             std::string_view dirs, const std::vector<std::string>& found,
                             std::string_view found_label);

// The plugin's name (its header's name, as configs name it).
std::string name_of(const wsrelay_plugin& plugin);

// Empty if the relay can use this plugin, else why not: "built against
// wsrelay plugin ABI 2, this wsrelay speaks ABI 1", wrong class or magic.
std::string check(const wsrelay_plugin& plugin);

}  // namespace wsrelay::extension
