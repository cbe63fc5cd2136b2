// fuzz_http_head: the checks a request head passes before anything acts on
// it (http/request_head.hpp), on hostile heads.
//
// The input is a raw request head; the target splits it into the request
// line and "Name: value" lines (a simple reader standing in for lws's,
// which keeps every occurrence of a repeated header), then runs the framing
// check, the upgrade check and the Sec-WebSocket-Protocol split.
// Invariants: a refusal has a status the relay documents (400, 426, 501)
// and a one-line reason; a head that passes framing has at most one
// Content-Length and it parses; an HTTP/1.1 upgrade that passes has a
// 16-byte key and version 13; a 426 names the version served; the split's
// names are non-empty tokens, at most kMaxSubprotocols, and splitting them
// joined again gives them back.
#include "fuzz_common.hpp"

#include "http/request.hpp"
#include "http/request_head.hpp"

#include <algorithm>
#include <cctype>

using namespace wsrelay;

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

void check_refusal(const http::Refusal& r) {
  FUZZ_CHECK(r.status == 400 || r.status == 426 || r.status == 501);
  FUZZ_CHECK(!r.reason.empty());
  FUZZ_CHECK(r.reason.find_first_of("\r\n") == std::string::npos);
  for (const auto& [name, value] : r.headers) {
    FUZZ_CHECK(http::is_token(name));
    FUZZ_CHECK(http::is_field_value(value));
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  http::RequestHead head;
  std::string protocols;
  bool first = true;
  std::size_t at = 0;
  while (at <= text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(at, end - at);
    at = end + 1;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (first) {
      first = false;
      const std::size_t space = line.rfind(' ');
      if (space != std::string_view::npos && line.substr(space + 1).rfind("HTTP/", 0) == 0) {
        head.version = std::string(line.substr(space + 1));
      }
      continue;
    }
    if (line.empty()) break;
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    const std::string name = lower(line.substr(0, colon));
    const std::string value(line.substr(colon + 1));
    if (name == "content-length") head.content_length.push_back(value);
    if (name == "transfer-encoding") head.transfer_encoding.push_back(value);
    if (name == "sec-websocket-key") head.websocket_key = value;
    if (name == "sec-websocket-version") head.websocket_version = value;
    if (name == "sec-websocket-protocol") protocols = value;
  }

  if (const auto r = http::check_framing(head)) {
    check_refusal(*r);
  } else {
    FUZZ_CHECK(head.transfer_encoding.empty());
    FUZZ_CHECK(head.content_length.size() <= 1);
    if (!head.content_length.empty()) FUZZ_CHECK(http::parse_content_length(head.content_length.front()).has_value());
  }

  if (const auto r = http::check_upgrade(head)) {
    check_refusal(*r);
    FUZZ_CHECK(r->status != 501);
    if (r->status == 426) {
      FUZZ_CHECK(r->headers.size() == 1 && r->headers[0].first == "Sec-WebSocket-Version" &&
                 r->headers[0].second == "13");
    }
  } else if (!head.version.empty()) {
    FUZZ_CHECK(head.version == "HTTP/1.1");
    FUZZ_CHECK(head.websocket_key.has_value() && head.websocket_version.has_value());
  }

  if (const auto names = http::subprotocols(protocols)) {
    FUZZ_CHECK(names->size() <= http::kMaxSubprotocols);
    std::string joined;
    for (const std::string& n : *names) {
      FUZZ_CHECK(!n.empty() && http::is_token(n));
      joined += (joined.empty() ? "" : ",") + n;
    }
    const auto again = http::subprotocols(joined);
    FUZZ_CHECK(again.has_value() && *again == *names);
  }
  return 0;
}
