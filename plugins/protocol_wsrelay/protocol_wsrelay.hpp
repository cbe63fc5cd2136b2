// protocol_wsrelay: the relay as an lws protocol — the one callback that turns
// lws events into Session and ScriptEngine calls, and serves the relay's own
// HTTP routes on the same listener.
// Owns: one Connection per WebSocket (Session + reassembly buffer), one
// pending HttpReply per HTTP transaction.
// Uses: server::Relay, found through the lws context's user pointer.
// Linked into wsrelay_core for now; issue #4 builds it as a shared-object
// plugin with lws's ABI as well.
#pragma once

#include <libwebsockets.h>

namespace wsrelay::plugin {

inline constexpr const char* kProtocolName = "wsrelay";

// The protocol entry, valid for the life of the process.
const lws_protocols& wsrelay_protocol();

}  // namespace wsrelay::plugin
