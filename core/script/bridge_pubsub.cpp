// bridge_pubsub: relay.publish, relay.subscribers, relay.next_seq,
// relay.channels, relay.channel_options, relay.history, relay.presence,
// relay.presence_stats. A publish is encoded once; every subscriber's queue
// (and, in a history channel, the history) shares the frame.
#include "json/json.hpp"
#include "json/lua_json.hpp"
#include "script/engine_internal.hpp"

#include <set>

namespace wsrelay::script {

std::string_view check_channel(lua_State* L, int index) {
  size_t len = 0;
  const char* name = luaL_checklstring(L, index, &len);
  if (len == 0) luaL_argerror(L, index, "channel name must not be empty");
  return {name, len};
}

pubsub::Hub& hub_of(lua_State* L) {
  pubsub::Hub* hub = internal_of(L).engine->context().hub;
  if (hub == nullptr) luaL_error(L, "no channel hub in this context");
  return *hub;
}

void check_position(lua_State* L, int index, const char* what, pubsub::Position& out) {
  index = lua_absindex(L, index);
  if (!lua_istable(L, index)) {
    luaL_error(L, "%s must be a table {seq = <integer>, epoch = <string>}", what);
  }
  lua_getfield(L, index, "seq");
  if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 0) luaL_error(L, "%s.seq must be a non-negative integer", what);
  out.seq = static_cast<std::uint64_t>(lua_tointeger(L, -1));
  lua_getfield(L, index, "epoch");
  if (lua_type(L, -1) != LUA_TSTRING) luaL_error(L, "%s.epoch must be a string", what);
  out.epoch = lua_string(L, -1);
  lua_pop(L, 2);
}

void release_holds(ScriptEngine::Internal& in) {
  if (in.holding.empty()) return;
  std::vector<session::Session*> holding;
  holding.swap(in.holding);
  for (session::Session* s : holding) s->release_held();
}

namespace {

// relay.publish(channel, message [, {exclude = session, history = false}])
//   -> delivered [, seq]   (seq: the position the engine assigned, in a history channel)
int relay_publish(lua_State* L) {
  const std::string_view channel = check_channel(L, 1);
  luaL_argexpected(L, lua_istable(L, 2) || lua_type(L, 2) == LUA_TSTRING, 2, "table or string");
  pubsub::PublishOptions options;
  if (!lua_isnoneornil(L, 3)) {
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_getfield(L, 3, "exclude");
    if (!lua_isnil(L, -1)) {
      options.exclude = to_session(L, -1);
      if (options.exclude == nullptr && lua_type(L, -1) != LUA_TUSERDATA) {
        return luaL_argerror(L, 3, "exclude must be a session");
      }
    }
    lua_getfield(L, 3, "history");
    if (!lua_isnil(L, -1)) {
      luaL_argcheck(L, lua_isboolean(L, -1), 3, "history must be a boolean");
      options.history = lua_toboolean(L, -1) != 0;
    }
    lua_pop(L, 2);
  }
  pubsub::Broker& broker = hub_of(L);
  const pubsub::ChannelOptions* kept = options.history ? broker.channel_options(channel) : nullptr;
  if (kept != nullptr && kept->has_history()) {
    // The engine writes the position: a message that brings its own would
    // reach subscribers with two.
    if (lua_istable(L, 2)) {
      lua_getfield(L, 2, "seq");
      if (!lua_isnil(L, -1)) {
        return luaL_error(L, "channel '%s' keeps history: its messages get 'seq' from the engine (remove the field, "
                             "or publish with {history = false})", std::string(channel).c_str());
      }
      lua_pop(L, 1);
    } else if (const char* problem = pubsub::history_message_problem(lua_string(L, 2))) {
      return luaL_error(L, "channel '%s': %s", std::string(channel).c_str(), problem);
    }
  }
  frame::FramePtr frame;
  std::string error;
  if (!to_frame(L, 2, frame, error)) return luaL_argerror(L, 2, error.c_str());
  const pubsub::Published published = broker.publish(channel, frame, options);
  if (!published.refused.empty()) {
    return luaL_error(L, "channel '%s': %s", std::string(channel).c_str(), published.refused.c_str());
  }
  lua_pushinteger(L, static_cast<lua_Integer>(published.delivered));
  if (published.seq == 0) return 1;
  lua_pushinteger(L, static_cast<lua_Integer>(published.seq));
  return 2;
}

int relay_subscribers(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).subscriber_count(check_channel(L, 1))));
  return 1;
}

int relay_next_seq(lua_State* L) {
  const std::string_view channel = check_channel(L, 1);
  const pubsub::ChannelOptions* options = hub_of(L).channel_options(channel);
  if (options != nullptr && options->has_history()) {
    return luaL_error(L, "channel '%s' keeps history: relay.publish assigns its seq (its second result)",
                      std::string(channel).c_str());
  }
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).next_seq(channel)));
  return 1;
}

int relay_channels(lua_State* L) {
  lua_pushinteger(L, static_cast<lua_Integer>(hub_of(L).channel_count()));
  return 1;
}

// relay.channel_options(channel) -> {history_size, history_ttl, presence, join_leave} | nil
int relay_channel_options(lua_State* L) {
  const pubsub::ChannelOptions* options = hub_of(L).channel_options(check_channel(L, 1));
  if (options == nullptr) {
    lua_pushnil(L);
    return 1;
  }
  lua_createtable(L, 0, 4);
  lua_pushinteger(L, static_cast<lua_Integer>(options->history_size));
  lua_setfield(L, -2, "history_size");
  lua_pushinteger(L, static_cast<lua_Integer>(options->history_ttl_s));
  lua_setfield(L, -2, "history_ttl");
  lua_pushboolean(L, options->presence);
  lua_setfield(L, -2, "presence");
  lua_pushboolean(L, options->join_leave);
  lua_setfield(L, -2, "join_leave");
  return 1;
}

int not_available(lua_State* L) {
  lua_pushnil(L);
  lua_pushliteral(L, "not_available");
  return 2;
}

// relay.history(channel [, {limit = n, since = {seq, epoch}}])
//   -> {epoch, seq, recovered?, messages = {...}} | nil, "not_available"
int relay_history(lua_State* L) {
  const std::string_view channel = check_channel(L, 1);
  std::size_t limit = static_cast<std::size_t>(-1);
  pubsub::Position since;
  bool has_since = false;
  if (!lua_isnoneornil(L, 2)) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "limit");
    if (!lua_isnil(L, -1)) {
      luaL_argcheck(L, lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 0, 2, "limit must be a non-negative integer");
      limit = static_cast<std::size_t>(lua_tointeger(L, -1));
    }
    lua_getfield(L, 2, "since");
    if (!lua_isnil(L, -1)) {
      check_position(L, -1, "since", since);
      has_since = true;
    }
    lua_pop(L, 2);
  }
  std::optional<pubsub::HistoryPage> page = hub_of(L).history(channel, limit, has_since ? &since : nullptr);
  if (!page) return not_available(L);
  lua_createtable(L, 0, 4);
  lua_pushlstring(L, page->position.epoch.data(), page->position.epoch.size());
  lua_setfield(L, -2, "epoch");
  lua_pushinteger(L, static_cast<lua_Integer>(page->position.seq));
  lua_setfield(L, -2, "seq");
  if (page->recovery != pubsub::Recovery::NotAsked) {
    lua_pushboolean(L, page->recovery == pubsub::Recovery::Recovered);
    lua_setfield(L, -2, "recovered");
  }
  // Kept as the encoded objects subscribers got; a history request is rare
  // next to deliveries, so decoding here costs less than keeping tables.
  lua_createtable(L, static_cast<int>(page->messages.size()), 0);
  json::push_array_metatable(L);
  lua_setmetatable(L, -2);
  lua_Integer i = 0;
  for (const frame::FramePtr& f : page->messages) {
    json::JsonPtr root = json::parse(f->payload());
    if (root == nullptr) continue;  // cannot happen: only objects are kept
    json::push_json(L, root.get());
    lua_rawseti(L, -2, ++i);
  }
  lua_setfield(L, -2, "messages");
  return 1;
}

// relay.presence(channel) -> {{session = id, user = name|nil}, ...} | nil, "not_available"
int relay_presence(lua_State* L) {
  std::optional<std::vector<pubsub::PresenceEntry>> entries = hub_of(L).presence(check_channel(L, 1));
  if (!entries) return not_available(L);
  lua_createtable(L, static_cast<int>(entries->size()), 0);
  json::push_array_metatable(L);
  lua_setmetatable(L, -2);
  lua_Integer i = 0;
  for (const pubsub::PresenceEntry& e : *entries) {
    lua_createtable(L, 0, 2);
    lua_pushlstring(L, e.session.data(), e.session.size());
    lua_setfield(L, -2, "session");
    if (e.user) {
      lua_pushlstring(L, e.user->data(), e.user->size());
      lua_setfield(L, -2, "user");
    }
    lua_rawseti(L, -2, ++i);
  }
  return 1;
}

// relay.presence_stats(channel) -> {clients = n, users = m} | nil, "not_available"
int relay_presence_stats(lua_State* L) {
  std::optional<std::vector<pubsub::PresenceEntry>> entries = hub_of(L).presence(check_channel(L, 1));
  if (!entries) return not_available(L);
  std::set<std::string_view> users;
  for (const pubsub::PresenceEntry& e : *entries) {
    if (e.user) users.insert(*e.user);
  }
  lua_createtable(L, 0, 2);
  lua_pushinteger(L, static_cast<lua_Integer>(entries->size()));
  lua_setfield(L, -2, "clients");
  lua_pushinteger(L, static_cast<lua_Integer>(users.size()));
  lua_setfield(L, -2, "users");
  return 1;
}

}  // namespace

void open_relay_pubsub(lua_State* L) {
  const luaL_Reg functions[] = {{"publish", trampoline<relay_publish>},
                                {"subscribers", trampoline<relay_subscribers>},
                                {"next_seq", trampoline<relay_next_seq>},
                                {"channels", trampoline<relay_channels>},
                                {"channel_options", trampoline<relay_channel_options>},
                                {"history", trampoline<relay_history>},
                                {"presence", trampoline<relay_presence>},
                                {"presence_stats", trampoline<relay_presence_stats>},
                                {nullptr, nullptr}};
  luaL_setfuncs(L, functions, 0);
}

}  // namespace wsrelay::script
