// log: the relay's one logger. Lines go to stderr as
//   2026-11-21T23:40:01.123Z INFO  [s=3f2a9c01d4e5b6a7 user=ann endpoint=/ws] open /ws from 127.0.0.1
// or, with Format::Json, as one object per line with the same fields.
// Owns: the global level threshold. Uses: nothing else of the relay.
// Single-threaded by design (the lws loop), but each line is written with one
// write() so lines from tests running servers in threads never interleave.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace wsrelay::log {

enum class Level { Debug = 0, Info = 1, Warn = 2, Error = 3 };

std::optional<Level> parse_level(std::string_view name);
std::string_view level_name(Level level);

enum class Format { Text, Json };
// Json: one object per line {"ts","level","session","user","endpoint","msg"}
// for log shippers (absent fields are left out).
void set_format(Format format);

void set_level(Level level);
Level level();
bool enabled(Level level);

// Registers a value (an API key, a header with a key in it) that must never
// appear in a log line: write() replaces it with [redacted]. Values shorter
// than 6 bytes are ignored (they would redact ordinary words).
void add_secret(std::string_view secret);

// Who a line is about: every line of a session's event carries its id, its
// user once authenticated, and its endpoint (the configured path). Empty
// fields are left out. session::log_fields(s) fills one from a Session.
struct Fields {
  std::string_view session;
  std::string_view user;
  std::string_view endpoint;
};

// Text: "[s=<id> user=<user> endpoint=<path>] " before the message (a user
// with spaces, quotes, brackets or control characters is JSON-quoted).
void write(Level level, const Fields& fields, std::string_view message);
// session may be empty; it is shown as [s=<id>] when given.
inline void write(Level level, std::string_view session, std::string_view message) {
  write(level, Fields{session, {}, {}}, message);
}

inline void debug(std::string_view m, std::string_view s = {}) { if (enabled(Level::Debug)) write(Level::Debug, s, m); }
inline void info(std::string_view m, std::string_view s = {}) { if (enabled(Level::Info)) write(Level::Info, s, m); }
inline void warn(std::string_view m, std::string_view s = {}) { if (enabled(Level::Warn)) write(Level::Warn, s, m); }
inline void error(std::string_view m, std::string_view s = {}) { if (enabled(Level::Error)) write(Level::Error, s, m); }
inline void debug(std::string_view m, const Fields& f) { if (enabled(Level::Debug)) write(Level::Debug, f, m); }
inline void info(std::string_view m, const Fields& f) { if (enabled(Level::Info)) write(Level::Info, f, m); }
inline void warn(std::string_view m, const Fields& f) { if (enabled(Level::Warn)) write(Level::Warn, f, m); }
inline void error(std::string_view m, const Fields& f) { if (enabled(Level::Error)) write(Level::Error, f, m); }

}  // namespace wsrelay::log
