// config: the relay's JSON configuration file, parsed and fully validated.
//
// Owns: the config schema (keys, types, defaults, ranges), the error message
// format "<source>: <key.path>: <message>", and the built-in default config.
// Uses: cJSON for parsing, env_expand for "${VAR}" substitution in string
// values, std::filesystem to resolve and check endpoint script files.
//
// Errors are returned, never thrown, and every error in a file is collected so
// `wsrelay --check` can report them all in one run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/env_expand.hpp"
#include "pubsub/channel_options.hpp"

struct cJSON;  // <cjson/cJSON.h>

namespace wsrelay::config {

// A protocol from a protocol plugin that a listener serves beside the relay:
// "listen": {"protocols": ["wsrelay-echo", {"name": "x", "options": {...}}]}.
// Options become the protocol's per-vhost options (pvo), all as strings.
struct PluginProtocol {
  std::string name;
  std::vector<std::pair<std::string, std::string>> options;
  std::string key_path;  // "listen.protocols[0]", for errors found later
};

// An extension plugin enabled for every endpoint script:
// "extensions": ["name", {"name": "x", "options": {...}}].
struct ExtensionConfig {
  std::string name;
  std::string options_json = "{}";  // the "options" object as JSON
  std::string key_path;             // "extensions[0]"
};

struct Listener {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0 = ephemeral
  std::string tls_cert;  // PEM paths; both set = a wss:// / https:// listener
  std::string tls_key;
  std::vector<PluginProtocol> protocols;  // served beside the relay (and its upstream client)
};

// A per-connection rate for one message type: "limits": {"message_types":
// {"chat": {"per_second": 5, "burst": 10}}}. Checked after the message is
// decoded and before its handler runs, on top of messages_per_second.
struct MessageTypeRate {
  std::string type;
  double per_second = 0;
  int burst = 1;
};

// Protection limits (docs/security.md). 0 turns a rate or count limit off.
struct Limits {
  int max_connections = 10000;           // refused at the handshake with 503 beyond
  int max_connections_per_ip = 1000;
  double messages_per_second = 100;      // per connection, token bucket
  int message_burst = 200;
  double user_messages_per_second = 0;   // per authenticated user, across connections
  double ip_messages_per_second = 0;     // per client address, across connections
  int rate_limit_close_after = 50;       // rate-limited messages in a row before close 1008
  std::vector<MessageTypeRate> message_types;  // per connection and message type; none by default
  int max_subscriptions = 256;           // per session
  int max_channel_length = 128;
  std::size_t max_queue_bytes = 4u << 20;  // per session outbound queue
  std::string slow_consumer = "disconnect";  // or "drop_oldest"
  int handshake_timeout_s = 10;          // TCP open to completed upgrade
  // lws's budget for one request head (request line and headers): a head
  // past it is dropped. lws's own default (~4 KiB) closed on browsers with a
  // 6 KB cookie; 32 KiB holds a 16 KiB cookie and the usual rest. lws keeps
  // it in an unsigned short.
  int max_http_header_data = 32768;
  std::uint64_t script_instructions = 20'000'000;  // per handler call
  std::size_t script_memory_mb = 64;     // per endpoint script state
  // All channels' kept history together; past it the least recently
  // published streams are dropped (their epoch changes).
  std::size_t history_memory_mb = 64;
  // Reach (relay.after/every, relay.http.request; docs/security.md).
  int script_timers = 1000;              // live timers per endpoint script
  int http_requests = 256;               // outbound requests in flight, all scripts together
  int http_timeout_s = 10;               // a request's default timeout
  std::size_t http_response_bytes = 4u << 20;  // an answer's cap (headers and body)
  int waiting_messages = 64;             // per session, queued behind a handler that waits
};

struct Heartbeat {
  int interval_s = 25;  // ping interval told to clients
  int timeout_s = 60;   // idle time after which a connection is closed
};

struct Jwt {
  std::string secret;
  int leeway_s = 0;
  std::string audience;
  std::string issuer;
};

// An upstream WebSocket each session of the endpoint may own (one per
// client, never shared). Header values may hold secrets: they are never
// logged and never reach a client.
struct Upstream {
  std::string url;                 // as configured (after ${ENV} expansion)
  bool tls = false;                // wss://
  std::string host;
  int port = 0;
  std::string path = "/";          // path and query
  std::vector<std::pair<std::string, std::string>> headers;
  bool connect_on_open = true;     // "connect": "open" (default) or "lazy" (on first send)
  bool tls_insecure = false;       // accept self-signed certificates: for tests only
  std::size_t queue_limit = 256;   // messages held while connecting; beyond: upstream_busy
  std::string on_close = "close_client";  // "close_client" | "reconnect" | "keep"
  int retries = 5;                 // reconnect attempts before giving up (on_close = reconnect)
  int backoff_ms = 500;            // first reconnect delay, doubled each attempt
  int backoff_max_ms = 8000;
};

struct Endpoint {
  std::string path;            // "/ws", may contain "{name}" segments like "/api/v1/ws/{user_id}"
  std::string script_path;     // absolute path; EMPTY means the built-in standard script
  std::string script_name;     // as written in the config ("standard.lua"), or "<built-in standard.lua>"
  std::string options_json;    // the endpoint's free-form "options" object re-printed as JSON, "{}" if absent
  std::size_t max_message_size = 1048576;
  std::optional<Upstream> upstream;
  std::vector<std::string> allowed_origins;  // empty: any Origin (and none) accepted
  std::vector<std::string> handshake_headers;  // lower-case; kept beside the known ones (http/handshake.hpp)
};

struct Config {
  std::vector<Listener> listeners;  // at least one
  std::vector<Endpoint> endpoints;  // at least one
  Heartbeat heartbeat;
  Jwt jwt;
  std::string log_level = "info";     // error|warn|info|debug
  bool watch_scripts = false;         // reload a script when its file changes (inotify)
  std::string static_dir;             // files served over HTTP GET (e.g. the demo page); empty: none
  Limits limits;
  std::string admin_token;            // bearer token for /admin/*; from WSRELAY_ADMIN_TOKEN by default
  // Folders searched for plugins, absolute; empty and !plugin_dirs_set: the
  // installed plugin folder, then the build tree's (server/plugin_loader).
  std::vector<std::string> plugin_dirs;
  bool plugin_dirs_set = false;
  std::vector<ExtensionConfig> extensions;  // beyond the built-in ones (jwt)
  // What channels keep (history, presence, join/leave), first match wins;
  // none: every channel is plain.
  std::vector<pubsub::ChannelRule> channel_options;
  std::string source = "<built-in>";  // config file name used as the prefix of error messages
  std::string base_dir;               // folder of the config file (for relative paths)
};

struct LoadResult {
  std::optional<Config> config;     // set iff errors is empty
  std::vector<std::string> errors;  // every error found, each "config.json: endpoints[0].script: expected a string"
};

// Name shown as script_name for endpoints without a "script" key.
inline constexpr std::string_view kBuiltinScriptName = "<built-in standard.lua>";
// Environment variable supplying jwt.secret when the config does not set it.
inline constexpr std::string_view kJwtSecretEnv = "WSRELAY_JWT_SECRET";
// Upper bound of endpoints[].max_message_size (64 MiB).
inline constexpr std::size_t kMaxMessageSizeLimit = 64u * 1024u * 1024u;

// Parses config text. source_name prefixes errors (use the file name as the
// user gave it), base_dir resolves relative paths.
LoadResult parse(std::string_view text, const std::string& source_name, const std::string& base_dir,
                 const EnvLookup& env);

// One endpoint, given as the JSON object a config file's "endpoints" would
// hold (the built-in assistant, a host's pvo "script" + "path"), checked as
// a file's would be: errors read "<source_name>: endpoints[0].script: ...".
// Takes the object (a cJSON tree).
LoadResult parse_endpoint(cJSON* endpoint, const std::string& source_name, const std::string& base_dir,
                          const EnvLookup& env);

// Every secret a config holds (jwt.secret, admin_token, upstream header
// values), registered with the log so that no log line shows them.
void register_secrets(const Config& config);

// Reads and parses a file; read errors are also reported as LoadResult errors
// ("x.json: cannot read: No such file or directory"). base_dir becomes the
// absolute folder of `path`.
LoadResult load_file(const std::string& path, const EnvLookup& env);

// 127.0.0.1:8000, one endpoint "/ws" with the built-in script; jwt.secret from env.
Config default_config(const EnvLookup& env);

// The demo's assistant endpoint in the built-in config: the path, and the
// environment variables that turn it on (the key) and point it elsewhere.
inline constexpr std::string_view kAssistantPath = "/assistant";
inline constexpr std::string_view kAssistantKeyEnv = "OPENAI_API_KEY";
inline constexpr std::string_view kAssistantUrlEnv = "WSRELAY_ASSISTANT_URL";
inline constexpr std::string_view kAssistantDefaultUrl = "wss://api.openai.com/v1/realtime?model=gpt-realtime";

// What a plain `wsrelay` (no --config) serves: default_config(env), plus,
// when OPENAI_API_KEY is set, the endpoint /assistant running realtime.lua
// (examples/realtime-relay) with one upstream per client to
// WSRELAY_ASSISTANT_URL (default kAssistantDefaultUrl), text replies only.
// Errors (a bad URL, the script not found) are reported like a config file's.
LoadResult load_default(const EnvLookup& env);

}  // namespace wsrelay::config
