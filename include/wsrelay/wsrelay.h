/*
 * wsrelay/wsrelay.h: embedding the relay in an existing libwebsockets server.
 *
 * Two ways, one behaviour:
 *
 *  1. Load the plugin: libprotocol_wsrelay.so is an lws protocol plugin
 *     (class "lws_protocol_plugin", symbol "wsrelay"). lws_plugins_init() it
 *     from WSRELAY_PLUGIN_DIR (pkg-config: `pkg-config --variable=plugindir
 *     wsrelay`) and hand its protocols to your vhost. Link only websockets.
 *
 *  2. Link the relay in (CMake target wsrelay::relay, pkg-config wsrelay) and
 *     put the protocols wsrelay_protocols() returns into your vhost's list.
 *
 * Either way the relay is configured by per-vhost options (pvo) on the
 * protocol "wsrelay":
 *
 *     "config"            path of a wsrelay JSON config; its endpoints are
 *                         served on this vhost ("listen" is ignored), or
 *     "script" + "path"   one endpoint: the Lua script file and its URL path,
 *     "max_message_size"  optional, with "script"
 *
 * Both protocols ("wsrelay" and the upstream client "wsrelay-upstream") must
 * be in the vhost's protocol list. lws picks a WebSocket protocol by the
 * client's Sec-WebSocket-Protocol header (without one: the vhost's first
 * protocol, or the one with the pvo "default"); the relay's HTTP routes
 * (/healthz, /status, script routes) are reached through an lws mount with
 * origin_protocol LWSMPRO_CALLBACK and origin "wsrelay".
 */
#ifndef WSRELAY_WSRELAY_H
#define WSRELAY_WSRELAY_H

#include <libwebsockets.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The relay's protocols, terminated by an all-zero entry; *count (if not
 * NULL) receives the number before the terminator (2). Valid for the life of
 * the process. */
LWS_VISIBLE const struct lws_protocols *wsrelay_protocols(size_t *count);

/* "0.1.0" */
LWS_VISIBLE const char *wsrelay_version(void);

#ifdef __cplusplus
}
#endif

#endif /* WSRELAY_WSRELAY_H */
