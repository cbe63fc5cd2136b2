// job: one event for the script (a message, open, close, an upstream event, a
// timer), with what its handler and its error reply need. Internal to the
// script unit: dispatch.cpp runs jobs, calls.cpp suspends and resumes them.
#pragma once

#include "http/path_pattern.hpp"
#include "http/request.hpp"
#include "json/flat.hpp"
#include "json/json.hpp"
#include "session/session.hpp"

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace wsrelay::script {

class ScriptEngine;

// An http route's request, its route and who gets the answer (the
// transport's reply, which may be gone by then: its callback checks).
struct HttpRouteJob {
  http::Request request;
  std::string key;                 // "GET /path" as the script wrote it
  http::PathPattern::Params params;
  std::function<void(http::Response)> done;
  bool answered = false;
};

struct Job {
  ScriptEngine* engine = nullptr;
  session::Session* session = nullptr;  // null for a timer
  std::string_view data;          // the frame (points into owned_data once the job waits)
  std::string owned_data;
  bool binary = false;
  json::JsonPtr root;             // decoded frame (JSON mode), or null
  bool flat = false;              // decoded by the fast path instead: flat_object, no root
  json::FlatObject flat_object;
  std::size_t parse_error_at = 0;
  std::string parse_error;
  std::string error_code;         // set when an error reply is to be sent by C++
  std::string error_message;
  std::string_view handler_name;  // for logs
  std::string type_name;          // the message's type: handler_name may point into it
  // A handler runs without a protected call of its own: if it raises, the
  // error unwinds to the call's resume, which answers for it (handler_failed).
  bool in_handler = false;
  bool handler_has_msg = false;   // the decoded message goes to on_error too
  int msg_index = 0;              // the decoded message's stack slot while the handler runs
  int close_code = 0;
  bool upstream_failed = false;
  bool upstream_retrying = false;
  int timer_fn_ref = -2;          // a timer's callback (LUA_NOREF when none)
  std::uint64_t timer_id = 0;     // the timer whose callback this is
  std::shared_ptr<HttpRouteJob> http;  // set for an http route

  // Ready for the next job of a reused call, without rebuilding the
  // flat decoder's member array (the hot path: one reset per message).
  void reset() {
    engine = nullptr;
    session = nullptr;
    data = {};
    if (owned_data.capacity() > 4096) std::string().swap(owned_data); else owned_data.clear();  // a big frame's copy goes
    binary = false;
    root.reset();
    flat = false;
    flat_object.count = 0;
    parse_error_at = 0;
    parse_error.clear();
    error_code.clear();
    error_message.clear();
    handler_name = {};
    type_name.clear();
    in_handler = false;
    handler_has_msg = false;
    msg_index = 0;
    close_code = 0;
    upstream_failed = false;
    upstream_retrying = false;
    timer_fn_ref = -2;
    timer_id = 0;
    http.reset();
  }

  // Before the job waits: the frame it points into belongs to the transport
  // and is gone once the transport's callback returns.
  void own_data() {
    if (data.data() == owned_data.data()) return;
    owned_data.assign(data);
    data = owned_data;
    if (flat) json::scan_flat_object(data, flat_object);  // its views pointed into the old buffer
  }
};

}  // namespace wsrelay::script
