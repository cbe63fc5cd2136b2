// handshake: what a WebSocket client sent with its upgrade that a script may
// read — its headers (lower-case names), its query string, its cookies —
// decoded by one rule each. No lws: the relay protocol copies the headers
// out of lws (plugins/protocol_wsrelay); unit-tested (tests/unit/test_handshake.cpp).
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::http {

using Fields = std::vector<std::pair<std::string, std::string>>;

// The headers lws 4.1 parses by name, as lower-case names: always kept for
// the script. Others only when the endpoint lists them (handshake_headers):
// lws cannot enumerate unknown headers, and keeping only these bounds what
// an idle session holds.
inline constexpr std::string_view kKnownHandshakeHeaders[] = {
    "host", "origin", "user-agent", "authorization", "cookie", "x-forwarded-for", "x-real-ip",
    "x-auth-token", "accept-language", "referer", "sec-websocket-protocol", "accept-encoding", "cache-control"};

// "a=1&b=x%20y&c" -> {{"a","1"},{"b","x y"},{"c",""}}: percent-decoded,
// '+' as a space. A repeated name keeps its first value (one rule for the
// script's table and for anyone else reading the query). Malformed escapes
// stay as written.
Fields parse_query(std::string_view query);

// lws hands a query string over as its parameters, each already
// percent-decoded ("p=x&y" for ?p=x%26y): rebuilt here as one query string,
// each name and value percent-encoded again, so parse_query reads it with
// one rule (and an http route's req.query is a query string, not a list).
std::string encode_query(const std::vector<std::string>& decoded_parameters);

// Cookie: "a=1; b=two" -> {{"a","1"},{"b","two"}} (RFC 6265 §5.4: pairs
// separated by ';', surrounding spaces dropped, a quoted value unquoted;
// pairs without '=' ignored; the first of a repeated name wins).
Fields parse_cookies(std::string_view header);

// The value of a name in fields, or nullptr.
const std::string* find_field(const Fields& fields, std::string_view name);

}  // namespace wsrelay::http
