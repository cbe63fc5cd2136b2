// protocol_wsrelay: the relay as an lws protocol — the one callback that turns
// lws events into Session and ScriptEngine calls, and serves the relay's own
// HTTP routes on the same listener.
// Owns: one Connection per WebSocket (Session + reassembly buffer), one
// pending HttpReply per HTTP transaction, and per vhost the record of which
// Relay it serves (lws_protocol_vh_priv_zalloc, filled at PROTOCOL_INIT).
// Uses: server::Relay — the wsrelay server's own (handed over through the
// protocol entry's user pointer, checked against the relays registered here),
// or, as a plugin in any lws server, one it creates from the vhost's pvo
// ("config", or "script" + "path") and destroys at PROTOCOL_DESTROY.
//
// Built twice from one source: into wsrelay_core with LWS_PLUGIN_STATIC
// (the wsrelay binary, wsrelay_protocols() of <wsrelay/wsrelay.h>), and as
// libprotocol_wsrelay.so exporting the lws_plugin_protocol_t "wsrelay".
#pragma once

#include <libwebsockets.h>

namespace wsrelay::server {
class Relay;
}

namespace wsrelay::plugin {

inline constexpr const char* kProtocolName = "wsrelay";

// The relay protocol entry for a server that owns its Relay: a copy whose
// user pointer names `relay`, registered here until release_hosted(). A user
// pointer not registered here (a foreign application's) is never used.
lws_protocols hosted_protocol(server::Relay& relay);
void release_hosted(server::Relay& relay);

}  // namespace wsrelay::plugin
