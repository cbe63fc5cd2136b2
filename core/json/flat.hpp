// flat: the fast path for the common message — a flat JSON object whose
// values are plain strings, short integers, true, false or null, e.g.
// {"type":"heartbeat","id":1000000001}. Scanned in place, without building
// a cJSON tree (whose nodes, key copies and strtod cost more than the rest of
// the decoding; bench/findings.md, "Instructions per message").
// Owns: nothing; the spans point into the scanned text.
// Uses: nothing (no cJSON, no Lua; lua_json pushes a scanned object).
//
// Anything outside that subset — escapes, control characters, fractions,
// exponents, more than 15 digits, leading zeros, -0, nesting, a repeated key,
// more than kMaxMembers members, whitespace other than JSON's four — is "not
// flat", never "invalid": the caller then parses with cJSON as before. Within
// the subset the result is exactly what cJSON + push_json give (same Lua
// values, same member order), and a value's text is how cJSON would print it
// (for the id echoed in error replies). tests/unit/test_json_flat.cpp checks
// this against cJSON.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace wsrelay::json {

struct FlatMember {
  enum class Kind : unsigned char { String, Integer, True, False, Null };
  // Trivial members (no initializers): a FlatObject costs nothing to declare.
  const char* key;
  std::size_t key_size;
  const char* text;   // the value as written (a string with its quotes)
  std::size_t text_size;
  Kind kind;
  std::int64_t integer;  // Kind::Integer

  std::string_view key_view() const { return {key, key_size}; }
  std::string_view json() const { return {text, text_size}; }
  // A string's contents (no escapes by construction), without the quotes.
  std::string_view string() const { return {text + 1, text_size - 2}; }
};

struct FlatObject {
  static constexpr std::size_t kMaxMembers = 16;
  FlatMember members[kMaxMembers];
  std::size_t count;

  const FlatMember* find(std::string_view key) const {
    for (std::size_t i = 0; i < count; ++i) {
      if (members[i].key_view() == key) return &members[i];
    }
    return nullptr;
  }
};

// True when text is a flat object (then `out` describes it); false: not on
// the fast path (it may still be valid JSON).
bool scan_flat_object(std::string_view text, FlatObject& out);

}  // namespace wsrelay::json
