/*
 * wsrelay/plugin.h: the C ABI of wsrelay extension plugins (class "wsrelay_plugin").
 *
 * An extension plugin is a shared object that exports one
 *
 *     WSRELAY_PLUGIN_EXPORT(<base>) = { WSRELAY_PLUGIN_HEADER("<name>"), ... };
 *
 * where <base> is what libwebsockets derives from the file name: everything
 * after the first '_' or '-', cut at the first '.' (libwsrelay_jwt.so exports
 * "jwt"). The lws plugin header comes first, so lws_plugins_init() loads it
 * like any lws plugin; the rest is this file's versioned table of hooks:
 *
 *   - Lua modules:   require "relay.<module>" in a script (also relay.<module>)
 *   - filters:       before_message / after_message, around the script's handler
 *   - auth providers: relay.auth(token [, provider]) in a script
 *
 * A plugin reaches the relay ONLY through the wsrelay_api table handed to its
 * create() hook: send, publish, close, session user and attributes, settings,
 * log. It never links against or includes the relay's internals, so it keeps
 * working across relay releases that keep WSRELAY_PLUGIN_ABI_VERSION.
 *
 * ABI rule: the relay loads a plugin only if its abi_version equals the
 * relay's WSRELAY_PLUGIN_ABI_VERSION. Any change to a struct or a function
 * signature of this file increments the version; nothing is ever reordered
 * within a version. A refused plugin is a start error naming the file and
 * both versions.
 *
 * Threading: every hook and every API call runs on the relay's one event-loop
 * thread. Nothing is called concurrently; nothing may be called from another
 * thread.
 */
#ifndef WSRELAY_PLUGIN_H
#define WSRELAY_PLUGIN_H

#include <libwebsockets.h>
#include <wsrelay/plugin_api.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct wsrelay_plugin {
  lws_plugin_header_t hdr;  /* { "<name>", WSRELAY_PLUGIN_CLASS, LWS_PLUGIN_API_MAGIC } */
  unsigned int abi_version; /* WSRELAY_PLUGIN_ABI_VERSION at build time */
  const char *description;  /* one line, for logs and docs */

  /* One instance per endpoint script that enables the plugin. create() gets
   * the API table, the host handle and the plugin's options from the config
   * ("{}" if none) as JSON. Returns 0 and sets *state (may stay NULL), or
   * non-zero after writing a reason into error (error_len bytes, NUL
   * included): the relay then refuses to start. May be NULL. */
  int (*create)(const wsrelay_api *api, wsrelay_host *host, const char *options_json, void **state,
                char *error, size_t error_len);
  void (*destroy)(void *state); /* may be NULL */

  const wsrelay_module *modules;
  int count_modules;

  /* Called for every complete client message before the script sees it, in
   * the order plugins are enabled. May be NULL. */
  int (*before_message)(void *state, const wsrelay_message *message);
  /* Called after the script's handler ran for a message no filter dropped.
   * May be NULL. */
  void (*after_message)(void *state, const wsrelay_message *message);

  const wsrelay_auth_provider *auth_providers;
  int count_auth_providers;
} wsrelay_plugin;

#define WSRELAY_PLUGIN_HEADER(name) {(name), WSRELAY_PLUGIN_CLASS, LWS_PLUGIN_API_MAGIC}

/*
 * WSRELAY_PLUGIN_EXPORT(base) declares the exported plugin object. Built as a
 * shared object it is the visible symbol <base> that lws looks up; built with
 * LWS_PLUGIN_STATIC (linked into the relay) it is wsrelay_static_<base>
 * instead, so a static copy never clashes with a loaded one.
 */
#ifdef __cplusplus
#define WSRELAY_PLUGIN_LINKAGE_ extern "C"
#else
#define WSRELAY_PLUGIN_LINKAGE_ extern
#endif
#if defined(LWS_PLUGIN_STATIC)
#define WSRELAY_PLUGIN_EXPORT(base) \
  WSRELAY_PLUGIN_LINKAGE_ const wsrelay_plugin wsrelay_static_##base; \
  const wsrelay_plugin wsrelay_static_##base
#else
#define WSRELAY_PLUGIN_EXPORT(base) \
  WSRELAY_PLUGIN_LINKAGE_ LWS_VISIBLE const wsrelay_plugin base; \
  const wsrelay_plugin base
#endif

#ifdef __cplusplus
}
#endif

#endif /* WSRELAY_PLUGIN_H */
