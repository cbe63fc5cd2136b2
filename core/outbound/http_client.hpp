// http_client: the scripts' outbound HTTP (relay.http.request), on libcurl's
// multi interface in one worker thread. The loop's thread starts a request
// and goes on; the answer comes back through loop::Completions and runs on
// the loop's thread. libcurl resolves names on its own threads (Debian's is
// built with the threaded resolver), so nothing here blocks the loop.
// Never includes lws or Lua.
#pragma once

#include "loop/completions.hpp"

#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace wsrelay::outbound {

using Headers = std::vector<std::pair<std::string, std::string>>;

struct HttpRequest {
  std::string method = "GET";
  std::string url;               // http:// or https:// only
  Headers headers;
  std::string body;
  long timeout_ms = 10000;       // the whole exchange, connect included
  std::size_t max_response_bytes = 4u << 20;
  int max_redirects = 0;         // 0: a 3xx is the answer
  bool tls_insecure = false;     // tests only: no certificate or name check
};

struct HttpResponse {
  // Empty when an answer came (any status); else why none did: "timeout",
  // "too large", "connect failed: ...", "resolve failed: ...", "tls: ...",
  // "closed mid-body: ...", "failed: ...".
  std::string error;
  int status = 0;
  Headers headers;               // names in lower case, in the order received
  std::string body;
};

class HttpClient {
 public:
  using Done = std::function<void(HttpResponse)>;

  explicit HttpClient(loop::Completions& completions);
  ~HttpClient();  // stops the worker: answers still in flight are dropped
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // The loop's thread. done runs later on the loop's thread, exactly once
  // (unless the client is destroyed first).
  void start(HttpRequest request, Done done);

  // Loop thread: started and not yet answered.
  std::size_t in_flight() const { return in_flight_; }

  struct Counters {
    std::uint64_t requests = 0;   // started
    std::uint64_t failures = 0;   // answered with an error (no HTTP answer)
    std::uint64_t timeouts = 0;   // of which timed out
  };
  const Counters& counters() const { return counters_; }

  // Internal to http_client.cpp (public so its free callbacks can name them).
  struct Pending;
  struct Worker;

 private:
  void finished(HttpResponse response, const Done& done);

  loop::Completions& completions_;
  std::unique_ptr<Worker> worker_;  // started with the first request
  std::size_t in_flight_ = 0;
  Counters counters_;
};

// Splits "http://host:port/path" far enough to refuse what libcurl must not
// see (another scheme, no host, control characters): empty when acceptable.
std::string url_problem(std::string_view url);

}  // namespace wsrelay::outbound
