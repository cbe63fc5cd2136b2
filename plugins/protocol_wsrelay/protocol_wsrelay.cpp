#include "protocol_wsrelay/adapter.hpp"

#include "server/hosted.hpp"
#include "util/log.hpp"

#include <cstring>
#include <exception>

namespace wsrelay::plugin {
namespace {

static_assert(LWS_PRE <= frame::kFrameHeadroom, "Frame headroom must cover LWS_PRE");

// --- keepalive ----------------------------------------------------------------
//
// Once a second, every connection of the vhost is asked whether it has been
// silent (no frame, no pong) for heartbeat.interval — then it is pinged, from
// its next WRITEABLE — or for heartbeat.timeout — then it is hung up without
// a close frame (the peer and the script's on_close see 1006), as lws's
// validity timer did before. A connection costs nothing between sweeps.
constexpr lws_usec_t kSweepPeriod = LWS_US_PER_SEC;

void sweep_tick(lws_sorted_usec_list_t* sul) {
  VhostState& state = *reinterpret_cast<VhostState::SweepTimer*>(sul)->state;
  const std::int64_t now = now_ms();
  // Token expiry is a Unix time (a JWT's exp), not a monotonic one.
  const std::int64_t unix_now = std::chrono::duration_cast<std::chrono::milliseconds>(
                                    std::chrono::system_clock::now().time_since_epoch()).count();
  for (Link* link : state.links) {
    // Only asks for writes and schedules hang-ups: the list this loop walks
    // is left alone (CLOSED would edit it).
    if (link->conn->tick(now, unix_now, state.keepalive) == connection::TickAction::Ping) {
      link->ping_due = true;
      lws_callback_on_writable(link->wsi);
    }
  }
  // Streams past their history_ttl give their memory back.
  if (state.relay != nullptr) state.relay->hub().tick();
  // A burst of connections is over: the memory it used goes back to the
  // system instead of staying at the high-water mark (core/util/memory.hpp).
  const auto started = std::chrono::steady_clock::now();
  if (state.relay != nullptr && state.relay->give_back_after_burst()) {
    state.links.shrink_to_fit();
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    log::debug("a burst of connections is over (" + std::to_string(state.relay->registry().size()) +
               " open); memory given back in " + std::to_string(took.count()) + " us");
  }
  lws_sul_schedule(state.context, 0, sul, sweep_tick, kSweepPeriod);
}

int on_protocol_init(lws* wsi, const lws_protocol_vhost_options* pvo) {
  lws_vhost* vhost = lws_get_vhost(wsi);
  const lws_protocols* protocol = lws_get_protocol(wsi);
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_zalloc(vhost, protocol, sizeof(VhostSlot)));
  if (slot == nullptr) return 1;
  std::unique_ptr<VhostState> state;
  if (server::Relay* relay = server::hosted_relay(protocol->user)) {
    state = std::make_unique<VhostState>();
    state->relay = relay;
  } else {
    std::vector<std::string> errors;
    state = relay_from_pvo(pvo, errors);
    const std::string name = lws_get_vhost_name(vhost) != nullptr ? lws_get_vhost_name(vhost) : "?";
    for (const auto& e : errors) log::error("wsrelay on vhost " + name + ": " + e);
    if (!state) return 1;
    for (const auto& ep : state->relay->config().endpoints) {
      log::info("wsrelay on vhost " + name + ": endpoint " + ep.path + " (" +
                (ep.script_path.empty() ? std::string("built-in standard.lua") : ep.script_name) + ")");
    }
  }
  state->context = lws_get_context(wsi);
  state->hosted = state->owned == nullptr;
  const config::Heartbeat& heartbeat = state->relay->config().heartbeat;
  state->keepalive.interval_ms = static_cast<std::int64_t>(heartbeat.interval_s) * 1000;
  state->keepalive.timeout_ms = static_cast<std::int64_t>(heartbeat.timeout_s) * 1000;
  state->sweep.state = state.get();
  lws_sul_schedule(state->context, 0, &state->sweep.sul, sweep_tick, kSweepPeriod);
  server::Relay* relay = state->relay;
  state->reach = std::make_unique<loop::LwsBinding>(state->context, relay->timers(), relay->completions(),
                                                    [relay](std::int64_t now) { relay->run_timers(now); });
  slot->state = state.release();
  return 0;
}

void on_protocol_destroy(lws* wsi) {
  auto* slot = static_cast<VhostSlot*>(lws_protocol_vh_priv_get(lws_get_vhost(wsi), lws_get_protocol(wsi)));
  if (slot == nullptr) return;
  if (slot->state != nullptr) lws_sul_cancel(&slot->state->sweep.sul);
  delete slot->state;
  slot->state = nullptr;
}

int callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  auto* pss = static_cast<PerSession*>(user);
  switch (reason) {
    case LWS_CALLBACK_PROTOCOL_INIT:
      return on_protocol_init(wsi, static_cast<const lws_protocol_vhost_options*>(in));
    case LWS_CALLBACK_PROTOCOL_DESTROY:
      on_protocol_destroy(wsi);
      return 0;
    case LWS_CALLBACK_EVENT_WAIT_CANCELLED:
      if (VhostState* state = state_of(wsi); state != nullptr && state->reach) state->reach->wait_cancelled();
      return 0;
    case LWS_CALLBACK_WSI_DESTROY:  // an upgrade on_upgrade accepted that never opened
      if (server::Relay* relay = relay_of_protocol(wsi)) relay->take_upgrade_user(wsi);
      break;
    default:
      break;
  }
  // Without a Relay (its PROTOCOL_INIT failed) nothing is served. Only the
  // two events that start something look it up: lws also calls the vhost's
  // first protocol for other protocols' wsi (WSI_DESTROY...), where the
  // bound protocol is not ours to look at.
  if ((reason == LWS_CALLBACK_HTTP || reason == LWS_CALLBACK_ESTABLISHED) && relay_of(wsi) == nullptr) return -1;
  switch (reason) {
    case LWS_CALLBACK_HTTP:
      return on_http(wsi, pss, static_cast<const char*>(in));
    case LWS_CALLBACK_HTTP_BODY:
      return on_http_body(pss, in, len);
    case LWS_CALLBACK_HTTP_BODY_COMPLETION:
      return on_http_body_complete(wsi, pss);
    case LWS_CALLBACK_HTTP_WRITEABLE:
      return on_http_writeable(wsi, pss);
    case LWS_CALLBACK_CLOSED_HTTP:
      if (pss != nullptr) {
        if (pss->http != nullptr) *pss->http->alive = false;
        delete pss->http;
        pss->http = nullptr;
      }
      return 0;
    case LWS_CALLBACK_SERVER_NEW_CLIENT_INSTANTIATED:
      stamp_accept(wsi);
      return 0;
    case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
      return on_confirm_upgrade(wsi);
    case LWS_CALLBACK_ESTABLISHED:
      return on_established(wsi, pss);
    case LWS_CALLBACK_RECEIVE:
      return on_receive(wsi, pss, in, len);
    case LWS_CALLBACK_RECEIVE_PONG:
      if (pss != nullptr && pss->link != nullptr) {
        const std::int64_t now = now_ms();
        confirm_validity(wsi, pss->link, now);
        pss->link->conn->saw_life(now);
      }
      return 0;
    case LWS_CALLBACK_SERVER_WRITEABLE:
      return on_writeable(wsi, pss);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
      return on_peer_close(pss, in, len);
    case LWS_CALLBACK_CLOSED:
      on_closed(pss);
      return 0;
    default:
      return lws_callback_http_dummy(wsi, reason, user, in, len);
  }
}

// No exception may unwind into lws (C): anything escaping a handler is a bug,
// logged, and costs only the connection it happened on.
int guarded_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  try {
    return callback(wsi, reason, user, in, len);
  } catch (const std::exception& e) {
    log::error(std::string("internal error in protocol callback: ") + e.what());
  } catch (...) {
    log::error("internal error in protocol callback");
  }
  return -1;
}

// lws gives every WebSocket an rx buffer of rx_buffer_size (+ LWS_PRE) for
// its whole life; 0 would mean the context's 4 KiB service buffer, more than
// half of an idle connection's memory. Longer frames arrive in pieces, which
// on_receive reassembles anyway. tx_packet_size is the most lws hands to one
// send() (plus LWS_PRE + 4; it allocates nothing by it): the rest of a longer
// write is copied to the connection's buflist and sent from later POLLOUTs.
// Left 0 it would be rx_buffer_size; a batch of frames (kBatchBytes) goes
// out whole.
constexpr std::size_t kRxBufferSize = 512;
constexpr std::size_t kTxPacketSize = kBatchBytes;

const lws_protocols kProtocol = {
    kProtocolName, guarded_callback, sizeof(PerSession), kRxBufferSize, 0, nullptr, kTxPacketSize,
};

// Both protocols a vhost serving the relay needs: the relay and the client
// side of its upstream links.
const lws_protocols kProtocols[] = {kProtocol, upstream::UpstreamClient::protocol(), lws_protocols{}};

}  // namespace

}  // namespace wsrelay::plugin

#if defined(LWS_PLUGIN_STATIC)

// <wsrelay/wsrelay.h>: the static-link path.
extern "C" LWS_VISIBLE const struct lws_protocols* wsrelay_protocols(size_t* count) {
  if (count != nullptr) *count = 2;
  return wsrelay::plugin::kProtocols;
}

extern "C" LWS_VISIBLE const char* wsrelay_version(void) { return WSRELAY_VERSION; }

#else

// libprotocol_wsrelay.so: lws derives the symbol from the file name
// (libprotocol_wsrelay.so -> "wsrelay"). In C++ that name is taken by the
// namespace, so the object gets its symbol name from an asm label.
extern "C" LWS_VISIBLE const lws_plugin_protocol_t wsrelay_protocol_plugin __asm__("wsrelay");
const lws_plugin_protocol_t wsrelay_protocol_plugin = {
    {"wsrelay relay", "lws_protocol_plugin", LWS_PLUGIN_API_MAGIC},
    wsrelay::plugin::kProtocols,
    nullptr,
    2,
    0,
};

#endif
