// wsrelay: the command line — parse flags, load the config (or the built-in
// default), optionally only check it, then serve until SIGINT/SIGTERM.
#include "config/config.hpp"
#include "server/server.hpp"
#include "util/log.hpp"

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

namespace {

const char* const kUsage =
    "Usage: wsrelay [--config FILE] [--host ADDR] [--port N] [--check]\n"
    "               [--log-level error|warn|info|debug] [--log-format text|json]\n"
    "               [--version] [--help]\n"
    "\n"
    "A WebSocket relay: clients connect, authenticate, subscribe to channels and\n"
    "chat; every message is routed by a Lua script.\n"
    "\n"
    "  --config FILE     JSON config (see docs/configuration.md). Without it: the\n"
    "                    built-in default, 127.0.0.1:8000, endpoint /ws routed by\n"
    "                    the built-in standard.lua.\n"
    "  --host ADDR       listen address, overriding the config's first listener\n"
    "  --port N          listen port (0 = any free port), overriding the same\n"
    "  --check           validate the config and every script, print each error\n"
    "                    with its place, exit 0 if all is well, 1 otherwise\n"
    "  --log-level L     error, warn, info (default) or debug; overrides the config\n"
    "  --log-format F    text (default) or json: one JSON object per line\n"
    "  --version         print the version and exit\n"
    "  --help            print this help and exit\n"
    "\n"
    "Environment:\n"
    "  WSRELAY_JWT_SECRET     HS256 secret for auth tokens, when the config has no\n"
    "                         jwt.secret; unset: development mode, where the token\n"
    "                         itself is the user name\n"
    "  WSRELAY_ADMIN_TOKEN    bearer token of the /admin/* routes, when the config\n"
    "                         has no admin_token; unset: every admin call gets 401\n"
    "  OPENAI_API_KEY         without --config: adds the demo's /assistant endpoint;\n"
    "                         the OpenAI key of the shipped OpenAI example configs\n"
    "                         (they do not start without it)\n"
    "  WSRELAY_ASSISTANT_URL  the /assistant endpoint's upstream (default\n"
    "                         wss://api.openai.com/v1/realtime?model=gpt-realtime)\n"
    "  OPENAI_REALTIME_URL    the example configs' upstream URL (same default)\n"
    "  WSRELAY_HOST           listen address of the shipped example configs\n"
    "  WSRELAY_BACKEND_URL    the backend-proxy example's FastAPI app (default\n"
    "                         http://127.0.0.1:8080)\n"
    "Any ${NAME} or ${NAME:-default} in a config string is read from the\n"
    "environment.\n";

struct Options {
  std::optional<std::string> config;
  std::optional<std::string> host;
  std::optional<int> port;
  std::optional<std::string> log_level;
  bool check = false;
};

wsrelay::server::Server* g_server = nullptr;

void on_signal(int) {
  if (g_server != nullptr) g_server->stop();
}

void on_sighup(int) {
  if (g_server != nullptr) g_server->request_reload();
}

int usage_error(const std::string& message) {
  std::fprintf(stderr, "wsrelay: %s\n\n%s", message.c_str(), kUsage);
  return 2;
}

bool parse_port(const char* text, int& port) {
  char* end = nullptr;
  errno = 0;
  const long value = std::strtol(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || value < 0 || value > 65535) return false;
  port = static_cast<int>(value);
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&](const char* flag) -> const char* {
      if (i + 1 >= argc) return nullptr;
      (void)flag;
      return argv[++i];
    };
    if (arg == "--help" || arg == "-h") {
      std::fputs(kUsage, stdout);
      return 0;
    } else if (arg == "--version") {
      std::printf("wsrelay %s\n", WSRELAY_VERSION);
      return 0;
    } else if (arg == "--check") {
      options.check = true;
    } else if (arg == "--log-format") {
      if (i + 1 >= argc) return usage_error("--log-format needs a value");
      const std::string format = argv[++i];
      if (format == "json") {
        wsrelay::log::set_format(wsrelay::log::Format::Json);
      } else if (format != "text") {
        return usage_error("--log-format: expected text or json, got '" + format + "'");
      }
    } else if (arg == "--config" || arg == "--host" || arg == "--port" || arg == "--log-level") {
      const char* v = value(arg.c_str());
      if (v == nullptr) return usage_error(arg + " needs a value");
      if (arg == "--config") options.config = v;
      if (arg == "--host") options.host = v;
      if (arg == "--log-level") options.log_level = v;
      if (arg == "--port") {
        int port = 0;
        if (!parse_port(v, port)) return usage_error("--port: expected an integer 0..65535, got '" + std::string(v) + "'");
        options.port = port;
      }
    } else {
      return usage_error("unknown argument '" + arg + "'");
    }
  }

  namespace config = wsrelay::config;
  const config::EnvLookup env = config::process_env();
  config::Config cfg;
  if (options.config) {
    config::LoadResult loaded = config::load_file(*options.config, env);
    if (!loaded.config) {
      for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.c_str());
      if (!options.check) std::fprintf(stderr, "wsrelay: not started: the config has errors\n");
      return 1;
    }
    cfg = std::move(*loaded.config);
  } else {
    config::LoadResult loaded = config::load_default(env);
    if (!loaded.config) {
      for (const auto& e : loaded.errors) std::fprintf(stderr, "%s\n", e.c_str());
      if (!options.check) std::fprintf(stderr, "wsrelay: not started: the built-in config has errors\n");
      return 1;
    }
    cfg = std::move(*loaded.config);
  }
  if (options.host) cfg.listeners.front().host = *options.host;
  if (options.port) cfg.listeners.front().port = *options.port;
  if (options.log_level) cfg.log_level = *options.log_level;
  const auto level = wsrelay::log::parse_level(cfg.log_level);
  if (!level) return usage_error("--log-level: expected error, warn, info or debug");
  wsrelay::log::set_level(*level);

  if (options.check) {
    std::vector<std::string> errors;
    const bool ok = wsrelay::server::Server::check(cfg, errors);
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    if (!ok) return 1;
    std::printf("%s: ok (%zu endpoint%s)\n", cfg.source.c_str(), cfg.endpoints.size(),
                cfg.endpoints.size() == 1 ? "" : "s");
    return 0;
  }

  std::signal(SIGPIPE, SIG_IGN);
  std::vector<std::string> errors;
  auto server = wsrelay::server::Server::create(cfg, errors);
  if (!server) {
    for (const auto& e : errors) std::fprintf(stderr, "%s\n", e.c_str());
    std::fprintf(stderr, "wsrelay: not started\n");
    return 1;
  }
  if (cfg.jwt.secret.empty() && wsrelay::server::uses_jwt(cfg)) {
    wsrelay::log::warn("WSRELAY_JWT_SECRET is not set: development mode, auth tokens are taken as user names");
  }
  for (std::size_t i = 0; i < cfg.listeners.size(); ++i) {
    const auto& listener = cfg.listeners[i];
    const int port = server->ports()[i];
    std::string endpoints;
    for (const auto& ep : cfg.endpoints) {
      endpoints += " " + ep.path + " (" +
                   (ep.script_path.empty() ? std::string("built-in standard.lua") : ep.script_name) + ")";
    }
    const bool ipv6 = listener.host.find(':') != std::string::npos;
    const std::string host = ipv6 ? "[" + listener.host + "]" : listener.host;
    const char* scheme = listener.tls_cert.empty() ? "ws://" : "wss://";
    wsrelay::log::info(std::string("listening on ") + scheme + host + ":" + std::to_string(port) + " endpoints:" + endpoints);
  }
  if (!options.config && cfg.endpoints.size() == 1) {
    wsrelay::log::info("the demo's assistant (/assistant) is off: set OPENAI_API_KEY to turn it on");
  }
  g_server = server.get();
  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  struct sigaction hup;
  std::memset(&hup, 0, sizeof hup);
  hup.sa_handler = on_sighup;
  sigaction(SIGHUP, &hup, nullptr);
  const int rc = server->run();
  wsrelay::log::info("shutting down");
  g_server = nullptr;
  server.reset();
  return rc;
}
