// extensions: the extension plugins of one endpoint script, alive — each enabled
// plugin's create()d state bound to that script, and the hooks the engine
// runs: filters around every client message, Lua modules, auth providers.
// Owns: one wsrelay_host per enabled plugin (destroy()ed in reverse order).
// Uses: the ScriptEngine it belongs to (context: hub, registry, settings),
// the API table (host.hpp) the plugins call back through.
#pragma once

#include "extension/extension.hpp"
#include "session/session.hpp"

#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct wsrelay_host;
struct wsrelay_module;

namespace wsrelay::script {

class ScriptEngine;

struct AuthOutcome {
  bool accepted = false;
  std::string user;
  std::string claims_json;  // "" if the provider gave none
  std::string reason;       // why it was rejected
};

class Extensions {
 public:
  struct Module {
    std::string name;  // "jwt" for require "relay.jwt"
    const wsrelay_module* module;
    wsrelay_host* host;
  };

  // Creates every enabled plugin's instance for `engine`, in order. On
  // failure returns null with a reason naming the plugin.
  static std::unique_ptr<Extensions> create(const std::vector<extension::Enabled>& enabled, ScriptEngine& engine,
                                           std::string& error);
  ~Extensions();
  Extensions(const Extensions&) = delete;
  Extensions& operator=(const Extensions&) = delete;

  const std::vector<Module>& modules() const { return modules_; }
  const Module* find_module(std::string_view name) const;

  // Runs every before_message filter; false when one dropped the message.
  bool before_message(session::Session& s, std::string_view data, bool binary);
  void after_message(session::Session& s, std::string_view data, bool binary);
  bool has_filters() const { return has_filters_; }

  // provider empty: the first one registered. nullopt: no such provider.
  std::optional<AuthOutcome> authenticate(std::string_view provider, std::string_view token);

 private:
  Extensions() = default;
  struct Provider {
    std::string name;
    wsrelay_host* host;
    const void* entry;  // const wsrelay_auth_provider*
  };
  std::vector<std::unique_ptr<wsrelay_host>> hosts_;
  std::vector<Module> modules_;
  std::vector<Provider> providers_;
  bool has_filters_ = false;
};

}  // namespace wsrelay::script
