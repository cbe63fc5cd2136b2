#include "server/http_routes.hpp"

#include "http/static_files.hpp"
#include "server/relay.hpp"

namespace wsrelay::server {

bool is_script_route(Relay& relay, std::string_view method, std::string_view path) {
  for (const auto& ep : relay.endpoints()) {
    if (ep->engine->has_http_route(method, path)) return true;
  }
  return false;
}

namespace {

// The relay's own answers (everything but a script route): at once.
http::Response builtin_answer(Relay& relay, const http::Request& request) {
  if (request.path.rfind("/admin/", 0) == 0) return admin_route(relay, request);
  const std::string_view method = request.method;
  const std::string_view path = request.path;
  http::Response r;
  if (method != "GET" && method != "HEAD") {
    r.status = 405;
    r.body = "method not allowed\n";
    return r;
  }
  if (path == "/healthz") {
    r.status = 200;
    r.body = "ok";
  } else if (path == "/metrics") {
    r.status = 200;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_text(relay);
  } else if (path == "/status") {
    r.status = 200;
    r.content_type = "application/json";
    r.body = status_json(relay);
  } else if (!http::serve_static(relay.config().static_dir, std::string(path), r)) {
    r.status = 404;
    r.body = "not found\n";
  }
  return r;
}

}  // namespace

void answer_http(Relay& relay, const http::Request& request, std::function<void(http::Response)> done) {
  if (request.path.rfind("/admin/", 0) != 0) {
    // Script routes first: a dialect may answer its own paths (and methods).
    for (const auto& ep : relay.endpoints()) {
      if (ep->engine->has_http_route(request.method, request.path)) {
        ep->engine->handle_http(request, std::move(done));
        return;
      }
    }
  }
  done(builtin_answer(relay, request));
}

}  // namespace wsrelay::server
