// protocol_wsrelay: the relay as an lws protocol — the one callback that turns
// lws events into Session and ScriptEngine calls, and serves the relay's own
// HTTP routes on the same listener.
// Owns: one Connection per WebSocket (Session + reassembly buffer), one
// pending HttpReply per HTTP transaction, and per vhost the record of which
// Relay it serves (lws_protocol_vh_priv_zalloc, filled at PROTOCOL_INIT).
// Uses: server::Relay — the wsrelay server's own (handed over through the
// protocol entry's user pointer, checked against core/server/hosted.hpp),
// or, as a plugin in any lws server, one it creates from the vhost's pvo
// ("config", or "script" + "path") and destroys at PROTOCOL_DESTROY.
//
// Built twice from one source: into wsrelay_core with LWS_PLUGIN_STATIC
// (the wsrelay binary, wsrelay_protocols() of <wsrelay/wsrelay.h>), and as
// libprotocol_wsrelay.so exporting the lws_plugin_protocol_t "wsrelay".
#pragma once

#include "server/upgrade_gate.hpp"

#include <libwebsockets.h>

namespace wsrelay::plugin {

inline constexpr const char* kProtocolName = server::kRelayProtocolName;

}  // namespace wsrelay::plugin
