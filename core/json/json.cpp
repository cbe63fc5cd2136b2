#include "json/json.hpp"

namespace wsrelay::json {

JsonPtr parse(std::string_view text, std::size_t* error_offset) {
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
  if (error_offset != nullptr) {
    *error_offset = end != nullptr && end >= text.data()
                        ? static_cast<std::size_t>(end - text.data())
                        : 0;
  }
  return JsonPtr(root);
}

std::string print(const cJSON* node) {
  PrintedJson printed(cJSON_PrintUnformatted(node));
  return printed ? std::string(printed.get()) : std::string();
}

}  // namespace wsrelay::json
