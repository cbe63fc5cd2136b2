#include "util/log.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <string>
#include <vector>

namespace wsrelay::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::Info)};
std::atomic<int> g_format{static_cast<int>(Format::Text)};

void append_json_escaped(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      out += "\\u00";
      out.push_back(hex[c >> 4]);
      out.push_back(hex[c & 0xf]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
}
// Written at start-up, before the loop runs; read on every line.
std::vector<std::string>& secrets() {
  static std::vector<std::string> values;
  return values;
}

void redact(std::string& line) {
  for (const std::string& secret : secrets()) {
    for (std::size_t at = line.find(secret); at != std::string::npos; at = line.find(secret, at)) {
      line.replace(at, secret.size(), "[redacted]");
      at += 10;
    }
  }
}
}  // namespace

void add_secret(std::string_view secret) {
  if (secret.size() < 6) return;
  // "Bearer sk-..." also hides the bare key.
  for (std::string_view prefix : {"Bearer ", "Basic ", "bearer "}) {
    if (secret.rfind(prefix, 0) == 0 && secret.size() - prefix.size() >= 6) {
      secrets().emplace_back(secret.substr(prefix.size()));
    }
  }
  secrets().emplace_back(secret);
}

std::optional<Level> parse_level(std::string_view name) {
  if (name == "debug") return Level::Debug;
  if (name == "info") return Level::Info;
  if (name == "warn" || name == "warning") return Level::Warn;
  if (name == "error") return Level::Error;
  return std::nullopt;
}

std::string_view level_name(Level level) {
  switch (level) {
    case Level::Debug: return "DEBUG";
    case Level::Info: return "INFO ";
    case Level::Warn: return "WARN ";
    case Level::Error: return "ERROR";
  }
  return "?    ";
}

void set_level(Level level) { g_level.store(static_cast<int>(level)); }
void set_format(Format format) { g_format.store(static_cast<int>(format)); }
Level level() { return static_cast<Level>(g_level.load()); }
bool enabled(Level l) { return static_cast<int>(l) >= g_level.load(); }

namespace {
void append_json_field(std::string& line, std::string_view name, std::string_view value) {
  if (value.empty()) return;
  line.append(",\"").append(name).append("\":\"");
  append_json_escaped(line, value);
  line.append("\"");
}

// A value that reads unambiguously in "[s=... user=... endpoint=...]" as it
// is; anything else is written as a JSON string.
bool plain_word(std::string_view value) {
  for (unsigned char c : value) {
    if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '[' || c == ']' || c == '=') return false;
  }
  return true;
}

void append_text_field(std::string& line, std::string_view name, std::string_view value, bool& first) {
  if (value.empty()) return;
  if (!first) line.push_back(' ');
  first = false;
  line.append(name).push_back('=');
  if (plain_word(value)) {
    line.append(value);
  } else {
    line.push_back('"');
    append_json_escaped(line, value);
    line.push_back('"');
  }
}
}  // namespace

void write(Level level, const Fields& fields, std::string_view message) {
  using namespace std::chrono;
  const auto now = system_clock::now();
  const std::time_t secs = system_clock::to_time_t(now);
  const auto millis = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char stamp[64];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(millis));
  std::string line;
  line.reserve(96 + fields.session.size() + fields.user.size() + fields.endpoint.size() + message.size());
  if (g_format.load() == static_cast<int>(Format::Json)) {
    std::string_view name = level_name(level);
    while (!name.empty() && name.back() == ' ') name.remove_suffix(1);
    line.append("{\"ts\":\"").append(stamp).append("\",\"level\":\"");
    for (char c : name) line.push_back(static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c));
    line.append("\"");
    append_json_field(line, "session", fields.session);
    append_json_field(line, "user", fields.user);
    append_json_field(line, "endpoint", fields.endpoint);
    line.append(",\"msg\":\"");
    append_json_escaped(line, message);
    line.append("\"}");
  } else {
    line.append(stamp).append(" ").append(level_name(level)).append(" ");
    if (!fields.session.empty() || !fields.user.empty() || !fields.endpoint.empty()) {
      bool first = true;
      line.push_back('[');
      append_text_field(line, "s", fields.session, first);
      append_text_field(line, "user", fields.user, first);
      append_text_field(line, "endpoint", fields.endpoint, first);
      line.append("] ");
    }
    for (char c : message) line.push_back(c == '\n' ? ' ' : c);  // one event, one line
  }
  if (!secrets().empty()) redact(line);
  line.push_back('\n');
  ssize_t ignored = ::write(STDERR_FILENO, line.data(), line.size());
  (void)ignored;
}

}  // namespace wsrelay::log
