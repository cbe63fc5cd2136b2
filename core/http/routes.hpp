// routes: the HTTP answers on every listener — the relay's own GET /healthz
// and GET /status, then the routes scripts declare in their `http` table.
// lws-free: the protocol writes whatever this returns.
#pragma once

#include "http/request.hpp"

#include <string>
#include <string_view>

namespace wsrelay::server {
class Relay;
}

namespace wsrelay::http {

Response handle(server::Relay& relay, const Request& request);

// Whether a script route would take this request (so the protocol knows to
// read a request body first).
bool is_script_route(server::Relay& relay, std::string_view method, std::string_view path);

// /status body: counters, channels, endpoints.
std::string status_json(server::Relay& relay);

// /metrics body: the same counters in the Prometheus text exposition format.
std::string metrics_text(server::Relay& relay);

}  // namespace wsrelay::http
