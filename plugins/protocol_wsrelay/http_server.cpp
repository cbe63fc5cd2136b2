// http_server: the relay's HTTP answers over lws — the request read from
// lws's parsed head, its body collected, the reply's head and body written.
#include "protocol_wsrelay/adapter.hpp"

#include "http/handshake.hpp"

#include "http/request_head.hpp"
#include "server/http_routes.hpp"
#include "util/log.hpp"

#include <cstdlib>

namespace wsrelay::plugin {

std::string header(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string value(static_cast<std::size_t>(len) + 1, '\0');
  if (lws_hdr_copy(wsi, value.data(), len + 1, token) < 0) return {};
  value.resize(static_cast<std::size_t>(len));
  return value;
}

std::vector<std::string> header_fragments(lws* wsi, lws_token_indexes token) {
  std::vector<std::string> values;
  // lws keeps each occurrence of a header as one fragment, in order.
  for (int i = 0; i < 64; ++i) {
    const int len = lws_hdr_fragment_length(wsi, token, i);
    std::string value(static_cast<std::size_t>(len > 0 ? len : 0) + 1, '\0');
    if (lws_hdr_copy_fragment(wsi, value.data(), static_cast<int>(value.size()), token, i) < 0) break;
    value.resize(value.size() - 1);
    values.push_back(std::move(value));
  }
  return values;
}

http::RequestHead read_head(lws* wsi) {
  http::RequestHead head;
  // Inside an HTTP/2 connection there is no request line (and no smuggling
  // by framing: h2 frames each stream).
  if (lws_get_network_wsi(wsi) == wsi) head.version = header(wsi, WSI_TOKEN_HTTP);
  head.content_length = header_fragments(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  head.transfer_encoding = header_fragments(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_KEY) > 0) head.websocket_key = header(wsi, WSI_TOKEN_KEY);
  if (lws_hdr_total_length(wsi, WSI_TOKEN_VERSION) > 0) head.websocket_version = header(wsi, WSI_TOKEN_VERSION);
  return head;
}

// Written by hand: lws_return_http_status answers an upgrade request with an
// HTTP/1.0 status line, which WebSocket clients reject as malformed instead
// of reporting the status; and the connection must close after it.
int write_refusal(lws* wsi, int status, const std::string& body,
                  const std::vector<std::pair<std::string, std::string>>& headers) {
  const std::string text = body + "\n";
  std::string response = "HTTP/1.1 " + std::to_string(status) + " " + http::reason_phrase(status) +
                         "\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: " +
                         std::to_string(text.size()) + "\r\nconnection: close\r\n";
  for (const auto& [name, value] : headers) response += name + ": " + value + "\r\n";
  response += "\r\n" + text;
  std::string buffer(LWS_PRE, '\0');
  buffer += response;
  lws_write(wsi, reinterpret_cast<unsigned char*>(buffer.data()) + LWS_PRE, response.size(), LWS_WRITE_HTTP_HEADERS);
  return 1;
}

std::string peer_address(lws* wsi) {
  char name[64] = {0};
  lws_get_peer_simple(wsi, name, sizeof name);
  std::string address = name;
  // IPv4 clients arrive on the dual-stack socket as ::ffff:a.b.c.d.
  if (address.rfind("::ffff:", 0) == 0 && address.find('.') != std::string::npos) address.erase(0, 7);
  return address;
}


// Status line and headers; the body follows from HTTP_WRITEABLE.
int write_http_headers(lws* wsi, const HttpReply& reply) {
  unsigned char buffer[LWS_PRE + 2048];
  unsigned char* start = buffer + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = buffer + sizeof buffer - 1;
  if (lws_add_http_common_headers(wsi, static_cast<unsigned int>(reply.status), reply.content_type.c_str(),
                                  reply.body.size() - LWS_PRE, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>("no-store"), 8, &p, end)) {
    return 1;
  }
  for (const auto& [name, value] : reply.extra_headers) {
    const std::string field = name + ":";
    if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(field.c_str()),
                                    reinterpret_cast<const unsigned char*>(value.data()),
                                    static_cast<int>(value.size()), &p, end)) {
      return 1;
    }
  }
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return 1;
  lws_callback_on_writable(wsi);
  return 0;
}

std::string method_of(lws* wsi) {
  static const std::pair<lws_token_indexes, const char*> kMethods[] = {
      {WSI_TOKEN_GET_URI, "GET"},       {WSI_TOKEN_POST_URI, "POST"},     {WSI_TOKEN_HEAD_URI, "HEAD"},
      {WSI_TOKEN_PUT_URI, "PUT"},       {WSI_TOKEN_DELETE_URI, "DELETE"}, {WSI_TOKEN_PATCH_URI, "PATCH"},
      {WSI_TOKEN_OPTIONS_URI, "OPTIONS"}};
  for (const auto& [token, name] : kMethods) {
    if (lws_hdr_total_length(wsi, token) > 0) return name;
  }
  return "OTHER";
}

void respond(lws* wsi, PerSession* pss) {
  HttpReply& reply = *pss->http;
  if (reply.body_too_large) {
    reply.status = 413;
    reply.content_type = "application/json";
    reply.body.assign(LWS_PRE, '\0');
    reply.body += R"({"error":"too_large","message":"request body larger than )" + std::to_string(kMaxHttpBody) +
                  R"( bytes"})";
    reply.close_after = true;
    return;
  }
  HttpReply* target = &reply;
  server::answer_http(*relay_of(wsi), reply.request, [wsi, target, alive = reply.alive](http::Response response) {
    if (!*alive) return;  // the client left while a script route waited
    target->status = response.status;
    target->content_type = response.content_type;
    target->extra_headers = response.headers;
    target->body.assign(LWS_PRE, '\0');
    target->body += response.body;
    target->ready = true;
    if (target->deferred) lws_callback_on_writable(wsi);
  });
}

// The answer's headers now, or (not in yet) from WRITEABLE once it is.
int start_answer(lws* wsi, HttpReply& reply) {
  if (reply.ready || reply.body_too_large) return write_http_headers(wsi, reply);
  reply.deferred = true;
  return 0;
}

int on_http(lws* wsi, PerSession* pss, const char* uri) {
  // A body framed two ways, or not framed at all, would have lws read the
  // rest as the next request (request smuggling): refused, and closed.
  if (const auto refusal = http::check_framing(read_head(wsi))) {
    log::info("refused HTTP request: " + refusal->reason + " from " + peer_address(wsi));
    return write_refusal(wsi, refusal->status, refusal->reason, refusal->headers);
  }
  auto* reply = new HttpReply();
  pss->http = reply;
  http::Request& req = reply->request;
  req.method = method_of(wsi);
  req.path = uri != nullptr ? uri : "";
  req.query = http::encode_query(header_fragments(wsi, WSI_TOKEN_HTTP_URI_ARGS));
  req.remote = peer_address(wsi);
  // The headers a WebSocket script sees (http/handshake.hpp), and the body's type.
  req.headers = handshake_headers(wsi, {});
  if (std::string type = header(wsi, WSI_TOKEN_HTTP_CONTENT_TYPE); !type.empty()) {
    req.headers.emplace_back("content-type", std::move(type));
  }
  reply->head_only = req.method == "HEAD";
  // A request with a body (POST, PUT...) is answered once lws has read the
  // body; answering earlier leaves lws waiting for it and the reply unsent.
  // (lws reports completion for an empty POST body but not for an empty PUT
  // body, so an empty body is answered at once.)
  const std::string length = header(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  if (req.method != "GET" && req.method != "HEAD" && !length.empty() && length != "0") {
    // A declared length far over the cap is answered 413 at once; the body
    // is never read and the connection closes after the reply.
    char* parse_end = nullptr;
    const unsigned long long declared = std::strtoull(length.c_str(), &parse_end, 10);
    if (parse_end != nullptr && *parse_end == '\0' && declared > kMaxDiscardedBody) {
      reply->body_too_large = true;
      respond(wsi, pss);
      return start_answer(wsi, *reply);
    }
    reply->awaiting_body = true;
    return 0;
  }
  respond(wsi, pss);
  return start_answer(wsi, *reply);
}

int on_http_body(PerSession* pss, const void* in, std::size_t len) {
  if (pss == nullptr || pss->http == nullptr) return -1;
  HttpReply& reply = *pss->http;
  if (reply.body_too_large) return 0;
  std::string& body = reply.request.body;
  if (body.size() + len > kMaxHttpBody) {
    // A body longer than it said, or chunked: drop what was read, keep
    // reading to the end, then answer 413.
    reply.body_too_large = true;
    body.clear();
    body.shrink_to_fit();
    return 0;
  }
  body.append(static_cast<const char*>(in), len);
  return 0;
}

int on_http_body_complete(lws* wsi, PerSession* pss) {
  if (pss == nullptr || pss->http == nullptr || !pss->http->awaiting_body) return 0;
  pss->http->awaiting_body = false;
  respond(wsi, pss);
  return start_answer(wsi, *pss->http);
}

int on_http_writeable(lws* wsi, PerSession* pss) {
  HttpReply* reply = pss->http;
  if (reply == nullptr || reply->awaiting_body || (reply->deferred && !reply->ready)) return 0;
  if (reply->deferred) {
    reply->deferred = false;
    return write_http_headers(wsi, *reply);  // the body follows at the next WRITEABLE
  }
  pss->http = nullptr;
  std::unique_ptr<HttpReply> owned(reply);
  const std::size_t size = reply->body.size() - LWS_PRE;
  if (!reply->head_only && size > 0) {
    auto* payload = reinterpret_cast<unsigned char*>(reply->body.data()) + LWS_PRE;
    if (lws_write(wsi, payload, size, LWS_WRITE_HTTP_FINAL) != static_cast<int>(size)) return 1;
  }
  if (reply->close_after) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

}  // namespace wsrelay::plugin
