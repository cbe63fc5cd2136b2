// upgrade_gate: whether a WebSocket upgrade is served, decided before the
// transport completes it — the head's framing and handshake fields, the
// subprotocol it binds, the endpoint at its path, its Origin, the
// connection caps — and, when not, the answer. No lws: the relay protocol
// reads the request and writes the refusal (plugins/protocol_wsrelay/
// upgrade.cpp); unit-tested with a Relay (tests/unit/test_upgrade_gate.cpp).
#pragma once

#include "http/request_head.hpp"

#include <functional>
#include <optional>
#include <vector>
#include <string>

namespace wsrelay::server {

class Relay;

// The relay's own WebSocket protocol name, and the one of the client side
// of its upstream links (which serves no client).
inline constexpr const char* kRelayProtocolName = "wsrelay";

struct UpgradeRequest {
  http::RequestHead head;
  std::string protocols;  // Sec-WebSocket-Protocol as sent ("" if absent)
  std::string path;       // without the query string
  std::string origin;
  std::string host;
  std::string remote;     // the client's address
  std::string query;      // undecoded, for the script's on_upgrade
  // The headers a script may read (http/handshake.hpp), asked only when the
  // endpoint's script has an on_upgrade; extra: its handshake_headers.
  std::function<std::vector<std::pair<std::string, std::string>>(const std::vector<std::string>& extra)> read_headers;
};

struct UpgradeVerdict {
  enum class Kind {
    Relay,          // the relay serves it
    OtherProtocol,  // bound to another protocol of the listener: its own to decide
    Refuse,         // answer `refusal` and close
  };
  Kind kind = Kind::Relay;
  http::Refusal refusal;
  std::string detail;  // what was refused, for the log line
  std::optional<std::string> user;  // Relay: named by the script's on_upgrade
};

// served(name): whether the listener carries a protocol of that name.
using ProtocolServed = std::function<bool(const std::string& name)>;

// relay: null when the vhost's relay failed to start (a host's bad pvo):
// upgrades to the host's own protocols still pass, the relay's get 503.
UpgradeVerdict check_upgrade_request(Relay* relay, const UpgradeRequest& request, const ProtocolServed& served);

}  // namespace wsrelay::server
