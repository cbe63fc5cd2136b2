// extension_host: what the relay keeps per plugin instance (the wsrelay_host a plugin
// holds) and the API table plugins call. Private to the extension unit and
// the script bridge that implements the Lua half of the table. Free of lws:
// the script unit includes it.
#pragma once

#include <wsrelay/plugin_api.h>

#include "auth/jwt.hpp"

#include <string>
#include <utility>
#include <vector>

struct wsrelay_plugin;  // <wsrelay/plugin.h>: the lws-facing half

namespace wsrelay::script {
class ScriptEngine;
}  // namespace wsrelay::script

struct wsrelay_host {
  const wsrelay_plugin* plugin = nullptr;
  std::string name;                                        // the plugin's name, prefixed to its log lines
  wsrelay::script::ScriptEngine* engine = nullptr;         // the endpoint script this instance serves
  void* state = nullptr;                                   // what create() stored
  std::vector<std::pair<std::string, std::string>> settings;  // fixed for the instance's life
  std::string scratch;                                     // the last attribute value handed out
  wsrelay::auth::JwtResult token;                          // the last verify_token answer handed out
};

namespace wsrelay::script {

// The one API table, for the life of the process.
const wsrelay_api& extension_api();

// The Lua half of the table, implemented by script/bridge_extension.cpp.
// Each is noexcept: no C++ exception or Lua error may cross a plugin's frames.
namespace extension_lua {
int arg_count(wsrelay_call* call) noexcept;
int arg_type(wsrelay_call* call, int index) noexcept;
const char* arg_string(wsrelay_call* call, int index, size_t* len) noexcept;
double arg_number(wsrelay_call* call, int index) noexcept;
int arg_boolean(wsrelay_call* call, int index) noexcept;
const char* arg_json(wsrelay_call* call, int index, size_t* len) noexcept;
wsrelay_session* arg_session(wsrelay_call* call, int index) noexcept;
void push_nil(wsrelay_call* call) noexcept;
void push_boolean(wsrelay_call* call, int value) noexcept;
void push_number(wsrelay_call* call, double value) noexcept;
void push_string(wsrelay_call* call, const char* data, size_t len) noexcept;
int push_json(wsrelay_call* call, const char* json, size_t len) noexcept;
void error(wsrelay_call* call, const char* message) noexcept;
wsrelay_host* call_host(wsrelay_call* call) noexcept;
const char* session_attr(wsrelay_host* host, wsrelay_session* session, const char* key, size_t* len) noexcept;
int session_set_attr(wsrelay_host* host, wsrelay_session* session, const char* key, const char* value,
                     size_t len) noexcept;
}  // namespace extension_lua

}  // namespace wsrelay::script
