// strict: the one rule every JSON text from a client must pass (RFC 8259),
// checked before cJSON sees it, so routing (which reads the first "type"),
// limits and Lua (which would hold the last) can never disagree.
// Owns: nothing; pure over the text (no cJSON, no Lua).
// Uses: nothing.
//
// On top of the RFC grammar it refuses what cJSON would accept but represent
// differently from what was sent:
//   - an object with a repeated key (compared after unescaping, so "type" and
//     "\u0074ype" are the same key);
//   - a number no double holds (1e400): cJSON makes it inf, which cannot be
//     printed back and fails later inside a handler;
//   - an integer literal outside int64: it would silently become inexact;
//   - nesting deeper than kMaxStrictDepth (cJSON's own limit).
// Leading zeros (01, -01) are already outside the grammar.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace wsrelay::json {

struct StrictError {
  std::size_t offset = 0;  // byte where the problem starts
  std::string reason;      // e.g. duplicate key "type" (without the offset)
  // True for the rules beyond the grammar (repeated key, number range,
  // leading zero); false for a plain syntax error, which callers may prefer
  // to describe as they always have.
  bool strict_rule = false;
};

// An integer literal a double cannot hold exactly (|n| > 2^53, within int64).
// ordinal counts the numbers of the document in document order (from 0), the
// order a pre-order walk of the parsed tree meets its number nodes.
struct BigInteger {
  std::size_t ordinal;
  std::int64_t value;
  std::string_view literal;  // points into the validated text
};

// cJSON's CJSON_NESTING_LIMIT: deeper input fails in cJSON anyway.
inline constexpr int kMaxStrictDepth = 1000;

// True if text is one valid JSON value under the rule above. On false, error
// (if given) says where and why. big (if given) receives the big integers.
bool validate_strict(std::string_view text, StrictError* error = nullptr,
                     std::vector<BigInteger>* big = nullptr);

}  // namespace wsrelay::json
