#include "upstream/upstream_client.hpp"

#include "util/log.hpp"

#include <algorithm>
#include <cstring>

namespace wsrelay::upstream {
namespace {

// Upstream messages (audio deltas) can be large; this bounds one reassembly.
constexpr std::size_t kMaxUpstreamMessage = 64u << 20;
constexpr int kWritesPerCallback = 16;

std::string describe(const config::Upstream& c) {
  return std::string(c.tls ? "wss://" : "ws://") + c.host + ":" + std::to_string(c.port);
}

}  // namespace

UpstreamClient::UpstreamClient(lws_context* context, lws_vhost* vhost, const config::Upstream& config,
                               UpstreamEvents* owner, stats::Stats* stats, std::string log_id)
    : context_(context), vhost_(vhost), config_(config), owner_(owner), stats_(stats), log_session_(std::move(log_id)) {}

log::Fields UpstreamClient::log_fields() const {
  if (owner_ != nullptr) return owner_->upstream_log_fields();
  return log::Fields{log_session_, log_user_, log_endpoint_};
}

UpstreamClient::~UpstreamClient() { lws_sul_cancel(&retry_timer_.sul); }

std::string_view UpstreamClient::upstream_state() const {
  switch (state_) {
    case State::Idle: return "idle";
    case State::Connecting: return "connecting";
    case State::Open: return "open";
    case State::Closing:
    case State::Closed: return "closed";
  }
  return "closed";
}

void UpstreamClient::upstream_connect() {
  if (state_ == State::Idle || state_ == State::Closed) {
    attempts_ = 0;
    close_code_ = 0;
    connect_now();
  }
}

void UpstreamClient::connect_now() {
  lws_sul_cancel(&retry_timer_.sul);
  state_ = State::Connecting;
  peer_close_code_ = 0;
  peer_close_reason_.clear();
  if (stats_ != nullptr) ++stats_->upstream_connects;
  if (!counted_ && stats_ != nullptr) {
    ++stats_->upstream_links;
    counted_ = true;
  }
  lws_client_connect_info info;
  std::memset(&info, 0, sizeof info);
  info.vhost = vhost_;
  info.address = config_.host.c_str();
  info.port = config_.port;
  info.path = config_.path.c_str();
  const std::string host_header =
      (config_.port == (config_.tls ? 443 : 80)) ? config_.host : config_.host + ":" + std::to_string(config_.port);
  info.host = host_header.c_str();
  info.origin = nullptr;  // a server-side client: no browser Origin header
  info.protocol = nullptr;  // no Sec-WebSocket-Protocol: upstream APIs do not expect one
  info.local_protocol_name = kUpstreamProtocolName;
  info.opaque_user_data = this;
  // Also as the wsi's user data, lws's mark of a connection we made: a
  // server-side connection bound to this protocol has none (see callback).
  info.userdata = this;
  info.pwsi = &wsi_;
  if (config_.tls) {
    info.ssl_connection = LCCSCF_USE_SSL;
    if (config_.tls_insecure) {
      info.ssl_connection |= LCCSCF_ALLOW_SELFSIGNED | LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
                             LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE;
    }
  }
  log::info("upstream connecting to " + describe(config_) + " (attempt " + std::to_string(attempts_ + 1) + ")",
            log_fields());
  info.context = context_;
  if (lws_client_connect_via_info(&info) == nullptr) {
    // lws reports most failures through CLIENT_CONNECTION_ERROR; a null here
    // means it could not even start (and wsi_ may not have been set).
    wsi_ = nullptr;
    on_closed(1006, "cannot start the connection", true);
  }
}

session::UpstreamSend UpstreamClient::upstream_send(std::string_view payload, bool binary) {
  if (state_ == State::Closing || (state_ == State::Closed && close_code_ != 0)) {
    return session::UpstreamSend::Closed;
  }
  if (queue_.size() >= config_.queue_limit) return session::UpstreamSend::Busy;
  queue_.push_back(binary ? frame::Frame::binary(payload) : frame::Frame::text(payload));
  if (state_ == State::Idle || state_ == State::Closed) {
    if (state_ == State::Closed && config_.on_close != "keep") {
      queue_.pop_back();
      return session::UpstreamSend::Closed;
    }
    attempts_ = 0;
    connect_now();
  } else if (state_ == State::Open && wsi_ != nullptr) {
    lws_callback_on_writable(wsi_);
  }
  return session::UpstreamSend::Sent;
}

void UpstreamClient::upstream_close(int code, std::string_view reason) {
  close_code_ = code;
  close_reason_ = std::string(reason);
  lws_sul_cancel(&retry_timer_.sul);
  if (state_ == State::Open && wsi_ != nullptr) {
    state_ = State::Closing;
    lws_callback_on_writable(wsi_);
  } else if (wsi_ != nullptr) {
    state_ = State::Closing;
    lws_set_timeout(wsi_, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
  } else {
    state_ = State::Closed;
    queue_.clear();
  }
}

void UpstreamClient::detach() {
  if (owner_ != nullptr) {
    const log::Fields f = owner_->upstream_log_fields();
    log_session_ = f.session;
    log_user_ = f.user;
    log_endpoint_ = f.endpoint;
  }
  owner_ = nullptr;
  lws_sul_cancel(&retry_timer_.sul);
  queue_.clear();
  if (wsi_ == nullptr) {
    if (counted_ && stats_ != nullptr) --stats_->upstream_links;
    counted_ = false;
    delete this;
    return;
  }
  if (close_code_ == 0) {
    close_code_ = 1000;
    close_reason_ = "client went away";
  }
  if (state_ == State::Open) {
    state_ = State::Closing;
    lws_callback_on_writable(wsi_);
  } else {
    state_ = State::Closing;
    lws_set_timeout(wsi_, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
  }
}

void UpstreamClient::retry_fired(lws_sorted_usec_list_t* sul) {
  UpstreamClient* self = reinterpret_cast<RetryTimer*>(sul)->self;
  if (self->owner_ != nullptr && self->state_ == State::Connecting) self->connect_now();
}

void UpstreamClient::on_closed(int code, std::string reason, bool failed) {
  const bool we_closed = close_code_ != 0;
  state_ = State::Closed;
  if (counted_ && stats_ != nullptr) --stats_->upstream_links;
  counted_ = false;
  if (failed && !we_closed && stats_ != nullptr) ++stats_->upstream_failures;
  log::info("upstream closed code=" + std::to_string(code) + (reason.empty() ? "" : " reason=\"" + reason + "\"") +
                (failed ? " (failed)" : ""),
            log_fields());
  if (owner_ == nullptr) {
    delete this;
    return;
  }
  const bool will_retry = !we_closed && config_.on_close == "reconnect" && attempts_ < config_.retries;
  if (!will_retry) queue_.clear();
  if (will_retry) {
    ++attempts_;
    const long long delay =
        std::min<long long>(static_cast<long long>(config_.backoff_ms) << std::min(attempts_ - 1, 20),
                            config_.backoff_max_ms);
    state_ = State::Connecting;
    if (stats_ != nullptr && !counted_) {
      ++stats_->upstream_links;
      counted_ = true;
    }
    lws_sul_schedule(context_, 0, &retry_timer_.sul, retry_fired, delay * LWS_US_PER_MS);
    log::info("upstream reconnect in " + std::to_string(delay) + " ms", log_fields());
  }
  // Last: the owner may react by closing its client, which detaches us.
  owner_->upstream_closed(code, reason, failed, will_retry);
}

int UpstreamClient::callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  if (user == nullptr) {
    // Not a link of ours: a client's upgrade that named "wsrelay-upstream"
    // (lws binds a server connection to any protocol of the vhost that the
    // client asks for), whose opaque slot holds the relay's accept stamp, not
    // an UpstreamClient. This protocol serves no one: refuse the WebSocket.
    if (reason == LWS_CALLBACK_FILTER_PROTOCOL_CONNECTION) return 1;
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
  auto* self = static_cast<UpstreamClient*>(lws_get_opaque_user_data(wsi));
  if (self == nullptr || self->wsi_ != wsi) {
    // A stale wsi of a link that has moved on (or is gone): let lws finish it.
    return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
  switch (reason) {
    case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER: {
      auto** p = static_cast<unsigned char**>(in);
      unsigned char* end = *p + len;
      for (const auto& [name, value] : self->config_.headers) {
        const std::string field = name + ":";
        if (lws_add_http_header_by_name(wsi, reinterpret_cast<const unsigned char*>(field.c_str()),
                                        reinterpret_cast<const unsigned char*>(value.data()),
                                        static_cast<int>(value.size()), p, end)) {
          return -1;
        }
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
      if (self->state_ == State::Closing) {
        // Closed (or its client gone) while connecting: lws clears the kill
        // timeout once the handshake completes, so close it properly now —
        // else the link would stay open with nobody behind it.
        lws_callback_on_writable(wsi);
        return 0;
      }
      self->state_ = State::Open;
      self->attempts_ = 0;
      log::info("upstream open " + describe(self->config_), self->log_fields());
      if (!self->queue_.empty()) lws_callback_on_writable(wsi);
      if (self->owner_ != nullptr) self->owner_->upstream_opened();
      return 0;
    case LWS_CALLBACK_CLIENT_RECEIVE: {
      if (lws_is_first_fragment(wsi)) {
        self->rx_.clear();
        self->rx_binary_ = lws_frame_is_binary(wsi) != 0;
      }
      if (self->rx_.size() + len > kMaxUpstreamMessage) {
        log::warn("upstream message larger than 64 MiB; closing the upstream", self->log_fields());
        self->close_code_ = 1009;
        self->close_reason_ = "message too large";
        lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, nullptr, 0);
        return -1;
      }
      const bool final = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
      if (final && self->rx_.empty()) {
        // Arrived whole (the usual case): handed on from lws's buffer, no copy.
        if (self->stats_ != nullptr) ++self->stats_->upstream_messages_in;
        if (self->owner_ != nullptr && self->state_ == State::Open) {
          self->owner_->upstream_message(std::string_view(static_cast<const char*>(in), len), self->rx_binary_);
        }
        return 0;
      }
      self->rx_.append(static_cast<const char*>(in), len);
      if (!final) return 0;
      if (self->stats_ != nullptr) ++self->stats_->upstream_messages_in;
      std::string message;
      message.swap(self->rx_);
      if (self->owner_ != nullptr && self->state_ == State::Open) {
        self->owner_->upstream_message(message, self->rx_binary_);
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_WRITEABLE: {
      if (self->state_ == State::Closing) {
        lws_close_reason(wsi, static_cast<lws_close_status>(self->close_code_),
                         reinterpret_cast<unsigned char*>(self->close_reason_.data()), self->close_reason_.size());
        return -1;
      }
      // Several queued frames per WRITEABLE while lws buffers none of them
      // (as the relay protocol does towards clients).
      for (int n = 0; n < kWritesPerCallback && !self->queue_.empty(); ++n) {
        const frame::Frame& frame = *self->queue_.front();
        const auto mode = frame.is_binary() ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
        const bool complete =
            lws_write(wsi, frame.writable_payload(), frame.size(), mode) >= static_cast<int>(frame.size());
        self->queue_.pop_front();  // after the write: the queue may hold the frame's last reference
        if (!complete) return -1;
        if (self->stats_ != nullptr) ++self->stats_->upstream_messages_out;
        if (lws_partial_buffered(wsi)) break;
      }
      if (!self->queue_.empty()) lws_callback_on_writable(wsi);
      return 0;
    }
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE: {
      const auto* bytes = static_cast<const unsigned char*>(in);
      if (len >= 2) {
        self->peer_close_code_ = (bytes[0] << 8) | bytes[1];
        self->peer_close_reason_.assign(reinterpret_cast<const char*>(bytes) + 2, len - 2);
      } else {
        self->peer_close_code_ = 1005;
      }
      return 0;
    }
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR: {
      std::string why = in != nullptr ? std::string(static_cast<const char*>(in), strnlen(static_cast<const char*>(in), len ? len : 256)) : "unknown error";
      lws_set_opaque_user_data(wsi, nullptr);
      self->wsi_ = nullptr;
      self->on_closed(1006, "connect failed: " + why, true);
      return 0;
    }
    // Closed while still in its HTTP upgrade (e.g. killed after its client
    // left mid-connect): lws reports that as the HTTP role's close, neither
    // CONNECTION_ERROR nor CLIENT_CLOSED. Same ending.
    case LWS_CALLBACK_CLOSED_CLIENT_HTTP:
    case LWS_CALLBACK_CLIENT_CLOSED: {
      lws_set_opaque_user_data(wsi, nullptr);
      self->wsi_ = nullptr;
      const bool had_close_frame = self->peer_close_code_ != 0;
      const int code = had_close_frame ? self->peer_close_code_ : (self->close_code_ != 0 ? self->close_code_ : 1006);
      const std::string why = had_close_frame ? self->peer_close_reason_ : self->close_reason_;
      self->on_closed(code, why, !had_close_frame && self->close_code_ == 0);
      return 0;
    }
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

const lws_protocols& UpstreamClient::protocol() {
  // As for client connections (plugins/protocol_wsrelay): lws keeps an rx
  // buffer of rx_buffer_size per link for its life (0 would mean 4 KiB, and a
  // relay endpoint has one link per client); longer frames arrive in pieces,
  // reassembled above. tx_packet_size keeps writes as they were.
  static const lws_protocols kProtocol = {kUpstreamProtocolName, UpstreamClient::callback, 0, 512, 0, nullptr, 4096};
  return kProtocol;
}

}  // namespace wsrelay::upstream
