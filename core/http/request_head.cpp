#include "http/request_head.hpp"

#include "http/request.hpp"

namespace wsrelay::http {

namespace {

bool is_ows(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
  return s;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
}

Refusal refusal(int status, std::string reason) { return Refusal{status, std::move(reason), {}}; }

}  // namespace

std::optional<unsigned long long> parse_content_length(std::string_view value) {
  value = trim(value);
  // 15 digits: far past any body the relay reads (16 MiB), and exact in
  // every type a peer might parse it into.
  if (value.empty() || value.size() > 15) return std::nullopt;
  unsigned long long n = 0;
  for (const char c : value) {
    if (c < '0' || c > '9') return std::nullopt;
    n = n * 10 + static_cast<unsigned long long>(c - '0');
  }
  return n;
}

std::optional<Refusal> check_framing(const RequestHead& head) {
  if (!head.transfer_encoding.empty() && !head.content_length.empty()) {
    return refusal(400, "Content-Length with Transfer-Encoding");
  }
  if (!head.transfer_encoding.empty()) return refusal(501, "Transfer-Encoding not supported");
  if (head.content_length.size() > 1) return refusal(400, "duplicate Content-Length");
  if (head.content_length.size() == 1 && !parse_content_length(head.content_length.front())) {
    return refusal(400, "invalid Content-Length");
  }
  return std::nullopt;
}

bool is_websocket_key(std::string_view key) {
  if (key.size() != 24 || key.substr(22) != "==") return false;
  for (std::size_t i = 0; i < 22; ++i) {
    if (!is_base64_char(key[i])) return false;
  }
  // The last character before "==" carries 2 bits of data and 4 zero bits.
  const char last = key[21];
  return std::string_view("AQgw").find(last) != std::string_view::npos;
}

std::optional<Refusal> check_upgrade(const RequestHead& head) {
  if (head.version.empty()) return std::nullopt;  // an HTTP/2 stream
  if (head.version != "HTTP/1.1") return refusal(400, "WebSocket upgrade needs HTTP/1.1");
  if (!head.websocket_key || !is_websocket_key(trim(*head.websocket_key))) {
    return refusal(400, "invalid Sec-WebSocket-Key");
  }
  if (!head.websocket_version || trim(*head.websocket_version) != "13") {
    Refusal r = refusal(426, "unsupported Sec-WebSocket-Version (this server speaks 13)");
    r.headers.emplace_back("Sec-WebSocket-Version", "13");
    return r;
  }
  return std::nullopt;
}

std::optional<std::vector<std::string>> subprotocols(std::string_view list) {
  if (list.size() > kMaxSubprotocolList) return std::nullopt;
  std::vector<std::string> names;
  std::size_t at = 0;
  while (at <= list.size()) {
    std::size_t end = list.find(',', at);
    if (end == std::string_view::npos) end = list.size();
    const std::string_view name = trim(list.substr(at, end - at));
    at = end + 1;
    if (name.empty()) continue;
    if (!is_token(name) || names.size() == kMaxSubprotocols) return std::nullopt;
    names.emplace_back(name);
  }
  return names;
}

const char* reason_phrase(int status) {
  switch (status) {
    // Every status a refusal may carry: the relay's own, and what a
    // script's on_upgrade answers (400..599).
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 402: return "Payment Required";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 410: return "Gone";
    case 412: return "Precondition Failed";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Content";
    case 423: return "Locked";
    case 426: return "Upgrade Required";
    case 428: return "Precondition Required";
    case 429: return "Too Many Requests";
    case 451: return "Unavailable For Legal Reasons";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Error";
  }
}

}  // namespace wsrelay::http
