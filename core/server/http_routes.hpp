// http_routes: the relay's HTTP answers on every listener — the routes
// scripts declare in their `http` table first, then GET /healthz, /status,
// /metrics, the operator's /admin/* and the `static` folder. lws-free: the
// protocol writes whatever these return.
#pragma once

#include "http/request.hpp"

#include <functional>
#include <string>
#include <string_view>

namespace wsrelay::server {

class Relay;

// The answer goes to done: at once, or later (a script route that waits).
void answer_http(Relay& relay, const http::Request& request, std::function<void(http::Response)> done);

// Whether a script route would take this request (so the protocol knows to
// read a request body first).
bool is_script_route(Relay& relay, std::string_view method, std::string_view path);

// /status body: counters, channels, endpoints.
std::string status_json(Relay& relay);

// /metrics body: the same counters in the Prometheus text exposition format.
std::string metrics_text(Relay& relay);

// /admin/*: operator actions, behind the admin token (admin_routes.cpp).
http::Response admin_route(Relay& relay, const http::Request& request);

}  // namespace wsrelay::server
