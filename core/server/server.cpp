#include "server/server.hpp"

#include "server/hosted.hpp"

#include <wsrelay/wsrelay.h>
#include "upstream/upstream_client.hpp"
#include "util/log.hpp"

#include <libwebsockets.h>

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <chrono>
#include <deque>
#include <filesystem>
#include <optional>
#include <cstring>

namespace wsrelay::server {

struct Server::Policy {
  lws_sorted_usec_list_t drain_tick{};  // first member: the tick finds its Policy from it
  struct WatchTimer {
    lws_sorted_usec_list_t sul;  // first member: the tick finds its Server from it
    Server* server;
  } watch_timer{{}, nullptr};
  lws_retry_bo_t retry{};  // all zero: no per-connection lws validity timer
  // Per listener: the relay, its upstream client, then the plugin protocols
  // the listener names. lws copies these; it keeps pointers to the pvos.
  std::vector<std::vector<lws_protocols>> vhost_protocols;
  std::deque<lws_protocol_vhost_options> pvos;
  std::deque<std::string> vhost_names;
  lws_context* context = nullptr;
};

namespace {
constexpr lws_usec_t kWatchInterval = 250 * LWS_US_PER_MS;

void watch_tick(lws_sorted_usec_list_t* sul) {
  Server* server = reinterpret_cast<Server::Policy::WatchTimer*>(sul)->server;
  server->poll_script_watch();
}
}  // namespace

void Server::ContextDeleter::operator()(lws_context* c) const { lws_context_destroy(c); }

namespace {

constexpr const char* kSystemCaBundle = "/etc/ssl/certs/ca-certificates.crt";

void lws_log_line(int level, const char* line) {
  std::string text(line);
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  text = "lws: " + text;
  if (level & LLL_ERR) {
    log::error(text);
  } else if (level & LLL_WARN) {
    log::warn(text);
  } else {
    log::debug(text);
  }
}

// What to hand lws as the vhost's "iface". lws 4.1 binds an IPv6 socket and
// reads iface as an interface name or an IPv6 address: given "127.0.0.1" it
// silently binds every interface. So names are resolved here and IPv4
// addresses passed in their IPv4-mapped form (::ffff:a.b.c.d), which binds
// exactly that address. Empty optional: all interfaces.
bool bind_address_for(const std::string& host, std::optional<std::string>& iface, std::string& error) {
  if (host.empty() || host == "0.0.0.0" || host == "*" || host == "::") {
    iface.reset();
    return true;
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const int rc = getaddrinfo(host.c_str(), nullptr, &hints, &found);
  if (rc != 0 || found == nullptr) {
    error = "cannot resolve listen host '" + host + "': " + gai_strerror(rc);
    return false;
  }
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, freeaddrinfo);
  // Prefer IPv4 for names like "localhost" that resolve both ways: it is what
  // clients typing 127.0.0.1 expect.
  const addrinfo* pick = found;
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    if (a->ai_family == AF_INET) {
      pick = a;
      break;
    }
  }
  char text[INET6_ADDRSTRLEN] = {0};
  if (pick->ai_family == AF_INET) {
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(pick->ai_addr)->sin_addr, text, sizeof text);
    iface = std::string("::ffff:") + text;
  } else {
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(pick->ai_addr)->sin6_addr, text, sizeof text);
    iface = std::string(text);
  }
  return true;
}

}  // namespace

void install_lws_logging() {
  int levels = LLL_ERR | LLL_WARN;
  if (log::enabled(log::Level::Debug)) levels |= LLL_NOTICE;
  lws_set_log_level(levels, lws_log_line);
}

namespace {

// Every listener's plugin protocols, found in the loaded plugins.
bool resolve_protocols(const config::Config& config, const PluginSet* plugins,
                       std::vector<std::vector<const lws_protocols*>>& out, std::vector<std::string>& errors) {
  bool ok = true;
  for (const auto& listener : config.listeners) {
    out.emplace_back();
    for (const auto& p : listener.protocols) {
      const lws_protocols* found = plugins != nullptr ? plugins->protocol(p.name) : nullptr;
      if (found == nullptr) {
        errors.push_back(extension::plugin_not_found(
            config.source + ": " + p.key_path, "protocol plugin provides", p.name,
            plugins != nullptr ? plugins->describe_dirs() : std::string("plugins not loaded"),
            plugins != nullptr ? plugins->protocol_names() : std::vector<std::string>{}, "protocols found"));
        ok = false;
        continue;
      }
      out.back().push_back(found);
    }
  }
  return ok;
}

std::unique_ptr<PluginSet> load_plugins_if_needed(const config::Config& config, std::vector<std::string>& errors,
                                                  bool& ok) {
  ok = true;
  if (!PluginSet::needed(config)) return nullptr;
  auto plugins = PluginSet::load(config, errors);
  ok = plugins != nullptr;
  return plugins;
}

}  // namespace

bool Server::check(const config::Config& config, std::vector<std::string>& errors) {
  install_lws_logging();
  bool ok = true;
  auto plugins = load_plugins_if_needed(config, errors, ok);
  if (!ok) return false;
  std::vector<std::vector<const lws_protocols*>> protocols;
  ok = resolve_protocols(config, plugins.get(), protocols, errors);
  return Relay::create(config, errors, plugins.get()) != nullptr && ok;
}

std::unique_ptr<Server> Server::create(const config::Config& config, std::vector<std::string>& errors) {
  std::unique_ptr<Server> server(new Server());
  // Secrets never appear in a log line, whoever writes it.
  config::register_secrets(config);
  install_lws_logging();  // before lws_plugins_init, which logs each file it loads
  bool plugins_ok = true;
  server->plugins_ = load_plugins_if_needed(config, errors, plugins_ok);
  if (!plugins_ok) return nullptr;
  std::vector<std::vector<const lws_protocols*>> plugin_protocols;
  if (!resolve_protocols(config, server->plugins_.get(), plugin_protocols, errors)) return nullptr;
  server->relay_ = Relay::create(config, errors, server->plugins_.get());
  if (!server->relay_) return nullptr;

  server->policy_ = std::make_unique<Policy>();
  Policy& policy = *server->policy_;
  // No lws validity timer: keepalive is the protocol's one sweep per vhost
  // (heartbeat.interval / heartbeat.timeout, plugins/protocol_wsrelay). Left
  // unset, a vhost would get lws's default policy (ping at 300 s, hang up at
  // 310 s): one timer per connection in a sorted list lws inserts into by
  // walking it, which made opening N connections O(N²). A policy whose
  // secs_since_valid_hangup is 0 arms none.
  policy.retry = lws_retry_bo_t{};
  // The relay's protocols as any lws host gets them (<wsrelay/wsrelay.h>),
  // the relay entry's user pointer naming this server's Relay.
  std::size_t relay_protocol_count = 0;
  const lws_protocols* relay_protocols = wsrelay_protocols(&relay_protocol_count);
  lws_protocols relay_protocol = relay_protocols[0];
  relay_protocol.user = server->relay_.get();
  host_relay(*server->relay_);
  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    std::vector<lws_protocols> list = {relay_protocol};
    for (std::size_t p = 1; p < relay_protocol_count; ++p) list.push_back(relay_protocols[p]);
    for (const lws_protocols* p : plugin_protocols[i]) list.push_back(*p);
    list.push_back(lws_protocols{});
    policy.vhost_protocols.push_back(std::move(list));
  }

  bool uses_tls_upstream = false;
  for (const auto& ep : config.endpoints) uses_tls_upstream = uses_tls_upstream || (ep.upstream && ep.upstream->tls);
  bool uses_tls_listener = false;
  for (const auto& listener : config.listeners) uses_tls_listener = uses_tls_listener || !listener.tls_cert.empty();

  lws_context_creation_info info;
  std::memset(&info, 0, sizeof info);
  info.options = LWS_SERVER_OPTION_EXPLICIT_VHOSTS | LWS_SERVER_OPTION_VALIDATE_UTF8;
  // OpenSSL's library set-up (OPENSSL_init_ssl: its providers, error strings,
  // algorithm tables) only when a listener or an upstream uses TLS: on a plain
  // ws:// relay it was ~1 MB of heap and library pages for nothing. (JWT's
  // HMAC calls libcrypto directly, which sets itself up on first use.)
  if (uses_tls_upstream || uses_tls_listener) info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
  info.user = server->relay_.get();
  info.port = CONTEXT_PORT_NO_LISTEN;
  // A client that opens TCP and never finishes the upgrade (or trickles its
  // headers) is dropped after this long.
  info.timeout_secs = static_cast<unsigned int>(config.limits.handshake_timeout_s);
  info.max_http_header_data = static_cast<unsigned short>(config.limits.max_http_header_data);
  lws_context* context = lws_create_context(&info);
  if (context == nullptr) {
    errors.push_back("cannot create the libwebsockets context");
    return nullptr;
  }
  server->context_.reset(context);
  policy.context = context;

  for (std::size_t i = 0; i < config.listeners.size(); ++i) {
    const config::Listener& listener = config.listeners[i];
    lws_context_creation_info vinfo;
    std::memset(&vinfo, 0, sizeof vinfo);
    vinfo.port = listener.port;
    std::optional<std::string> iface;
    std::string resolve_error;
    if (!bind_address_for(listener.host, iface, resolve_error)) {
      errors.push_back(resolve_error);
      return nullptr;
    }
    // lws keeps the pointer (and reads it again at shutdown): the string lives
    // in the Policy, like the vhost names.
    if (iface) {
      policy.vhost_names.push_back(*iface);
      vinfo.iface = policy.vhost_names.back().c_str();
    } else {
      vinfo.iface = nullptr;
    }
    vinfo.protocols = policy.vhost_protocols[i].data();
    // Each plugin protocol's options: one pvo node per protocol, its options below.
    const lws_protocol_vhost_options* pvo_head = nullptr;
    // The Relay's copy of the config lives as long as the vhost.
    for (const auto& p : server->relay_->config().listeners[i].protocols) {
      const lws_protocol_vhost_options* options = nullptr;
      for (const auto& [name, value] : p.options) {
        policy.pvos.push_back({options, nullptr, name.c_str(), value.c_str()});
        options = &policy.pvos.back();
      }
      policy.pvos.push_back({pvo_head, options, p.name.c_str(), ""});
      pvo_head = &policy.pvos.back();
    }
    vinfo.pvo = pvo_head;
    vinfo.retry_and_idle_policy = &policy.retry;
    // lws keeps the pointer (lws_get_vhost_name, its log lines): the name lives in the policy.
    policy.vhost_names.push_back("wsrelay-" + std::to_string(i));
    vinfo.vhost_name = policy.vhost_names.back().c_str();
    vinfo.options = LWS_SERVER_OPTION_VALIDATE_UTF8;
    // TLS is set up on the vhost only when something uses it: a wss://
    // upstream or a TLS listener. Upstream wss:// links verify against the
    // system CAs (Debian's bundle; lws's compiled-in default folder does not
    // exist here). Parsing that bundle is most of the server's start-up
    // (~500 M instructions, ~1 MB) and is wasted on a plain ws:// relay.
    if (uses_tls_upstream || !listener.tls_cert.empty()) {
      vinfo.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
      if (access(kSystemCaBundle, R_OK) == 0) vinfo.client_ssl_ca_filepath = kSystemCaBundle;
    }
    if (!listener.tls_cert.empty()) {
      vinfo.ssl_cert_filepath = listener.tls_cert.c_str();
      vinfo.ssl_private_key_filepath = listener.tls_key.c_str();
    }
    vinfo.timeout_secs = static_cast<unsigned int>(config.limits.handshake_timeout_s);
    // lws bounds the time a connection may hold a header table while its
    // request trickles in by this one (default 10 s).
    vinfo.timeout_secs_ah_idle = config.limits.handshake_timeout_s;
    lws_vhost* vhost = lws_create_vhost(context, &vinfo);
    if (vhost == nullptr) {
      errors.push_back("cannot listen on " + listener.host + ":" + std::to_string(listener.port) +
                       " (address in use or not available)");
      return nullptr;
    }
    const int port = lws_get_vhost_listen_port(vhost);
    if (port <= 0) {
      errors.push_back("cannot listen on " + listener.host + ":" + std::to_string(listener.port) +
                       " (address not available on this machine?)");
      return nullptr;
    }
    server->ports_.push_back(port);
  }
  if (config.watch_scripts) {
    server->inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
    if (server->inotify_fd_ < 0) {
      log::warn("watch_scripts: inotify is not available; reload with SIGHUP instead");
    } else {
      for (const auto& ep : config.endpoints) {
        if (ep.script_path.empty()) continue;
        const std::filesystem::path script(ep.script_path);
        inotify_add_watch(server->inotify_fd_, script.parent_path().c_str(),
                          IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE);
        server->watched_names_.push_back(script.filename().string());
      }
      policy.watch_timer.server = server.get();
      lws_sul_schedule(context, 0, &policy.watch_timer.sul, watch_tick, kWatchInterval);
    }
  }
  return server;
}

void Server::poll_script_watch() {
  check_script_changes();
  lws_sul_schedule(context_.get(), 0, &policy_->watch_timer.sul, watch_tick, kWatchInterval);
}

// Editors save by writing in place or by writing a temp file and renaming it
// over the script, so the folder is watched, not the file.
void Server::check_script_changes() {
  if (inotify_fd_ < 0) return;
  alignas(inotify_event) char buffer[4096];
  bool changed = false;
  for (;;) {
    const ssize_t n = read(inotify_fd_, buffer, sizeof buffer);
    if (n <= 0) break;
    for (ssize_t at = 0; at < n;) {
      const auto* event = reinterpret_cast<const inotify_event*>(buffer + at);
      if (event->len > 0) {
        const std::string name = event->name;
        for (const auto& watched : watched_names_) changed = changed || watched == name;
      }
      at += static_cast<ssize_t>(sizeof(inotify_event) + event->len);
    }
  }
  if (changed) {
    log::info("a script file changed; reloading");
    relay_->reload_scripts();
  }
}

void Server::request_reload() {
  reload_requested_.store(true);
  if (context_) lws_cancel_service(context_.get());
}

Server::~Server() {
  // Closing every connection runs the protocol's CLOSED callbacks, which
  // still need the Relay: the context goes first.
  if (policy_) lws_sul_cancel(&policy_->watch_timer.sul);
  context_.reset();
  if (relay_) unhost_relay(*relay_);
  if (inotify_fd_ >= 0) close(inotify_fd_);
}

namespace {
// Wakes the service loop while draining so the deadline is checked even when
// no socket has anything to say.
void drain_tick(lws_sorted_usec_list_t* sul) {
  lws_context* context = reinterpret_cast<Server::Policy*>(sul)->context;
  lws_sul_schedule(context, 0, sul, drain_tick, 50 * LWS_US_PER_MS);
}
}  // namespace

int Server::run() {
  while (!stopping_.load()) {
    if (lws_service(context_.get(), 0) < 0) return 0;
    if (reload_requested_.exchange(false)) {
      log::info("SIGHUP: reloading scripts");
      relay_->reload_scripts();
    }
  }
  // Graceful stop: every client is told 1001 after what is already queued for
  // it, then the loop runs until they are gone or the drain time is up. Their
  // upstream links close too (a close frame, then the upstream's answer):
  // the loop also waits for those, so none is cut off mid-handshake or left
  // behind when the context goes.
  const std::size_t open = relay_->registry().size();
  if (open > 0) {
    log::info("closing " + std::to_string(open) + " connection(s) with 1001");
    relay_->registry().for_each([](session::Session& s) { s.close(1001, "server shutting down"); });
  }
  auto busy = [this] { return relay_->registry().size() > 0 || relay_->stats().upstream_links > 0; };
  if (busy()) {
    lws_sul_schedule(context_.get(), 0, &policy_->drain_tick, drain_tick, 50 * LWS_US_PER_MS);
    const auto deadline = std::chrono::steady_clock::now() + drain_timeout_;
    while (busy() && std::chrono::steady_clock::now() < deadline) {
      if (lws_service(context_.get(), 0) < 0) break;
    }
    lws_sul_cancel(&policy_->drain_tick);
  }
  return 0;
}

void Server::stop() {
  stopping_.store(true);
  if (context_) lws_cancel_service(context_.get());
}

}  // namespace wsrelay::server
