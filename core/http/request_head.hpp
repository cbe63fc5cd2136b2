// request_head: the checks a request head must pass before anything acts on
// it — how its body is framed (RFC 7230 §3.3.3) and, for a WebSocket
// upgrade, the handshake fields (RFC 6455 §4.2.1) — and the split of a
// Sec-WebSocket-Protocol list. No lws: the transport reads the head into a
// RequestHead (every occurrence of a repeated header kept) and writes the
// refusal; unit-tested and fuzzed (fuzz/fuzz_http_head.cpp).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::http {

struct RequestHead {
  std::string version;                         // the request line's "HTTP/1.1"; empty inside HTTP/2
  std::vector<std::string> content_length;     // each Content-Length header, as sent
  std::vector<std::string> transfer_encoding;  // each Transfer-Encoding header
  std::optional<std::string> websocket_key;      // Sec-WebSocket-Key, if sent
  std::optional<std::string> websocket_version;  // Sec-WebSocket-Version, if sent
};

// An answer that ends the request: the status, its body text (one line
// naming what was wrong) and any header the answer needs. The connection is
// closed after it: what follows in the stream is never read as a request.
struct Refusal {
  int status = 400;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
};

// Content-Length with Transfer-Encoding, more than one Content-Length
// (equal or not), one that is not a decimal number, or a Transfer-Encoding
// (a chunked body lws 4.1 would not deframe: its chunks would be read as
// the next request). Each could smuggle a request past a front proxy.
std::optional<Refusal> check_framing(const RequestHead& head);

// An upgrade over HTTP/1.0 or other than 1.1, a Sec-WebSocket-Key that is
// not the base64 of 16 bytes, a missing or other Sec-WebSocket-Version than
// 13 (426, naming the version served). Not for an HTTP/2 stream (empty
// version): RFC 8441 has no key, and lws checks its own fields there.
std::optional<Refusal> check_upgrade(const RequestHead& head);

// The value parses as a Content-Length: 1 to 15 decimal digits after
// optional whitespace (lws keeps the spaces after the colon).
std::optional<unsigned long long> parse_content_length(std::string_view value);

// base64 (RFC 4648 §4, padded) of exactly 16 bytes: 22 characters and "==".
bool is_websocket_key(std::string_view key);

// The names of a Sec-WebSocket-Protocol list, in order: comma-separated,
// whitespace around each trimmed, empty entries skipped. At most
// kMaxSubprotocols names; each is a token (is_token) or the list is
// refused (nullopt), as is a list longer than kMaxSubprotocolList bytes.
inline constexpr std::size_t kMaxSubprotocols = 16;
inline constexpr std::size_t kMaxSubprotocolList = 1024;
std::optional<std::vector<std::string>> subprotocols(std::string_view list);

// "Bad Request", "Upgrade Required", ...: the reason phrase of a status the
// relay answers with, "Error" for any other.
const char* reason_phrase(int status);

}  // namespace wsrelay::http
