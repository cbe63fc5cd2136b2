// http/request_head: the framing and handshake checks of a request head and
// the Sec-WebSocket-Protocol split, without lws (issue 12).
#include <catch2/catch.hpp>

#include "http/request_head.hpp"

#include <string>
#include <vector>

using wsrelay::http::RequestHead;
namespace http = wsrelay::http;

namespace {

RequestHead with_lengths(std::vector<std::string> cl, std::vector<std::string> te = {}) {
  RequestHead h;
  h.version = "HTTP/1.1";
  h.content_length = std::move(cl);
  h.transfer_encoding = std::move(te);
  return h;
}

RequestHead upgrade(std::string version, std::optional<std::string> key, std::optional<std::string> ws_version) {
  RequestHead h;
  h.version = std::move(version);
  h.websocket_key = std::move(key);
  h.websocket_version = std::move(ws_version);
  return h;
}

}  // namespace

TEST_CASE("request head: framing that could smuggle a request is refused", "[request_head]") {
  CHECK_FALSE(http::check_framing(with_lengths({})));
  CHECK_FALSE(http::check_framing(with_lengths({"0"})));
  CHECK_FALSE(http::check_framing(with_lengths({" 44"})));  // lws keeps the space after the colon
  auto both = http::check_framing(with_lengths({"5"}, {"chunked"}));
  REQUIRE(both);
  CHECK(both->status == 400);
  CHECK(both->reason == "Content-Length with Transfer-Encoding");
  auto te = http::check_framing(with_lengths({}, {"chunked"}));
  REQUIRE(te);
  CHECK(te->status == 501);
  for (const auto& pair : std::vector<std::vector<std::string>>{{"0", "44"}, {"5", "5"}}) {
    auto dup = http::check_framing(with_lengths(pair));
    REQUIRE(dup);
    CHECK(dup->reason == "duplicate Content-Length");
  }
  for (const char* bad : {"abc", "-1", "+5", "1,1", "", " ", "0x10", "1 2", "1e3", "9999999999999999"}) {
    INFO(bad);
    auto r = http::check_framing(with_lengths({bad}));
    REQUIRE(r);
    CHECK(r->status == 400);
    CHECK(r->reason == "invalid Content-Length");
  }
}

TEST_CASE("request head: Content-Length values", "[request_head]") {
  CHECK(http::parse_content_length("0") == 0ull);
  CHECK(http::parse_content_length("\t 123 ") == 123ull);
  CHECK(http::parse_content_length("999999999999999") == 999999999999999ull);
  CHECK_FALSE(http::parse_content_length("1000000000000000"));
}

TEST_CASE("request head: the WebSocket handshake fields of RFC 6455 4.2.1", "[request_head]") {
  const std::string key = "dGhlIHNhbXBsZSBub25jZQ==";
  CHECK_FALSE(http::check_upgrade(upgrade("HTTP/1.1", key, "13")));
  CHECK_FALSE(http::check_upgrade(upgrade("", std::nullopt, std::nullopt)));  // an HTTP/2 stream
  auto old = http::check_upgrade(upgrade("HTTP/1.0", key, "13"));
  REQUIRE(old);
  CHECK(old->status == 400);
  CHECK(old->reason == "WebSocket upgrade needs HTTP/1.1");
  for (const std::optional<std::string>& bad :
       {std::optional<std::string>(), std::optional<std::string>("abc"), std::optional<std::string>("eHh4eHh4eHh4eHh4eHh4=="),
        std::optional<std::string>("dGhlIHNhbXBsZSBub25jZR=="), std::optional<std::string>("dGhlIHNhbXBsZSBub25jZQ"),
        std::optional<std::string>("dGhlIHNhbXBsZSBub25j!Q==")}) {
    INFO(bad.value_or("<none>"));
    auto r = http::check_upgrade(upgrade("HTTP/1.1", bad, "13"));
    REQUIRE(r);
    CHECK(r->reason == "invalid Sec-WebSocket-Key");
  }
  for (const std::optional<std::string>& v : {std::optional<std::string>(), std::optional<std::string>("8"),
                                              std::optional<std::string>("14"), std::optional<std::string>("13, 8")}) {
    auto r = http::check_upgrade(upgrade("HTTP/1.1", key, v));
    REQUIRE(r);
    CHECK(r->status == 426);
    REQUIRE(r->headers.size() == 1);
    CHECK(r->headers[0] == std::pair<std::string, std::string>("Sec-WebSocket-Version", "13"));
  }
  CHECK(http::is_websocket_key("AAAAAAAAAAAAAAAAAAAAAA=="));
  CHECK_FALSE(http::is_websocket_key("AAAAAAAAAAAAAAAAAAAAAB=="));  // non-zero padding bits: not 16 bytes' encoding
}

TEST_CASE("request head: Sec-WebSocket-Protocol lists", "[request_head]") {
  using Names = std::vector<std::string>;
  CHECK(http::subprotocols("") == Names{});
  CHECK(http::subprotocols("chat") == Names{"chat"});
  CHECK(http::subprotocols(" chat ,\twsrelay-upstream, ") == Names{"chat", "wsrelay-upstream"});
  CHECK(http::subprotocols(" , ,") == Names{});
  CHECK_FALSE(http::subprotocols("a b"));       // not a token
  CHECK_FALSE(http::subprotocols("a;b"));
  CHECK_FALSE(http::subprotocols(std::string(2000, 'a')));
  std::string many;
  for (int i = 0; i < 17; ++i) many += "p" + std::to_string(i) + ",";
  CHECK_FALSE(http::subprotocols(many));
}
