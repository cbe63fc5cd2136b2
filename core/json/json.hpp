// json: RAII ownership of cJSON trees and cJSON-printed strings.
// Owns: nothing global; every cJSON* that leaves this unit is wrapped.
// Uses: cJSON (Debian's libcjson).
#pragma once

#include <cjson/cJSON.h>

#include <memory>
#include <string>
#include <string_view>

namespace wsrelay::json {

struct CJsonDeleter {
  void operator()(cJSON* node) const noexcept { cJSON_Delete(node); }
};
using JsonPtr = std::unique_ptr<cJSON, CJsonDeleter>;

struct CJsonFreeDeleter {
  void operator()(char* text) const noexcept { cJSON_free(text); }
};
using PrintedJson = std::unique_ptr<char, CJsonFreeDeleter>;

// Parses text (not necessarily NUL-terminated). On failure returns null and,
// if error_offset is given, the byte offset where parsing stopped. Strings
// containing \u0000 are refused: cJSON cannot hold them without truncation.
// reason, if given, gets a sentence for the client ("invalid JSON at byte 12").
// Every text first passes json/strict.hpp (no repeated keys, no number a
// double or int64 cannot hold, no leading zeros), so no caller can see a
// different value than another one. Integers beyond 2^53 keep their literal
// (exact_integer) so they are pushed to Lua and printed back unchanged.
JsonPtr parse(std::string_view text, std::size_t* error_offset = nullptr, std::string* reason = nullptr);

// Offset of the first raw NUL or \u0000 escape in text, or npos: cJSON cannot
// hold either inside a string without cutting it short.
std::size_t find_nul(std::string_view text);

// For a number node parsed from an integer literal a double cannot hold
// exactly (|n| > 2^53): that literal; otherwise null. cJSON keeps only the
// double, so parse stores the literal in the node's (otherwise unused)
// valuestring, which cJSON_Delete frees.
const char* exact_integer(const cJSON* node);

// Compact printing (exact integers as written); empty string only if cJSON runs out of memory.
std::string print(const cJSON* node);

}  // namespace wsrelay::json
