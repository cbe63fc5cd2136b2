#include "json/json.hpp"

#include "json/strict.hpp"

#include <algorithm>
#include <cstring>
#include <vector>

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

// Pre-order walk: the order in which the validator counted numbers.
struct BigAttacher {
  const std::vector<BigInteger>& big;
  std::size_t next = 0;     // index into big
  std::size_t ordinal = 0;  // numbers seen so far

  bool walk(cJSON* node) {
    for (; node != nullptr && next < big.size(); node = node->next) {
      if (cJSON_IsNumber(node)) {
        if (ordinal++ == big[next].ordinal) {
          const std::string_view lit = big[next++].literal;
          char* copy = static_cast<char*>(cJSON_malloc(lit.size() + 1));
          if (copy == nullptr) return false;
          std::memcpy(copy, lit.data(), lit.size());
          copy[lit.size()] = '\0';
          node->valuestring = copy;
        }
      } else if (node->child != nullptr && !walk(node->child)) {
        return false;
      }
    }
    return true;
  }
};

bool has_exact_integers(const cJSON* node) {
  for (; node != nullptr; node = node->next) {
    if (exact_integer(node) != nullptr || has_exact_integers(node->child)) return true;
  }
  return false;
}

// In a copy, exact integers become raw nodes: cJSON prints those verbatim.
void integers_to_raw(cJSON* node) {
  for (; node != nullptr; node = node->next) {
    if (exact_integer(node) != nullptr) {
      node->type = cJSON_Raw;
    } else {
      integers_to_raw(node->child);
    }
  }
}

}  // namespace

const char* exact_integer(const cJSON* node) {
  return node != nullptr && cJSON_IsNumber(node) ? node->valuestring : nullptr;
}

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
  std::vector<BigInteger> big;
  StrictError strict;
  const bool valid = validate_strict(text, &strict, &big);
  if (!valid && strict.strict_rule) {
    if (error_offset != nullptr) *error_offset = strict.offset;
    if (reason != nullptr) *reason = strict.reason + " at byte " + std::to_string(strict.offset);
    return nullptr;
  }
  // A plain syntax error is still described by cJSON below, as it always was.
  const char* end = nullptr;
  // Frames are not NUL-terminated, so the length-taking parser is used; cJSON's
  // own "require NUL" check would then always fail, so trailing garbage after
  // a valid value is refused here instead.
  cJSON* root = cJSON_ParseWithLengthOpts(text.data(), text.size(), &end, 0);
  if (root != nullptr) {
    const char* stop = text.data() + text.size();
    while (end < stop && (*end == ' ' || *end == '\t' || *end == '\n' || *end == '\r')) ++end;
    JsonPtr tree(root);
    root = nullptr;
    if (end == stop && valid) {
      if (!big.empty() && !BigAttacher{big}.walk(tree.get())) return nullptr;  // out of memory
      return tree;
    }
    // cJSON took something the grammar does not allow (e.g. "1."): the
    // validator's description it is.
    if (end == stop) {
      if (error_offset != nullptr) *error_offset = strict.offset;
      if (reason != nullptr) *reason = "invalid JSON at byte " + std::to_string(strict.offset) + " (" + strict.reason + ")";
      return nullptr;
    }
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
  if (node != nullptr && has_exact_integers(node->child) ) {
    // Rare (integers beyond 2^53): print a copy whose big integers are raw.
    JsonPtr copy(cJSON_Duplicate(node, 1));
    if (!copy) return std::string();
    integers_to_raw(copy->child);
    PrintedJson printed(cJSON_PrintUnformatted(copy.get()));
    return printed ? std::string(printed.get()) : std::string();
  }
  if (const char* literal = exact_integer(node)) return literal;
  PrintedJson printed(cJSON_PrintUnformatted(node));
  return printed ? std::string(printed.get()) : std::string();
}

}  // namespace wsrelay::json
