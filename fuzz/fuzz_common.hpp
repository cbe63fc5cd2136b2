// fuzz_common: what the fuzz targets share — a do-nothing session::Transport,
// a fixed fake environment, quiet logging, and FUZZ_CHECK, which turns a
// broken invariant into a crash libFuzzer records (with the input).
#pragma once

#include "config/env_expand.hpp"
#include "session/session.hpp"
#include "util/log.hpp"

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#define FUZZ_CHECK(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) {                                                                        \
      std::fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);   \
      std::abort();                                                                       \
    }                                                                                     \
  } while (0)

namespace wsrelay::fuzz {

// The protocol's part is played by the target: it drains the queue itself.
struct NullTransport final : session::Transport {
  void request_write() override {}
};

inline void quiet_logs() { log::set_level(log::Level::Error); }

inline std::string_view as_text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A fixed environment: expansion is exercised without reading the real one.
inline config::EnvLookup fake_env() {
  static const std::map<std::string, std::string> vars = {
      {"HOME", "/home/fuzz"},        {"PORT", "8080"},      {"EMPTY", ""},
      {"WSRELAY_JWT_SECRET", "fuzz-secret"}, {"TOKEN", "abc${PORT}"}, {"DOLLAR", "$"},
      {"BRACE", "}"}};
  return [](const std::string& name) -> std::optional<std::string> {
    const auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// Splits on '\n' (no empty trailing piece).
inline std::vector<std::string_view> lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const std::size_t nl = text.find('\n');
    out.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return out;
}

}  // namespace wsrelay::fuzz
