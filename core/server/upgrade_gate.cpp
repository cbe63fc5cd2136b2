#include "server/upgrade_gate.hpp"

#include "server/admission.hpp"
#include "server/relay.hpp"
#include "upstream/upstream_client.hpp"

namespace wsrelay::server {

namespace {

UpgradeVerdict refuse(int status, std::string reason, std::string detail,
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
  UpgradeVerdict v;
  v.kind = UpgradeVerdict::Kind::Refuse;
  v.refusal = http::Refusal{status, std::move(reason), std::move(headers)};
  v.detail = std::move(detail);
  return v;
}

}  // namespace

namespace {

// The endpoint script's on_upgrade, if it has one (after every rule above
// passed): its refusal is the answer; a user it names rides in the verdict.
UpgradeVerdict ask_script(EndpointRuntime& endpoint, http::PathPattern::Params params, const UpgradeRequest& request) {
  UpgradeVerdict verdict;
  if (!endpoint.engine->has_on_upgrade()) return verdict;
  script::UpgradeRequest hook;
  hook.path = request.path;
  hook.params = std::move(params);
  hook.query = request.query;
  if (request.read_headers) hook.headers = request.read_headers(endpoint.config.handshake_headers);
  hook.remote = request.remote;
  script::UpgradeAnswer answer = endpoint.engine->on_upgrade(hook);
  if (answer.accept) {
    verdict.user = std::move(answer.user);
    return verdict;
  }
  verdict.kind = UpgradeVerdict::Kind::Refuse;
  verdict.refusal.status = answer.refusal.status;
  verdict.refusal.reason = std::move(answer.refusal.body);
  verdict.refusal.headers = std::move(answer.refusal.headers);
  verdict.detail = endpoint.engine->name() + "'s on_upgrade answered " + std::to_string(answer.refusal.status);
  return verdict;
}

}  // namespace

UpgradeVerdict check_upgrade_request(Relay* relay_or_null, const UpgradeRequest& request, const ProtocolServed& served) {
  if (auto r = http::check_framing(request.head)) return refuse(r->status, r->reason, r->reason);
  if (auto r = http::check_upgrade(request.head)) return refuse(r->status, r->reason, r->reason, r->headers);
  const std::string shown = request.protocols.substr(0, 64);
  const auto names = http::subprotocols(request.protocols);
  if (!names) {
    return refuse(400, "invalid Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol '" + shown + "' is no list of tokens");
  }
  // lws binds the first name of the list the listener serves; so do we.
  const std::string* bound = nullptr;
  for (const std::string& name : *names) {
    if (served(name)) {
      bound = &name;
      break;
    }
  }
  // Asked for subprotocols (even an empty list) and none is served: lws
  // would drop the connection without a word ("no supported protocol").
  if (bound == nullptr && !request.protocols.empty()) {
    return refuse(400, "no supported subprotocol", "no subprotocol of '" + shown + "' is served");
  }
  if (bound != nullptr && *bound != kRelayProtocolName) {
    // The upstream links' protocol is the client side of the relay's own
    // connections: it serves no client (bound to one, lws would hand its
    // callback a server connection). Its own callback refuses too, for
    // hosts where the relay is not asked first.
    if (*bound == upstream::kUpstreamProtocolName) {
      return refuse(400, "subprotocol not served", "subprotocol '" + *bound + "' requested");
    }
    // Another protocol of the listener (a plugin's): the relay's paths do
    // not apply to it.
    UpgradeVerdict other;
    other.kind = UpgradeVerdict::Kind::OtherProtocol;
    return other;
  }
  if (relay_or_null == nullptr) return refuse(503, "relay not available", "the vhost's relay did not start");
  Relay& relay = *relay_or_null;
  http::PathPattern::Params params;
  EndpointRuntime* endpoint = relay.match(request.path, params);
  if (endpoint == nullptr) return refuse(404, "no WebSocket endpoint at this path", "unknown path " + request.path);
  // Cross-site WebSocket hijacking: a browser page from another site would
  // carry its own Origin; only the configured ones may open a session.
  if (!Admission::origin_allowed(endpoint->config.allowed_origins, request.origin, request.host)) {
    return refuse(403, "origin not allowed", "origin '" + request.origin + "' not allowed on " + endpoint->config.path);
  }
  switch (relay.admission().check(request.remote, relay.stats().connections)) {
    case Admission::Verdict::Admit:
      return ask_script(*endpoint, std::move(params), request);
    case Admission::Verdict::TooManyConnections:
      return refuse(503, "too many connections", "max_connections reached");
    case Admission::Verdict::TooManyFromAddress:
      return refuse(503, "too many connections from this address", "max_connections_per_ip reached");
  }
  return {};
}

}  // namespace wsrelay::server
