// A small, blocking RFC 6455 WebSocket client for the integration tests.
//
// Written against POSIX sockets only (plus OpenSSL's SHA-1 for the handshake
// check) so that the tests do not share a WebSocket implementation with the
// server under test: a bug in libwebsockets cannot hide itself by being on
// both ends of the wire. Besides being a correct client (masking,
// fragmentation reassembly, control frames, close handshake, UTF-8 checks), it
// can put deliberately malformed frames or raw bytes on the wire for negative
// tests.
//
// Every call is blocking with a timeout, so a misbehaving server makes a test
// fail instead of hanging it.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace wsrelay::test {

using HeaderList = std::vector<std::pair<std::string, std::string>>;

struct WsMessage {
  enum class Kind { Text, Binary, Ping, Pong, Close } kind;
  std::string data;    // payload (for Close: the reason text)
  int close_code = 0;  // for Close (1005 if none)
};

// Opcodes, for send_frame() in negative tests.
namespace ws_opcode {
inline constexpr int Continuation = 0x0;
inline constexpr int Text = 0x1;
inline constexpr int Binary = 0x2;
inline constexpr int Close = 0x8;
inline constexpr int Ping = 0x9;
inline constexpr int Pong = 0xA;
// OR these into send_frame()'s opcode to set the reserved bits.
inline constexpr int Rsv1 = 0x40;
inline constexpr int Rsv2 = 0x20;
inline constexpr int Rsv3 = 0x10;
}  // namespace ws_opcode

class WsClient {
public:
  // Connects and performs the upgrade. On failure returns nullptr and sets
  // *error: "HTTP <status>" (exactly that, e.g. "HTTP 404") when the server
  // answered with anything but 101, otherwise a description of the socket or
  // handshake failure.
  //
  // extra_headers are appended to the upgrade request. One whose name matches
  // a default header (Host, Upgrade, Connection, Sec-WebSocket-Key,
  // Sec-WebSocket-Version) replaces it, and an empty value removes it, so
  // negative tests can send broken handshakes; a replaced Sec-WebSocket-Key is
  // the one the Accept header is checked against.
  static std::unique_ptr<WsClient> connect(const std::string& host, int port, const std::string& path,
                                           const HeaderList& extra_headers = {}, std::string* error = nullptr,
                                           std::chrono::milliseconds timeout = std::chrono::seconds(5));

  ~WsClient();  // closes the socket (no handshake)
  WsClient(const WsClient&) = delete;
  WsClient& operator=(const WsClient&) = delete;

  bool send_text(std::string_view text);  // one masked FIN frame
  bool send_binary(std::string_view bytes);
  // A Text frame plus Continuation frames of at most fragment_size bytes each
  // (fragment_size 0 is treated as 1). Always at least two frames, even when
  // the text fits into one fragment (then an empty final continuation
  // follows), so the server's reassembly path is always exercised. Fragments
  // may split UTF-8 sequences, which RFC 6455 allows.
  bool send_fragmented_text(std::string_view text, std::size_t fragment_size);
  // Raw frame for negative tests: no checks on opcode, payload size or the
  // state of the connection. Bits 0x70 of opcode become RSV1..RSV3 (see
  // ws_opcode::Rsv1..Rsv3). mask = false sends an unmasked client frame,
  // which a server must reject.
  bool send_frame(int opcode, std::string_view payload, bool fin = true, bool mask = true);
  bool send_raw(std::string_view bytes);  // bytes straight onto the socket
  bool send_ping(std::string_view payload = "");  // not length-checked: > 125 bytes is a protocol error
  // Sends a Close frame (code <= 0: an empty Close payload, i.e. "no status").
  // Does not wait for the reply: use recv() or wait_closed(). Once a Close has
  // been received (and answered) our sending side is shut down, so later
  // sends, including this, return false.
  bool close(int code = 1000, std::string_view reason = "");

  // Next data message (Text/Binary) or Close. Replies to pings automatically
  // (if auto_pong) and returns Ping/Pong only if return_control is true.
  // std::nullopt on timeout, socket EOF/error, or when the server violated the
  // protocol (then protocol_error() says how, and the connection is failed
  // with a Close 1002/1007 as RFC 6455 requires). A Close from the server is
  // answered with a Close carrying the same code unless we already sent one.
  std::optional<WsMessage> recv(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Next message if it is Text, else nullopt. Skips nothing: a Binary, Close
  // (or Ping/Pong with return_control) is consumed, returns nullopt and is kept
  // in last_message() so the failing test can say what arrived instead; a
  // Close is also remembered as closed().
  std::optional<std::string> recv_text(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits until the server closes (Close frame or EOF) within timeout; returns
  // true if it did. Discards data frames.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));

  bool closed() const;     // a Close frame arrived, or EOF / socket error / protocol failure
  int close_code() const;  // close code received (0 if none yet; 1006 if the connection ended without Close)
  void set_auto_pong(bool on);       // default on
  void set_return_control(bool on);  // default off
  int fd() const;

  // Additions beyond the basic interface, for diagnostics and handshake tests.
  const std::string& response_headers() const;  // handshake response header lines (after the status line)
  std::string response_header(std::string_view name) const;  // "" if absent; repeated headers joined by ", "
  const std::string& protocol_error() const;  // why recv() failed the connection ("" if it did not)
  const std::optional<WsMessage>& last_message() const;  // last message recv_text() consumed
  void set_send_timeout(std::chrono::milliseconds timeout);  // per send call; default 10 s

private:
  explicit WsClient(int fd);

  enum class Parse { Incomplete, Frame, Error };
  struct Frame {
    bool fin = false;
    int rsv = 0;
    int opcode = 0;
    std::string payload;
  };

  bool write_all(std::string_view bytes);
  bool fill(int timeout_ms);
  Parse parse_frame(Frame& out);
  std::optional<WsMessage> handle_frame(Frame& frame);
  void fail(int code, std::string why);

  int fd_ = -1;
  std::string rbuf_;  // received, not yet parsed bytes (starting with any sent along with the handshake)
  std::string response_headers_;
  std::string protocol_error_;
  std::optional<WsMessage> last_message_;
  // Fragmented message being reassembled (fragment_kind_ set while one is open).
  std::optional<WsMessage::Kind> fragment_kind_;
  std::string fragment_data_;
  bool closed_ = false;
  bool close_received_ = false;
  bool close_sent_ = false;
  int close_code_ = 0;
  bool auto_pong_ = true;
  bool return_control_ = false;
  std::chrono::milliseconds send_timeout_ = std::chrono::seconds(10);
  std::mt19937 rng_;
};

struct HttpResponse {
  int status = 0;
  std::string headers;  // header lines after the status line, "\r\n"-separated
  std::string body;     // de-chunked if the server used chunked encoding
  std::string header(std::string_view name) const;  // case-insensitive; "" if absent
};

// Plain HTTP/1.1 GET (Connection: close), reads to EOF or Content-Length.
// nullopt on connect/timeout failure or a malformed response.
std::optional<HttpResponse> http_get(const std::string& host, int port, const std::string& path,
                                     const HeaderList& extra_headers = {},
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Helpers shared with the tests that check handshakes byte by byte.
std::string base64_encode(std::string_view bytes);
std::string websocket_accept_key(std::string_view sec_websocket_key);  // base64(SHA-1(key + GUID))
bool is_valid_utf8(std::string_view text);

}  // namespace wsrelay::test
