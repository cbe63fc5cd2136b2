/*
 * wsrelay/plugin_api.h: the types and the API table of wsrelay extension
 * plugins, without libwebsockets. Plugins include <wsrelay/plugin.h>, which
 * includes this and adds the plugin object lws loads; the relay's Lua side
 * includes only this file.
 */
#ifndef WSRELAY_PLUGIN_API_H
#define WSRELAY_PLUGIN_API_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define WSRELAY_PLUGIN_CLASS "wsrelay_plugin"
#define WSRELAY_PLUGIN_ABI_VERSION 2u

/* Opaque handles. None of them may be kept beyond the call that gave it,
 * except wsrelay_host (valid until destroy()) and a session id string copied
 * by the plugin (look the session up again with api->find_session). */
typedef struct wsrelay_host wsrelay_host;       /* the relay endpoint this plugin instance serves */
typedef struct wsrelay_session wsrelay_session; /* one client connection */
typedef struct wsrelay_call wsrelay_call;       /* one call of a plugin's Lua function */
typedef struct wsrelay_auth wsrelay_auth;       /* the result of one authentication */

enum wsrelay_log_level {
  WSRELAY_LOG_ERROR = 0,
  WSRELAY_LOG_WARN = 1,
  WSRELAY_LOG_INFO = 2,
  WSRELAY_LOG_DEBUG = 3
};

/* Types of a Lua argument, as api->arg_type reports them. */
enum wsrelay_type {
  WSRELAY_TYPE_NONE = 0, /* no such argument */
  WSRELAY_TYPE_NIL,
  WSRELAY_TYPE_BOOLEAN,
  WSRELAY_TYPE_NUMBER,
  WSRELAY_TYPE_STRING,
  WSRELAY_TYPE_TABLE,
  WSRELAY_TYPE_SESSION,
  WSRELAY_TYPE_OTHER /* functions, coroutines, other userdata */
};

/* What api->send reports. */
enum wsrelay_send_result {
  WSRELAY_SEND_OK = 0,
  WSRELAY_SEND_QUEUE_FULL = 1, /* the client reads too slowly and is being closed */
  WSRELAY_SEND_CLOSED = 2,     /* the session is closing or gone */
  WSRELAY_SEND_INVALID = 3     /* bad arguments (NULL session, bad text) */
};

/* What before_message returns. */
enum wsrelay_filter_result {
  WSRELAY_FILTER_PASS = 0, /* hand the message on (to the next filter, then the script) */
  WSRELAY_FILTER_DROP = 1  /* stop here: no further filter, no script handler, no after_message */
};

/* One client message, as filters see it. data is not NUL-terminated. */
typedef struct wsrelay_message {
  wsrelay_session *session;
  const char *data;
  size_t len;
  int binary; /* 1 for a binary frame, 0 for text */
} wsrelay_message;

/*
 * The relay's side: one table for the life of the process. Strings returned
 * by the relay stay valid until the plugin's hook returns, unless noted.
 * Functions taking a wsrelay_call are only valid inside that call.
 */
typedef struct wsrelay_api {
  unsigned int abi_version; /* the relay's WSRELAY_PLUGIN_ABI_VERSION */
  unsigned int size;        /* sizeof(wsrelay_api) of the relay */

  /* ---- log and settings ---- */
  /* One log line, prefixed with the plugin's name. */
  void (*log)(wsrelay_host *host, int level, const char *message);
  /* A relay setting as text, or NULL if unknown. Keys: "jwt.secret",
   * "jwt.leeway", "jwt.audience", "jwt.issuer", "endpoint",
   * "max_message_size", "heartbeat.interval", "heartbeat.timeout".
   * The string stays valid until destroy(). */
  const char *(*setting)(wsrelay_host *host, const char *key);

  /* ---- sessions ---- */
  /* A session of this endpoint by id, or NULL. */
  wsrelay_session *(*find_session)(wsrelay_host *host, const char *id);
  const char *(*session_id)(wsrelay_session *session);
  /* The authenticated user, or NULL. */
  const char *(*session_user)(wsrelay_session *session);
  /* Sets (user != NULL) or clears (NULL) the session's user, as a script's
   * `session.user = ...` would. */
  void (*session_set_user)(wsrelay_session *session, const char *user);
  /* session.attrs[key] when it is a string (or a number, as text); else NULL.
   * *len receives its length if len is not NULL. */
  const char *(*session_attr)(wsrelay_host *host, wsrelay_session *session, const char *key, size_t *len);
  /* session.attrs[key] = value (a string of len bytes), or nil if value is
   * NULL. Returns 0 on success, -1 if the session is closed or memory ran out. */
  int (*session_set_attr)(wsrelay_host *host, wsrelay_session *session, const char *key, const char *value,
                          size_t len);
  /* Queues one frame to the session (text must be valid UTF-8). */
  int (*send)(wsrelay_session *session, const char *data, size_t len, int binary);
  /* Closes after what is queued (codes as for session:close in Lua). */
  void (*close)(wsrelay_session *session, int code, const char *reason);
  /* Publishes one text frame to a channel of this relay; exclude may be NULL.
   * Returns the number of subscribers it was queued to. */
  size_t (*publish)(wsrelay_host *host, const char *channel, const char *data, size_t len,
                    wsrelay_session *exclude);

  /* ---- Lua function calls (modules) ---- */
  int (*arg_count)(wsrelay_call *call);
  int (*arg_type)(wsrelay_call *call, int index); /* index from 1 */
  /* A string argument (not a number: no conversion), or NULL. */
  const char *(*arg_string)(wsrelay_call *call, int index, size_t *len);
  double (*arg_number)(wsrelay_call *call, int index);
  int (*arg_boolean)(wsrelay_call *call, int index); /* Lua truthiness */
  /* A table argument encoded as JSON (valid until the call returns), or NULL
   * with the reason in the call's error (api->error is not needed then). */
  const char *(*arg_json)(wsrelay_call *call, int index, size_t *len);
  wsrelay_session *(*arg_session)(wsrelay_call *call, int index);
  /* Results, in order; the function returns how many it pushed. */
  void (*push_nil)(wsrelay_call *call);
  void (*push_boolean)(wsrelay_call *call, int value);
  void (*push_number)(wsrelay_call *call, double value);
  void (*push_string)(wsrelay_call *call, const char *data, size_t len);
  /* A JSON text, decoded into a Lua value (objects become tables). Returns 0,
   * or -1 if the text is not valid JSON (nothing is pushed then). */
  int (*push_json)(wsrelay_call *call, const char *json, size_t len);
  /* Raises a Lua error with this message once the function returns; the
   * function must then return -1. For wrong arguments: operational failures
   * are `nil, reason` results instead. */
  void (*error)(wsrelay_call *call, const char *message);
  /* The host the call runs for (its settings, sessions, channels). */
  wsrelay_host *(*call_host)(wsrelay_call *call);

  /* ---- auth results ---- */
  void (*auth_accept)(wsrelay_auth *auth, const char *user, const char *claims_json);
  void (*auth_reject)(wsrelay_auth *auth, const char *reason);

  /* ---- tokens (ABI 2) ---- */
  /* Verifies a JSON Web Token by the relay's own rules and settings
   * ("jwt.secret", "jwt.leeway", "jwt.audience", "jwt.issuer"): the same
   * check as relay.jwt.verify, for plugins that authenticate with tokens.
   * Returns 1 with *claims_json (the payload, a JSON object) and *subject
   * (its "sub", "" if none), or 0 with *error naming why it was refused
   * ("token expired", "malformed token", ...). The strings stay valid until
   * the next verify_token call for this host or until the hook returns. */
  int (*verify_token)(wsrelay_host *host, const char *token, size_t len, const char **claims_json,
                      const char **subject, const char **error);
} wsrelay_api;

/* A Lua function of a module: returns the number of results pushed, or -1
 * after api->error. `state` is what create() stored. */
typedef int (*wsrelay_function)(void *state, wsrelay_call *call);

typedef struct wsrelay_function_reg {
  const char *name;
  wsrelay_function function;
} wsrelay_function_reg;

/* `require "relay.<name>"` returns a table of these functions. name matches
 * [a-z][a-z0-9_]* and must not be a core name of the relay table. */
typedef struct wsrelay_module {
  const char *name;
  const wsrelay_function_reg *functions; /* terminated by {NULL, NULL} */
} wsrelay_module;

/* relay.auth(token, "<name>") calls this. Call api->auth_accept or
 * api->auth_reject once (no call counts as a rejection). */
typedef void (*wsrelay_authenticate)(void *state, const char *token, size_t len, wsrelay_auth *auth);

typedef struct wsrelay_auth_provider {
  const char *name;
  wsrelay_authenticate authenticate;
} wsrelay_auth_provider;

#ifdef __cplusplus
}
#endif

#endif /* WSRELAY_PLUGIN_API_H */
