#include "json/flat.hpp"

namespace wsrelay::json {

namespace {

struct Scanner {
  const char* p;
  const char* end;

  void skip_ws() {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) ++p;
  }
  // At a '"': the string's bytes up to the closing quote, none of them an
  // escape or a control character (cJSON would copy such bytes as they are;
  // only escapes change them, and those leave the fast path).
  bool string(const char*& start, std::size_t& size) {
    if (p >= end || *p != '"') return false;
    start = ++p;
    while (p < end) {
      const auto c = static_cast<unsigned char>(*p);
      if (c == '"') break;
      if (c == '\\' || c < 0x20) return false;
      ++p;
    }
    if (p >= end) return false;
    size = static_cast<std::size_t>(p - start);
    ++p;
    return true;
  }
  bool literal(std::string_view word) {
    if (static_cast<std::size_t>(end - p) < word.size() || std::string_view(p, word.size()) != word) return false;
    p += word.size();
    return true;
  }
};

}  // namespace

bool scan_flat_object(std::string_view text, FlatObject& out) {
  Scanner s{text.data(), text.data() + text.size()};
  out.count = 0;
  s.skip_ws();
  if (s.p >= s.end || *s.p != '{') return false;
  ++s.p;
  s.skip_ws();
  if (s.p < s.end && *s.p == '}') {
    ++s.p;
    s.skip_ws();
    return s.p == s.end;
  }
  for (;;) {
    if (out.count == FlatObject::kMaxMembers) return false;
    FlatMember& m = out.members[out.count];
    if (!s.string(m.key, m.key_size)) return false;
    // A repeated key: cJSON keeps both (routing reads the first, the Lua
    // table holds the last). Left to that path.
    if (out.find(m.key_view()) != nullptr) return false;
    s.skip_ws();
    if (s.p >= s.end || *s.p != ':') return false;
    ++s.p;
    s.skip_ws();
    if (s.p >= s.end) return false;
    const char* value = s.p;
    const char c = *s.p;
    if (c == '"') {
      const char* start = nullptr;
      std::size_t size = 0;
      if (!s.string(start, size)) return false;
      m.kind = FlatMember::Kind::String;
    } else if (c == '-' || (c >= '0' && c <= '9')) {
      const bool negative = c == '-';
      if (negative) ++s.p;
      const char* digits = s.p;
      // Accumulates the first 16 digits only: more are refused below, and
      // going on would overflow (undefined) on a 19-digit number.
      std::int64_t v = 0;
      while (s.p < s.end && *s.p >= '0' && *s.p <= '9') {
        if (s.p - digits < 16) v = v * 10 + (*s.p - '0');
        ++s.p;
      }
      const auto n = s.p - digits;
      // At most 15 digits: exact in the double cJSON parses into, and
      // printed back by cJSON as written. No leading zero, no -0.
      if (n == 0 || n > 15 || (*digits == '0' && (n > 1 || negative))) return false;
      if (s.p < s.end && (*s.p == '.' || *s.p == 'e' || *s.p == 'E')) return false;
      m.kind = FlatMember::Kind::Integer;
      m.integer = negative ? -v : v;
    } else if (s.literal("true")) {
      m.kind = FlatMember::Kind::True;
    } else if (s.literal("false")) {
      m.kind = FlatMember::Kind::False;
    } else if (s.literal("null")) {
      m.kind = FlatMember::Kind::Null;
    } else {
      return false;  // an object, an array, or not JSON
    }
    m.text = value;
    m.text_size = static_cast<std::size_t>(s.p - value);
    ++out.count;
    s.skip_ws();
    if (s.p >= s.end) return false;
    if (*s.p == ',') {
      ++s.p;
      s.skip_ws();
      continue;
    }
    if (*s.p != '}') return false;
    ++s.p;
    s.skip_ws();
    return s.p == s.end;
  }
}

}  // namespace wsrelay::json
