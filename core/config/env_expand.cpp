#include "config/env_expand.hpp"

#include <cstdlib>

namespace wsrelay::config {

namespace {

bool is_name_start(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

bool is_name_char(char c) { return is_name_start(c) || (c >= '0' && c <= '9'); }

bool is_valid_name(std::string_view name) {
  if (name.empty() || !is_name_start(name.front())) return false;
  for (char c : name) {
    if (!is_name_char(c)) return false;
  }
  return true;
}

Expanded fail(std::string message) { return Expanded{{}, std::move(message)}; }

}  // namespace

EnvLookup process_env() {
  return [](const std::string& name) -> std::optional<std::string> {
    // getenv is only racy against concurrent setenv; the relay never calls
    // setenv, and config is loaded once at startup.
    const char* value = std::getenv(name.c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

Expanded expand_env(std::string_view in, const EnvLookup& env) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const char c = in[i];
    if (c != '$') {
      out += c;
      ++i;
      continue;
    }
    // "$${" is the only escape: it lets a config carry a literal "${" (for
    // example inside a script option) without triggering expansion.
    if (in.substr(i, 3) == "$${") {
      out += "${";
      i += 3;
      continue;
    }
    if (i + 1 >= in.size() || in[i + 1] != '{') {
      out += '$';
      ++i;
      continue;
    }
    const std::size_t body_start = i + 2;
    const std::size_t close = in.find('}', body_start);
    if (close == std::string_view::npos) {
      return fail("unterminated \"${\" (missing \"}\")");
    }
    const std::string_view body = in.substr(body_start, close - body_start);
    const std::string reference = "\"${" + std::string(body) + "}\"";
    const std::size_t sep = body.find(":-");
    const std::string_view name = body.substr(0, sep);
    if (!is_valid_name(name)) {
      return fail("invalid variable reference " + reference +
                  " (expected ${NAME} or ${NAME:-default}, NAME matching [A-Za-z_][A-Za-z0-9_]*)");
    }
    std::optional<std::string> value;
    if (env) value = env(std::string(name));

    if (sep == std::string_view::npos) {
      if (!value) return fail("environment variable " + std::string(name) + " is not set");
      out += *value;
    } else {
      const std::string_view fallback = body.substr(sep + 2);
      // The default ends at the first "}", so a nested reference would be cut
      // in half; refuse it instead of producing a surprising value.
      if (fallback.find("${") != std::string_view::npos) {
        return fail("nested \"${\" in the default of " + reference + " is not supported");
      }
      if (value && !value->empty()) {
        out += *value;
      } else {
        out += fallback;
      }
    }
    i = close + 1;
  }
  return Expanded{std::move(out), {}};
}

}  // namespace wsrelay::config
