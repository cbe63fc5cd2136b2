// http/handshake: what a script reads of a WebSocket upgrade — the query
// string (session.query, on_upgrade's req.query) and the Cookie header
// (session.cookies, req.cookies) — each decoded by one rule.
#include <catch2/catch.hpp>

#include "http/handshake.hpp"

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>
#include <vector>

using wsrelay::http::Fields;
using wsrelay::http::find_field;
using wsrelay::http::kKnownHandshakeHeaders;
using wsrelay::http::parse_cookies;
using wsrelay::http::parse_query;

namespace {
Fields f(std::initializer_list<std::pair<std::string, std::string>> pairs) { return Fields(pairs); }
}  // namespace

// ---- parse_query --------------------------------------------------------------

TEST_CASE("parse_query: the documented example", "[handshake][query]") {
  CHECK(parse_query("a=1&b=x%20y&c") == f({{"a", "1"}, {"b", "x y"}, {"c", ""}}));
}

TEST_CASE("parse_query: empty input, empty pairs and empty names give nothing", "[handshake][query]") {
  CHECK(parse_query("").empty());
  CHECK(parse_query("&").empty());
  CHECK(parse_query("&&&").empty());
  CHECK(parse_query("=v").empty());
  CHECK(parse_query("=").empty());
  CHECK(parse_query("&&a=1&&").empty() == false);
  CHECK(parse_query("&&a=1&&") == f({{"a", "1"}}));
  CHECK(parse_query("=x&b=2") == f({{"b", "2"}}));
}

TEST_CASE("parse_query: a repeated name keeps its first value; order is kept", "[handshake][query]") {
  CHECK(parse_query("x=1&x=2") == f({{"x", "1"}}));
  CHECK(parse_query("z=1&a=2&z=3&m=4") == f({{"z", "1"}, {"a", "2"}, {"m", "4"}}));
  CHECK(parse_query("x&x=2") == f({{"x", ""}}));  // the first, even when it is empty
  CHECK(parse_query("%78=1&x=2") == f({{"x", "1"}}));  // names compared after decoding
}

TEST_CASE("parse_query: escapes and '+' decoded once, in names and values", "[handshake][query]") {
  CHECK(parse_query("token=a%20b") == f({{"token", "a b"}}));
  CHECK(parse_query("r=a+b") == f({{"r", "a b"}}));
  CHECK(parse_query("p=%2B") == f({{"p", "+"}}));
  CHECK(parse_query("p=x%26y") == f({{"p", "x&y"}}));  // an escaped '&' stays in the value
  CHECK(parse_query("p=x%3Dy") == f({{"p", "x=y"}}));
  CHECK(parse_query("q=100%25") == f({{"q", "100%"}}));
  CHECK(parse_query("d=%2541") == f({{"d", "%41"}}));  // once, not twice
  CHECK(parse_query("%61%62=1") == f({{"ab", "1"}}));
  CHECK(parse_query("h=%4a%4A") == f({{"h", "JJ"}}));  // either case of hex digit
  CHECK(parse_query("u=%C3%A9") == f({{"u", "\xC3\xA9"}}));
}

TEST_CASE("parse_query: a value may hold '='; only the first one splits", "[handshake][query]") {
  CHECK(parse_query("a==b") == f({{"a", "=b"}}));
  CHECK(parse_query("jwt=x.y.z==") == f({{"jwt", "x.y.z=="}}));
}

TEST_CASE("parse_query: malformed escapes stay as written", "[handshake][query]") {
  CHECK(parse_query("a=%") == f({{"a", "%"}}));
  CHECK(parse_query("a=%4") == f({{"a", "%4"}}));
  CHECK(parse_query("a=%zz") == f({{"a", "%zz"}}));
  CHECK(parse_query("a=%G1") == f({{"a", "%G1"}}));
  CHECK(parse_query("a=%4g") == f({{"a", "%4g"}}));
  CHECK(parse_query("a=1%") == f({{"a", "1%"}}));
  CHECK(parse_query("a=%%41") == f({{"a", "%A"}}));
  CHECK(parse_query("a=%41") == f({{"a", "A"}}));  // an escape that ends the input
}

TEST_CASE("parse_query: %00 decodes to a NUL byte inside the value", "[handshake][query]") {
  const Fields q = parse_query("n=a%00b");
  REQUIRE(q.size() == 1);
  CHECK(q[0].second.size() == 3);
  CHECK(q[0].second == std::string("a\0b", 3));
}

// ---- parse_cookies ------------------------------------------------------------

TEST_CASE("parse_cookies: the documented example", "[handshake][cookies]") {
  CHECK(parse_cookies("a=1; b=two") == f({{"a", "1"}, {"b", "two"}}));
}

TEST_CASE("parse_cookies: spaces and tabs around pairs, names and values dropped", "[handshake][cookies]") {
  CHECK(parse_cookies("  a = 1 ;\tb=2\t;c=3  ") == f({{"a", "1"}, {"b", "2"}, {"c", "3"}}));
  CHECK(parse_cookies("a=1;b=2") == f({{"a", "1"}, {"b", "2"}}));
  CHECK(parse_cookies("a=x y") == f({{"a", "x y"}}));  // inner space kept
}

TEST_CASE("parse_cookies: a quoted value is unquoted; a lone quote is kept", "[handshake][cookies]") {
  CHECK(parse_cookies("q=\"v w\"") == f({{"q", "v w"}}));
  CHECK(parse_cookies("q=\"\"") == f({{"q", ""}}));
  CHECK(parse_cookies("q=\"") == f({{"q", "\""}}));
  CHECK(parse_cookies("q=\"abc") == f({{"q", "\"abc"}}));
}

TEST_CASE("parse_cookies: pairs without '=' and empty names are ignored", "[handshake][cookies]") {
  CHECK(parse_cookies("").empty());
  CHECK(parse_cookies(";;; ;").empty());
  CHECK(parse_cookies("flag; a=1") == f({{"a", "1"}}));
  CHECK(parse_cookies("=v; b=2") == f({{"b", "2"}}));
  CHECK(parse_cookies(" = v").empty());
}

TEST_CASE("parse_cookies: values keep '=' and are not percent-decoded", "[handshake][cookies]") {
  CHECK(parse_cookies("a=b=c") == f({{"a", "b=c"}}));
  CHECK(parse_cookies("a=%20x") == f({{"a", "%20x"}}));
  CHECK(parse_cookies("a=x+y") == f({{"a", "x+y"}}));
  CHECK(parse_cookies("a=") == f({{"a", ""}}));
}

TEST_CASE("parse_cookies: the first of a repeated name wins", "[handshake][cookies]") {
  CHECK(parse_cookies("sid=one; sid=two; other=x") == f({{"sid", "one"}, {"other", "x"}}));
  CHECK(parse_cookies("sid=; sid=two") == f({{"sid", ""}}));
}

// ---- find_field, secrets, the known headers ---------------------------------------------

TEST_CASE("find_field: the value of a name, or nullptr", "[handshake]") {
  const Fields fields = f({{"host", "h:1"}, {"cookie", "a=1"}, {"empty", ""}});
  REQUIRE(find_field(fields, "cookie") != nullptr);
  CHECK(*find_field(fields, "cookie") == "a=1");
  REQUIRE(find_field(fields, "empty") != nullptr);
  CHECK(find_field(fields, "empty")->empty());
  CHECK(find_field(fields, "Cookie") == nullptr);  // names are lower case already
  CHECK(find_field(fields, "missing") == nullptr);
  CHECK(find_field(Fields{}, "host") == nullptr);
}

TEST_CASE("kKnownHandshakeHeaders: lower-case names, each once, the ones the docs list", "[handshake]") {
  std::vector<std::string> seen;
  for (std::string_view name : kKnownHandshakeHeaders) {
    INFO(std::string(name));
    CHECK(!name.empty());
    for (char ch : name) CHECK(!std::isupper(static_cast<unsigned char>(ch)));
    CHECK(std::find(seen.begin(), seen.end(), std::string(name)) == seen.end());
    seen.emplace_back(name);
  }
  for (const char* name : {"host", "origin", "user-agent", "authorization", "cookie", "x-forwarded-for"}) {
    INFO(name);
    CHECK(std::find(seen.begin(), seen.end(), std::string(name)) != seen.end());
  }
}
