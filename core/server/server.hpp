// server: the lws side of the relay — one lws context, one vhost per
// listener, the service loop, and a thread-safe stop.
// Owns: the lws context (destroyed before the Relay it points to), the
// keepalive policy. Uses: Relay (what is served), the wsrelay protocol.
#pragma once

#include "config/config.hpp"
#include "server/plugin_loader.hpp"
#include "server/relay.hpp"

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

struct lws_context;

namespace wsrelay::server {

class Server {
 public:
  // Loads scripts and opens every listener. On failure returns null with
  // every error found (script errors with file:line, bind errors with host:port).
  static std::unique_ptr<Server> create(const config::Config& config, std::vector<std::string>& errors);
  // What --check does: loads the plugins the config uses, checks every
  // listener's protocols and every script, without opening a socket.
  static bool check(const config::Config& config, std::vector<std::string>& errors);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves until stop(); returns 0.
  int run();
  // Safe from any thread and from a signal handler.
  void stop();
  // Reload every script at the next turn of the loop (SIGHUP). Same safety.
  void request_reload();
  // The watch timer's turn: reload if a watched script changed, re-arm.
  void poll_script_watch();

  // The bound ports, in listener order (resolves port 0 to the chosen one).
  const std::vector<int>& ports() const { return ports_; }
  Relay& relay() { return *relay_; }

 // lws-side state (keepalive policy, protocol table, drain timer); defined in server.cpp.
  struct Policy;

 private:
  Server() = default;
  struct ContextDeleter {
    void operator()(lws_context* c) const;
  };
  std::unique_ptr<PluginSet> plugins_;  // declared first: their code outlives the Relay and the context
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<lws_context, ContextDeleter> context_;  // declared after relay_: destroyed first
  std::vector<int> ports_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> reload_requested_{false};
  int inotify_fd_ = -1;
  std::vector<std::string> watched_names_;  // script file names watched for changes
  void check_script_changes();
  std::chrono::milliseconds drain_timeout_{3000};
  std::unique_ptr<Policy> policy_;
};

// Routes lws's own log lines into ours (errors and warnings; notices at debug).
void install_lws_logging();

}  // namespace wsrelay::server
