#include "json/strict.hpp"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <memory>
#include <unordered_set>

namespace wsrelay::json {

namespace {

// Beyond this many members a linear duplicate check would make one message
// cost O(n^2); a hash set keeps a 100k-member object linear.
constexpr std::size_t kLinearKeys = 16;

// 2^53: above it not every integer has a double.
constexpr std::uint64_t kExactInDouble = 9007199254740992ULL;

bool is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void append_utf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

class Validator {
 public:
  Validator(std::string_view text, std::vector<BigInteger>* big) : text_(text), big_(big) {}

  bool run() {
    skip_ws();
    if (!value(1)) return false;
    skip_ws();
    if (pos_ != text_.size()) return fail(pos_, "unexpected data after the JSON value");
    return true;
  }

  StrictError error;

 private:
  bool fail(std::size_t at, std::string reason) {
    error.offset = at;
    error.reason = std::move(reason);
    return false;
  }
  bool refuse(std::size_t at, std::string reason) {
    fail(at, std::move(reason));
    error.strict_rule = true;
    return false;
  }

  bool at_end() const { return pos_ >= text_.size(); }
  char peek() const { return text_[pos_]; }
  void skip_ws() {
    while (!at_end() && is_ws(peek())) ++pos_;
  }

  bool value(int depth) {
    if (at_end()) return fail(pos_, "unexpected end of JSON");
    switch (peek()) {
      case '{': return object(depth);
      case '[': return array(depth);
      case '"': return string(nullptr);
      case 't': return literal("true");
      case 'f': return literal("false");
      case 'n': return literal("null");
      default:
        if (peek() == '-' || is_digit(peek())) return number();
        return fail(pos_, "invalid JSON value");
    }
  }

  bool literal(std::string_view word) {
    if (text_.substr(pos_, word.size()) != word) return fail(pos_, "invalid JSON value");
    pos_ += word.size();
    return true;
  }

  bool enter(int depth) {
    if (depth > kMaxStrictDepth) return fail(pos_, "nested deeper than " + std::to_string(kMaxStrictDepth) + " levels");
    ++pos_;  // the opening bracket
    skip_ws();
    return true;
  }

  bool array(int depth) {
    if (!enter(depth)) return false;
    if (!at_end() && peek() == ']') {
      ++pos_;
      return true;
    }
    for (;;) {
      skip_ws();
      if (!value(depth + 1)) return false;
      skip_ws();
      if (at_end()) return fail(pos_, "unexpected end of JSON (unclosed array)");
      if (peek() == ']') {
        ++pos_;
        return true;
      }
      if (peek() != ',') return fail(pos_, "expected ',' or ']'");
      ++pos_;
    }
  }

  bool object(int depth) {
    if (!enter(depth)) return false;
    if (!at_end() && peek() == '}') {
      ++pos_;
      return true;
    }
    // Decoded keys of this object; a set only once the object is large.
    std::vector<std::string> keys;
    std::unordered_set<std::string_view> key_set;
    for (;;) {
      skip_ws();
      if (at_end() || peek() != '"') return fail(pos_, "expected a string key");
      const std::size_t key_at = pos_;
      std::string key;
      if (!string(&key)) return false;
      if (!unique_key(keys, key_set, std::move(key), key_at)) return false;
      skip_ws();
      if (at_end() || peek() != ':') return fail(pos_, "expected ':'");
      ++pos_;
      skip_ws();
      if (!value(depth + 1)) return false;
      skip_ws();
      if (at_end()) return fail(pos_, "unexpected end of JSON (unclosed object)");
      if (peek() == '}') {
        ++pos_;
        return true;
      }
      if (peek() != ',') return fail(pos_, "expected ',' or '}'");
      ++pos_;
    }
  }

  bool unique_key(std::vector<std::string>& keys, std::unordered_set<std::string_view>& key_set,
                  std::string key, std::size_t at) {
    bool repeated = false;
    if (keys.size() < kLinearKeys) {
      for (const std::string& k : keys) repeated = repeated || k == key;
    } else {
      if (key_set.empty()) {
        // keys stops growing at kLinearKeys, so views into it stay valid.
        for (const std::string& k : keys) key_set.insert(k);
      }
      repeated = key_set.count(key) != 0;
    }
    if (repeated) return refuse(at, "duplicate key \"" + printable(key) + "\"");
    if (keys.size() < kLinearKeys) {
      keys.push_back(std::move(key));
    } else {
      // Owned elsewhere: the views in key_set must not move with a vector.
      overflow_keys_.push_back(std::make_unique<std::string>(std::move(key)));
      key_set.insert(*overflow_keys_.back());
    }
    return true;
  }

  // The key as shown in an error: control bytes and quotes escaped, capped so
  // an error reply cannot be made as big as the message.
  static std::string printable(const std::string& key) {
    std::string out;
    for (unsigned char c : key) {
      if (out.size() >= 64) {
        out += "...";
        break;
      }
      if (c == '"' || c == '\\') {
        out += '\\';
        out += static_cast<char>(c);
      } else if (c < 0x20) {
        out += '?';
      } else {
        out += static_cast<char>(c);
      }
    }
    return out;
  }

  // A string at pos_ (on its opening quote); decoded into out if given.
  bool string(std::string* out) {
    const std::size_t start = pos_;
    ++pos_;
    for (;;) {
      if (at_end()) return fail(start, "unterminated string");
      const char c = peek();
      if (c == '"') {
        ++pos_;
        return true;
      }
      if (static_cast<unsigned char>(c) < 0x20) return fail(pos_, "control character in a string");
      if (c != '\\') {
        if (out != nullptr) *out += c;
        ++pos_;
        continue;
      }
      const std::size_t esc = pos_;
      ++pos_;
      if (at_end()) return fail(start, "unterminated string");
      const char e = peek();
      ++pos_;
      switch (e) {
        case '"': case '\\': case '/':
          if (out != nullptr) *out += e;
          break;
        case 'b': if (out != nullptr) *out += '\b'; break;
        case 'f': if (out != nullptr) *out += '\f'; break;
        case 'n': if (out != nullptr) *out += '\n'; break;
        case 'r': if (out != nullptr) *out += '\r'; break;
        case 't': if (out != nullptr) *out += '\t'; break;
        case 'u': {
          std::uint32_t cp = 0;
          if (!hex4(cp)) return fail(esc, "invalid \\u escape");
          // A high surrogate followed by a low one is one code point; a lone
          // one is kept as is (only key comparison looks at the result).
          if (cp >= 0xD800 && cp < 0xDC00 && text_.substr(pos_, 2) == "\\u") {
            const std::size_t save = pos_;
            pos_ += 2;
            std::uint32_t low = 0;
            if (hex4(low) && low >= 0xDC00 && low < 0xE000) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
            } else {
              pos_ = save;
            }
          }
          if (out != nullptr) append_utf8(*out, cp);
          break;
        }
        default: return fail(esc, "invalid escape in a string");
      }
    }
  }

  bool hex4(std::uint32_t& cp) {
    if (pos_ + 4 > text_.size()) return false;
    cp = 0;
    for (int i = 0; i < 4; ++i) {
      const int h = hex_value(text_[pos_ + i]);
      if (h < 0) return false;
      cp = cp * 16 + static_cast<std::uint32_t>(h);
    }
    pos_ += 4;
    return true;
  }

  bool number() {
    const std::size_t start = pos_;
    if (peek() == '-') ++pos_;
    if (at_end() || !is_digit(peek())) return fail(start, "invalid number");
    if (peek() == '0') {
      ++pos_;
      if (!at_end() && is_digit(peek())) return refuse(start, "invalid number (leading zero)");
    } else {
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    bool integral = true;
    if (!at_end() && peek() == '.') {
      integral = false;
      ++pos_;
      if (at_end() || !is_digit(peek())) return fail(start, "invalid number (digit expected after '.')");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    if (!at_end() && (peek() == 'e' || peek() == 'E')) {
      integral = false;
      ++pos_;
      if (!at_end() && (peek() == '+' || peek() == '-')) ++pos_;
      if (at_end() || !is_digit(peek())) return fail(start, "invalid number (digit expected in exponent)");
      while (!at_end() && is_digit(peek())) ++pos_;
    }
    const std::string_view lit = text_.substr(start, pos_ - start);
    const std::size_t ordinal = numbers_++;
    if (integral) {
      // 15 digits always fit a double exactly: the common case costs nothing.
      const std::size_t digits = lit.size() - (lit[0] == '-' ? 1 : 0);
      if (digits <= 15) return true;
      std::int64_t v = 0;
      const auto [end, ec] = std::from_chars(lit.data(), lit.data() + lit.size(), v);
      if (ec != std::errc() || end != lit.data() + lit.size()) {
        return refuse(start, "number out of range (integers must fit in 64 bits)");
      }
      const std::uint64_t magnitude =
          v < 0 ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
      if (magnitude > kExactInDouble && big_ != nullptr) big_->push_back({ordinal, v, lit});
      return true;
    }
    // strtod needs a terminated copy; numbers are short, and fractions and
    // exponents are off the hot (flat) path anyway.
    const std::string copy(lit);
    const double d = std::strtod(copy.c_str(), nullptr);
    if (!std::isfinite(d)) return refuse(start, "number out of range");
    return true;
  }

  std::string_view text_;
  std::vector<BigInteger>* big_;
  std::size_t pos_ = 0;
  std::size_t numbers_ = 0;
  std::vector<std::unique_ptr<std::string>> overflow_keys_;
};

}  // namespace

bool validate_strict(std::string_view text, StrictError* error, std::vector<BigInteger>* big) {
  Validator v(text, big);
  if (v.run()) return true;
  if (error != nullptr) *error = std::move(v.error);
  return false;
}

}  // namespace wsrelay::json
