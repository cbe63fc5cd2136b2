#include "json/json.hpp"

#include <algorithm>

namespace wsrelay::json {

namespace {

// cJSON decodes \u0000 into a NUL inside a C string, which silently cuts the
// string short ("admin\u0000x" would read as "admin"). Refuse such input
// instead. Returns the offset of the escape, or npos.
std::size_t find_escaped_nul_impl(std::string_view text) {
  std::size_t i = text.find('\\');
  while (i != std::string_view::npos && i + 1 < text.size()) {
    if (text[i + 1] == 'u' && i + 5 < text.size() && text.compare(i + 2, 4, "0000") == 0) return i;
    i = text.find('\\', i + 2);  // skip the escaped character, whatever it is
  }
  return std::string_view::npos;
}

}  // namespace

std::size_t find_nul(std::string_view text) {
  // A raw NUL is never valid JSON, but cJSON copies it into a string and the
  // string ends there ("alice<NUL>admin" would read as "alice").
  const std::size_t raw = text.find('\0');
  const std::size_t escaped = find_escaped_nul_impl(text);
  return std::min(raw, escaped);
}

JsonPtr parse(std::string_view text, std::size_t* error_offset, std::string* reason) {
  if (const std::size_t nul = find_nul(text); nul != std::string_view::npos) {
    if (error_offset != nullptr) *error_offset = nul;
    if (reason != nullptr) *reason = "NUL (or \\u0000) in a message is not supported (byte " + std::to_string(nul) + ")";
    return nullptr;
  }
  const char* end = nullptr;
  // Frames are not NUL-terminated, so the length-taking parser is used; cJSON's
  // own "require NUL" check would then always fail, so trailing garbage after
  // a valid value is refused here instead.
  cJSON* root = cJSON_ParseWithLengthOpts(text.data(), text.size(), &end, 0);
  if (root != nullptr) {
    const char* stop = text.data() + text.size();
    while (end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) ++end;
    if (end == stop) return JsonPtr(root);
    cJSON_Delete(root);
    root = nullptr;
  }
  const std::size_t at =
      end != nullptr && end >= text.data() ? static_cast<std::size_t>(end - text.data()) : 0;
  if (error_offset != nullptr) *error_offset = at;
  if (reason != nullptr) {
    *reason = "invalid JSON at byte " + std::to_string(at) + " (or nested deeper than 1000 levels)";
  }
  return JsonPtr(root);
}

std::string print(const cJSON* node) {
  PrintedJson printed(cJSON_PrintUnformatted(node));
  return printed ? std::string(printed.get()) : std::string();
}

}  // namespace wsrelay::json
