#include "support/ws_client.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>

namespace wsrelay::test {

namespace {

using Clock = std::chrono::steady_clock;

// Large enough for any test message, small enough that a garbage length field
// from a broken server fails the test instead of exhausting memory.
constexpr std::uint64_t kMaxMessageBytes = 256u * 1024u * 1024u;
// An HTTP head larger than this is not something our server should send.
constexpr std::size_t kMaxHttpHead = 64 * 1024;
constexpr const char* kWebSocketGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Owns an fd until released, so early returns cannot leak sockets.
class UniqueFd {
public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  explicit operator bool() const { return fd_ >= 0; }

private:
  int fd_;
};

// Milliseconds left until deadline, rounded up so that a sub-millisecond
// remainder still waits instead of spinning on poll(0).
int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  if (left <= 0) return 0;
  return static_cast<int>(std::min<long long>(left, 24LL * 3600 * 1000));
}

// 1: ready, 0: timed out, -1: poll error.
int wait_fd(int fd, short events, Clock::time_point deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    int r = ::poll(&p, 1, remaining_ms(deadline));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -1;
    return r == 0 ? 0 : 1;
  }
}

bool write_all_fd(int fd, std::string_view bytes, Clock::time_point deadline) {
  while (!bytes.empty()) {
    // MSG_NOSIGNAL: a peer that went away must fail the send, not kill the
    // test runner with SIGPIPE.
    ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n > 0) {
      bytes.remove_prefix(static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (wait_fd(fd, POLLOUT, deadline) != 1) return false;
      continue;
    }
    return false;
  }
  return true;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) == std::tolower(static_cast<unsigned char>(y));
         });
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

// Looks a header up in "Name: value\r\n..." lines; repeated headers are
// joined with ", " as HTTP allows for list-valued headers.
std::string find_header(std::string_view headers, std::string_view name) {
  std::string result;
  bool found = false;
  while (!headers.empty()) {
    auto eol = headers.find("\r\n");
    std::string_view line = headers.substr(0, eol);
    headers = eol == std::string_view::npos ? std::string_view{} : headers.substr(eol + 2);
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    if (!iequals(trim(line.substr(0, colon)), name)) continue;
    if (found) result += ", ";
    result += trim(line.substr(colon + 1));
    found = true;
  }
  return result;
}

bool has_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    auto comma = list.find(',');
    if (iequals(trim(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string host_header(const std::string& host, int port) {
  // IPv6 literals need brackets in the Host header.
  if (host.find(':') != std::string::npos && host.front() != '[') return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

// Applies the caller's headers to the defaults: same name replaces (empty
// value removes), anything else is appended.
void merge_headers(HeaderList& headers, const HeaderList& extra) {
  for (const auto& header : extra) {
    auto it = std::find_if(headers.begin(), headers.end(), [&](const auto& h) { return iequals(h.first, header.first); });
    if (it == headers.end()) {
      headers.push_back(header);
    } else if (header.second.empty()) {
      headers.erase(it);
    } else {
      it->second = header.second;
    }
  }
}

std::string build_request(const std::string& path, const HeaderList& headers) {
  std::string req = "GET " + path + " HTTP/1.1\r\n";
  for (const auto& [name, value] : headers) req += name + ": " + value + "\r\n";
  req += "\r\n";
  return req;
}

// Opens a non-blocking TCP connection (all our I/O goes through poll() so every
// step honours the caller's deadline). Returns -1 and sets *error on failure.
int connect_tcp(const std::string& host, int port, Clock::time_point deadline, std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* res = nullptr;
  std::string port_str = std::to_string(port);
  int gai = ::getaddrinfo(host.c_str(), port_str.c_str(), &hints, &res);
  if (gai != 0) {
    *error = "getaddrinfo(" + host + "): " + ::gai_strerror(gai);
    return -1;
  }
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> guard(res, &::freeaddrinfo);
  *error = "no address for " + host;
  for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
    // CLOEXEC: servers spawned by the same test must not inherit our sockets.
    UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol));
    if (!fd) {
      *error = std::string("socket: ") + std::strerror(errno);
      continue;
    }
    int r = ::connect(fd.get(), ai->ai_addr, ai->ai_addrlen);
    if (r < 0 && errno == EINPROGRESS) {
      int w = wait_fd(fd.get(), POLLOUT, deadline);
      if (w == 0) {
        *error = "timeout connecting to " + host + ":" + port_str;
        return -1;
      }
      int soerr = 0;
      socklen_t len = sizeof soerr;
      if (w < 0 || ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len) < 0) soerr = errno;
      if (soerr != 0) {
        *error = "connect to " + host + ":" + port_str + ": " + std::strerror(soerr);
        continue;
      }
    } else if (r < 0) {
      *error = "connect to " + host + ":" + port_str + ": " + std::strerror(errno);
      continue;
    }
    // Tests send small frames (and raw byte splits) that must leave at once.
    int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    error->clear();
    return fd.release();
  }
  return -1;
}

// Reads into buf until the end of an HTTP head. Returns the offset just past
// "\r\n\r\n", or npos with *error set.
std::size_t read_http_head(int fd, std::string& buf, Clock::time_point deadline, std::string* error) {
  for (;;) {
    auto end = buf.find("\r\n\r\n");
    if (end != std::string::npos) return end + 4;
    if (buf.size() > kMaxHttpHead) {
      *error = "HTTP response head too large";
      return std::string::npos;
    }
    int w = wait_fd(fd, POLLIN, deadline);
    if (w == 0) {
      *error = "timeout waiting for the HTTP response";
      return std::string::npos;
    }
    char chunk[4096];
    ssize_t n = w < 0 ? -1 : ::recv(fd, chunk, sizeof chunk, 0);
    if (n > 0) {
      buf.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0) {
      *error = buf.empty() ? "connection closed without an HTTP response"
                           : "connection closed in the middle of the HTTP response head";
      return std::string::npos;
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      *error = std::string("recv: ") + std::strerror(errno);
      return std::string::npos;
    }
  }
}

// "HTTP/1.1 101 Switching Protocols" -> 101; 0 if malformed.
int parse_status_line(std::string_view line) {
  if (line.substr(0, 5) != "HTTP/") return 0;
  auto sp = line.find(' ');
  if (sp == std::string_view::npos || line.size() < sp + 4) return 0;
  int status = 0;
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (line[i] < '0' || line[i] > '9') return 0;
    status = status * 10 + (line[i] - '0');
  }
  return status;
}

bool valid_close_code(int code) {
  // RFC 6455 7.4: 1004-1006 and 1015 must never appear on the wire; 1012-1014
  // are registered with IANA since; 3000-4999 are for libraries/applications.
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

std::string build_frame(int opcode, std::string_view payload, bool fin, bool mask, std::mt19937& rng) {
  std::string f;
  f.reserve(payload.size() + 14);
  f.push_back(static_cast<char>((fin ? 0x80 : 0x00) | (opcode & 0x7F)));
  const unsigned mask_bit = mask ? 0x80 : 0x00;
  const std::uint64_t n = payload.size();
  if (n < 126) {
    f.push_back(static_cast<char>(mask_bit | n));
  } else if (n <= 0xFFFF) {
    f.push_back(static_cast<char>(mask_bit | 126));
    f.push_back(static_cast<char>((n >> 8) & 0xFF));
    f.push_back(static_cast<char>(n & 0xFF));
  } else {
    f.push_back(static_cast<char>(mask_bit | 127));
    for (int shift = 56; shift >= 0; shift -= 8) f.push_back(static_cast<char>((n >> shift) & 0xFF));
  }
  if (!mask) {
    f.append(payload);
    return f;
  }
  const std::uint32_t k = rng();
  const unsigned char key[4] = {static_cast<unsigned char>(k >> 24), static_cast<unsigned char>(k >> 16),
                                static_cast<unsigned char>(k >> 8), static_cast<unsigned char>(k)};
  f.append(reinterpret_cast<const char*>(key), 4);
  for (std::size_t i = 0; i < payload.size(); ++i)
    f.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ key[i & 3]));
  return f;
}

// Decodes a chunked body. Returns true when the terminating chunk was seen.
bool dechunk(std::string_view raw, std::string& out) {
  out.clear();
  for (;;) {
    auto eol = raw.find("\r\n");
    if (eol == std::string_view::npos) return false;
    std::string_view line = raw.substr(0, eol);
    std::string size_line(line.substr(0, line.find(';')));  // chunk extensions are ignored
    std::size_t size = 0;
    try {
      size = std::stoul(size_line, nullptr, 16);
    } catch (...) {
      return false;
    }
    raw.remove_prefix(eol + 2);
    if (size == 0) return true;  // trailers, if any, are of no interest to the tests
    if (raw.size() < size + 2) return false;
    out.append(raw.substr(0, size));
    raw.remove_prefix(size + 2);
  }
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                      static_cast<unsigned char>(bytes[i + 2]);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i + 1 == bytes.size()) {
    std::uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += "==";
  } else if (i + 2 == bytes.size()) {
    std::uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) | (static_cast<unsigned char>(bytes[i + 1]) << 8);
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string websocket_accept_key(std::string_view sec_websocket_key) {
  std::string input(sec_websocket_key);
  input += kWebSocketGuid;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // EVP_Digest rather than SHA1(): the latter is deprecated in OpenSSL 3 and
  // the tests build with -Werror.
  if (EVP_Digest(input.data(), input.size(), digest, &len, EVP_sha1(), nullptr) != 1) return {};
  return base64_encode(std::string_view(reinterpret_cast<const char*>(digest), len));
}

bool is_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len;
    std::uint32_t cp;
    std::uint32_t min;
    if ((c & 0xE0) == 0xC0) {
      len = 2, cp = c & 0x1F, min = 0x80;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, cp = c & 0x0F, min = 0x800;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, cp = c & 0x07, min = 0x10000;
    } else {
      return false;
    }
    if (i + len > s.size()) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are invalid.
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::string HttpResponse::header(std::string_view name) const { return find_header(headers, name); }

// ---------------------------------------------------------------------------
// WsClient

WsClient::WsClient(int fd) : fd_(fd), rng_(std::random_device{}()) {}

WsClient::~WsClient() {
  if (fd_ >= 0) ::close(fd_);
}

std::unique_ptr<WsClient> WsClient::connect(const std::string& host, int port, const std::string& path,
                                            const HeaderList& extra_headers, std::string* error,
                                            std::chrono::milliseconds timeout) {
  std::string local_error;
  std::string& err = error ? *error : local_error;
  const auto deadline = Clock::now() + timeout;

  UniqueFd fd(connect_tcp(host, port, deadline, &err));
  if (!fd) return nullptr;

  std::random_device rd;
  std::string nonce(16, '\0');
  for (auto& b : nonce) b = static_cast<char>(rd() & 0xFF);

  HeaderList headers = {{"Host", host_header(host, port)},
                        {"Upgrade", "websocket"},
                        {"Connection", "Upgrade"},
                        {"Sec-WebSocket-Key", base64_encode(nonce)},
                        {"Sec-WebSocket-Version", "13"}};
  merge_headers(headers, extra_headers);
  std::optional<std::string> key;
  for (const auto& [name, value] : headers)
    if (iequals(name, "Sec-WebSocket-Key")) key = value;

  if (!write_all_fd(fd.get(), build_request(path, headers), deadline)) {
    err = std::string("sending the upgrade request failed: ") + std::strerror(errno);
    return nullptr;
  }

  std::string buf;
  const std::size_t head_end = read_http_head(fd.get(), buf, deadline, &err);
  if (head_end == std::string::npos) return nullptr;
  const std::size_t status_end = buf.find("\r\n");
  const int status = parse_status_line(std::string_view(buf).substr(0, status_end));
  if (status == 0) {
    err = "malformed HTTP status line: " + buf.substr(0, status_end);
    return nullptr;
  }
  if (status != 101) {
    err = "HTTP " + std::to_string(status);
    return nullptr;
  }
  // Header lines without the status line and without the blank line.
  std::string response_headers = buf.substr(status_end + 2, head_end - 2 - (status_end + 2));
  if (!iequals(find_header(response_headers, "Upgrade"), "websocket")) {
    err = "101 response without 'Upgrade: websocket'";
    return nullptr;
  }
  if (!has_token(find_header(response_headers, "Connection"), "upgrade")) {
    err = "101 response without 'Connection: Upgrade'";
    return nullptr;
  }
  // Without a key (a negative test removed it) there is nothing to check against.
  if (key) {
    const std::string accept = find_header(response_headers, "Sec-WebSocket-Accept");
    const std::string expected = websocket_accept_key(*key);
    if (accept != expected) {
      err = "bad Sec-WebSocket-Accept '" + accept + "' (expected '" + expected + "')";
      return nullptr;
    }
  }

  std::unique_ptr<WsClient> client(new WsClient(fd.release()));
  // The server may send its first frames in the same segment as the 101.
  client->rbuf_ = buf.substr(head_end);
  client->response_headers_ = std::move(response_headers);
  err.clear();
  return client;
}

bool WsClient::write_all(std::string_view bytes) {
  return write_all_fd(fd_, bytes, Clock::now() + send_timeout_);
}

bool WsClient::send_text(std::string_view text) { return send_frame(ws_opcode::Text, text); }

bool WsClient::send_binary(std::string_view bytes) { return send_frame(ws_opcode::Binary, bytes); }

bool WsClient::send_fragmented_text(std::string_view text, std::size_t fragment_size) {
  fragment_size = std::max<std::size_t>(fragment_size, 1);
  int opcode = ws_opcode::Text;
  do {
    const std::string_view part = text.substr(0, fragment_size);
    text.remove_prefix(part.size());
    // The first frame never has FIN, so even a short text goes out as at least
    // two frames (see the header).
    const bool fin = text.empty() && opcode == ws_opcode::Continuation;
    if (!send_frame(opcode, part, fin)) return false;
    opcode = ws_opcode::Continuation;
    if (text.empty() && !fin) return send_frame(ws_opcode::Continuation, "", true);
  } while (!text.empty());
  return true;
}

bool WsClient::send_frame(int opcode, std::string_view payload, bool fin, bool mask) {
  return write_all(build_frame(opcode, payload, fin, mask, rng_));
}

bool WsClient::send_raw(std::string_view bytes) { return write_all(bytes); }

bool WsClient::send_ping(std::string_view payload) { return send_frame(ws_opcode::Ping, payload); }

bool WsClient::close(int code, std::string_view reason) {
  std::string payload;
  if (code > 0) {
    payload.push_back(static_cast<char>((code >> 8) & 0xFF));
    payload.push_back(static_cast<char>(code & 0xFF));
    payload.append(reason);
  }
  close_sent_ = true;
  return send_frame(ws_opcode::Close, payload);
}

void WsClient::fail(int code, std::string why) {
  // RFC 6455 7.1.7 "Fail the WebSocket Connection": send a Close if we still
  // may, then drop the TCP connection. The socket fd stays valid until the
  // destructor so fd() never dangles.
  if (protocol_error_.empty()) protocol_error_ = std::move(why);
  if (!close_sent_) {
    std::string payload{static_cast<char>((code >> 8) & 0xFF), static_cast<char>(code & 0xFF)};
    close_sent_ = true;
    send_frame(ws_opcode::Close, payload);
  }
  ::shutdown(fd_, SHUT_RDWR);
  closed_ = true;
  if (close_code_ == 0) close_code_ = 1006;
}

bool WsClient::fill(int timeout_ms) {
  pollfd p{fd_, POLLIN, 0};
  int r = ::poll(&p, 1, timeout_ms);
  if (r < 0 && errno == EINTR) return true;  // caller re-checks its deadline
  if (r == 0) return false;
  char chunk[64 * 1024];
  ssize_t n = r < 0 ? -1 : ::recv(fd_, chunk, sizeof chunk, 0);
  if (n > 0) {
    rbuf_.append(chunk, static_cast<std::size_t>(n));
    return true;
  }
  if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return true;
  // EOF or reset: the connection is over; without a Close frame that is the
  // "abnormal closure" the RFC names 1006.
  closed_ = true;
  if (close_code_ == 0) close_code_ = 1006;
  return false;
}

WsClient::Parse WsClient::parse_frame(Frame& out) {
  if (rbuf_.size() < 2) return Parse::Incomplete;
  const auto* p = reinterpret_cast<const unsigned char*>(rbuf_.data());
  const bool fin = (p[0] & 0x80) != 0;
  const int rsv = (p[0] >> 4) & 0x7;
  const int opcode = p[0] & 0x0F;
  const bool masked = (p[1] & 0x80) != 0;
  std::uint64_t len = p[1] & 0x7F;

  // Checks that need only the first two bytes come first, so a broken frame
  // is reported at once instead of after waiting for a payload.
  if (masked) {
    fail(1002, "server sent a masked frame");
    return Parse::Error;
  }
  if (rsv != 0) {
    fail(1002, "server set RSV bits " + std::to_string(rsv) + " without a negotiated extension");
    return Parse::Error;
  }
  const bool control = (opcode & 0x8) != 0;
  if (opcode != 0x0 && opcode != 0x1 && opcode != 0x2 && opcode != 0x8 && opcode != 0x9 && opcode != 0xA) {
    fail(1002, "server sent reserved opcode " + std::to_string(opcode));
    return Parse::Error;
  }
  if (control && (!fin || len > 125)) {
    fail(1002, "server sent a fragmented or oversized control frame (opcode " + std::to_string(opcode) + ")");
    return Parse::Error;
  }

  std::size_t pos = 2;
  if (len == 126) {
    if (rbuf_.size() < 4) return Parse::Incomplete;
    len = (std::uint64_t{p[2]} << 8) | p[3];
    pos = 4;
  } else if (len == 127) {
    if (rbuf_.size() < 10) return Parse::Incomplete;
    len = 0;
    for (int i = 2; i < 10; ++i) len = (len << 8) | p[i];
    pos = 10;
    if (len >> 63) {
      fail(1002, "server sent a 64-bit length with the most significant bit set");
      return Parse::Error;
    }
  }
  if (len > kMaxMessageBytes) {
    fail(1009, "server sent a " + std::to_string(len) + "-byte frame, over the test client's limit");
    return Parse::Error;
  }
  if (rbuf_.size() - pos < len) return Parse::Incomplete;

  out.fin = fin;
  out.rsv = rsv;
  out.opcode = opcode;
  out.payload.assign(rbuf_, pos, static_cast<std::size_t>(len));
  rbuf_.erase(0, pos + static_cast<std::size_t>(len));
  return Parse::Frame;
}

std::optional<WsMessage> WsClient::handle_frame(Frame& frame) {
  auto finish = [this](WsMessage::Kind kind, std::string data) -> std::optional<WsMessage> {
    // Validated on the whole message: fragments may split a code point.
    if (kind == WsMessage::Kind::Text && !is_valid_utf8(data)) {
      fail(1007, "server sent a text message that is not valid UTF-8");
      return std::nullopt;
    }
    return WsMessage{kind, std::move(data)};
  };

  switch (frame.opcode) {
    case ws_opcode::Continuation: {
      if (!fragment_kind_) {
        fail(1002, "server sent a continuation frame without a message in progress");
        return std::nullopt;
      }
      fragment_data_ += frame.payload;
      if (fragment_data_.size() > kMaxMessageBytes) {
        fail(1009, "server sent a fragmented message over the test client's limit");
        return std::nullopt;
      }
      if (!frame.fin) return std::nullopt;
      const auto kind = *fragment_kind_;
      fragment_kind_.reset();
      return finish(kind, std::exchange(fragment_data_, {}));
    }
    case ws_opcode::Text:
    case ws_opcode::Binary: {
      if (fragment_kind_) {
        fail(1002, "server started a new message inside a fragmented one");
        return std::nullopt;
      }
      const auto kind = frame.opcode == ws_opcode::Text ? WsMessage::Kind::Text : WsMessage::Kind::Binary;
      if (frame.fin) return finish(kind, std::move(frame.payload));
      fragment_kind_ = kind;
      fragment_data_ = std::move(frame.payload);
      return std::nullopt;
    }
    case ws_opcode::Close: {
      int code = 1005;  // "no status received"
      std::string reason;
      if (frame.payload.size() == 1) {
        fail(1002, "server sent a Close frame with a 1-byte payload");
        return std::nullopt;
      }
      if (frame.payload.size() >= 2) {
        code = (static_cast<unsigned char>(frame.payload[0]) << 8) | static_cast<unsigned char>(frame.payload[1]);
        reason = frame.payload.substr(2);
        if (!valid_close_code(code)) {
          fail(1002, "server sent invalid close code " + std::to_string(code));
          return std::nullopt;
        }
        if (!is_valid_utf8(reason)) {
          fail(1007, "server sent a close reason that is not valid UTF-8");
          return std::nullopt;
        }
      }
      close_received_ = true;
      closed_ = true;
      close_code_ = code;
      if (!close_sent_) {
        // Echo the code, as RFC 6455 5.5.1 suggests; "no status" stays empty.
        close(code == 1005 ? 0 : code);
      }
      // Both Close frames are exchanged, so nothing more may be sent: half-
      // close TCP. Servers that half-close first and then wait for our FIN
      // (python-websockets waits up to 10 s) can finish at once, and we keep
      // no read loop running that would notice their EOF otherwise.
      ::shutdown(fd_, SHUT_WR);
      return WsMessage{WsMessage::Kind::Close, std::move(reason), code};
    }
    case ws_opcode::Ping:
      // No Pong after our Close: RFC 6455 5.5.1 forbids data after Close, and
      // a Pong is a frame like any other.
      if (auto_pong_ && !close_sent_) send_frame(ws_opcode::Pong, frame.payload);
      if (return_control_) return WsMessage{WsMessage::Kind::Ping, std::move(frame.payload)};
      return std::nullopt;
    case ws_opcode::Pong:
      if (return_control_) return WsMessage{WsMessage::Kind::Pong, std::move(frame.payload)};
      return std::nullopt;
    default:
      fail(1002, "unexpected opcode " + std::to_string(frame.opcode));  // parse_frame filters these already
      return std::nullopt;
  }
}

std::optional<WsMessage> WsClient::recv(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  for (;;) {
    // Nothing may follow a Close; a server that sends more is not our concern here.
    if (close_received_) return std::nullopt;
    Frame frame;
    switch (parse_frame(frame)) {
      case Parse::Error:
        return std::nullopt;
      case Parse::Frame:
        if (auto msg = handle_frame(frame)) return msg;
        if (closed_) return std::nullopt;
        continue;
      case Parse::Incomplete:
        break;
    }
    if (closed_) return std::nullopt;  // EOF seen earlier: no more bytes will come
    if (!fill(remaining_ms(deadline))) return std::nullopt;
  }
}

std::optional<std::string> WsClient::recv_text(std::chrono::milliseconds timeout) {
  auto msg = recv(timeout);
  if (!msg) return std::nullopt;
  if (msg->kind == WsMessage::Kind::Text) return std::move(msg->data);
  last_message_ = std::move(msg);
  return std::nullopt;
}

bool WsClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (!closed_) {
    auto msg = recv(std::chrono::milliseconds(remaining_ms(deadline)));
    if (!msg && !closed_ && Clock::now() >= deadline) break;
  }
  return closed_;
}

bool WsClient::closed() const { return closed_; }
int WsClient::close_code() const { return close_code_; }
void WsClient::set_auto_pong(bool on) { auto_pong_ = on; }
void WsClient::set_return_control(bool on) { return_control_ = on; }
int WsClient::fd() const { return fd_; }
const std::string& WsClient::response_headers() const { return response_headers_; }
std::string WsClient::response_header(std::string_view name) const { return find_header(response_headers_, name); }
const std::string& WsClient::protocol_error() const { return protocol_error_; }
const std::optional<WsMessage>& WsClient::last_message() const { return last_message_; }
void WsClient::set_send_timeout(std::chrono::milliseconds timeout) { send_timeout_ = timeout; }

// ---------------------------------------------------------------------------
// http_get

std::optional<HttpResponse> http_get(const std::string& host, int port, const std::string& path,
                                     const HeaderList& extra_headers, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  std::string err;
  UniqueFd fd(connect_tcp(host, port, deadline, &err));
  if (!fd) return std::nullopt;

  HeaderList headers = {{"Host", host_header(host, port)}, {"Connection", "close"}};
  merge_headers(headers, extra_headers);
  if (!write_all_fd(fd.get(), build_request(path, headers), deadline)) return std::nullopt;

  std::string buf;
  const std::size_t head_end = read_http_head(fd.get(), buf, deadline, &err);
  if (head_end == std::string::npos) return std::nullopt;
  const std::size_t status_end = buf.find("\r\n");
  HttpResponse resp;
  resp.status = parse_status_line(std::string_view(buf).substr(0, status_end));
  if (resp.status == 0) return std::nullopt;
  resp.headers = buf.substr(status_end + 2, head_end - 2 - (status_end + 2));
  std::string raw = buf.substr(head_end);

  if (resp.status == 204 || resp.status == 304 || resp.status < 200) return resp;  // bodiless by definition

  const bool chunked = has_token(resp.header("Transfer-Encoding"), "chunked");
  std::optional<std::size_t> content_length;
  if (const std::string cl = resp.header("Content-Length"); !chunked && !cl.empty()) {
    try {
      content_length = std::stoul(cl);
    } catch (...) {
      return std::nullopt;
    }
  }

  for (;;) {
    if (chunked && dechunk(raw, resp.body)) return resp;
    if (content_length && raw.size() >= *content_length) {
      resp.body = raw.substr(0, *content_length);
      return resp;
    }
    const int w = wait_fd(fd.get(), POLLIN, deadline);
    if (w == 0) return std::nullopt;
    char chunk[16 * 1024];
    const ssize_t n = w < 0 ? -1 : ::recv(fd.get(), chunk, sizeof chunk, 0);
    if (n > 0) {
      raw.append(chunk, static_cast<std::size_t>(n));
    } else if (n == 0) {
      // EOF ends a body without length; a short body is returned as is so the
      // test's comparison shows what was missing.
      if (chunked) {
        dechunk(raw, resp.body);
      } else {
        resp.body = content_length ? raw.substr(0, *content_length) : raw;
      }
      return resp;
    } else if (errno != EINTR && errno != EAGAIN && errno != EWOULDBLOCK) {
      return std::nullopt;
    }
  }
}

}  // namespace wsrelay::test
