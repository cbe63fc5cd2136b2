// env_expand: "${VAR}" / "${VAR:-default}" substitution inside config strings.
//
// Owns: the expansion syntax (including the "$${" escape) and the EnvLookup
// abstraction, so the config loader and its tests never touch getenv directly.
// Uses: nothing but the standard library; process_env() wraps getenv.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace wsrelay::config {

// Returns the value of an environment variable, or nullopt when it is unset.
// A function rather than getenv so tests can feed a fixed map.
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;

// The real process environment (getenv-based).
EnvLookup process_env();

struct Expanded {
  std::string value;
  std::string error;  // empty on success; otherwise a message without any key prefix
};

// Expands every reference in `in`:
//   ${VAR}          value of VAR; error if VAR is unset (set-but-empty gives "")
//   ${VAR:-default} value of VAR, or the literal default if VAR is unset or empty
//   $${             a literal "${"
//   $ not followed by "{" stays a literal "$".
// VAR must match [A-Za-z_][A-Za-z0-9_]*. The default is literal text up to the
// first "}" and may not itself contain "${". An unterminated "${" is an error.
// An empty `env` function behaves as an empty environment.
Expanded expand_env(std::string_view in, const EnvLookup& env);

}  // namespace wsrelay::config
