// Shared by the test_plugins_*.cpp suites: where the built plugins are, a
// temporary folder for configs and scripts, and a config with plugins.
#pragma once

#include <catch2/catch.hpp>

#include <string>

#ifndef WSRELAY_PLUGIN_BUILD_DIR
#error "tests/plugins/CMakeLists.txt defines WSRELAY_PLUGIN_BUILD_DIR and WSRELAY_TEST_PLUGIN_DIR"
#endif

namespace wsrelay::test::plugins {

inline const std::string kPluginDir = WSRELAY_PLUGIN_BUILD_DIR;       // shipped plugins
inline std::string test_plugin_dir(const std::string& name) {         // tests/plugins/dirs/<name>
  return std::string(WSRELAY_TEST_PLUGIN_DIR) + "/" + name;
}

// JSON string literal for a path (no escaping needed for our build paths, but be safe).
inline std::string quoted(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out + "\"";
}

}  // namespace wsrelay::test::plugins
