// routes: the relay's own HTTP answers on every listener — GET /healthz and
// GET /status. lws-free: the protocol writes whatever this returns.
#pragma once

#include <string>
#include <string_view>

namespace wsrelay::server {
class Relay;
}

namespace wsrelay::http {

struct Response {
  int status = 404;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
};

Response handle(server::Relay& relay, std::string_view method, std::string_view path);

// /status body: counters, channels, endpoints.
std::string status_json(server::Relay& relay);

}  // namespace wsrelay::http
