// Channel memory without sockets: streams and their gaps, the History's
// bounds (history_size, history_ttl on an injected clock, the memory bound),
// the Hub's history channels (seq spliced, kept with nobody subscribed,
// ephemeral publishes, presence), recovery through the standard script in
// order (subscribe.ok, missed, live), the config's channel_options, and the
// names reserved under `relay`.
#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "fakes/engine_fixture.hpp"
#include "pubsub/history.hpp"
#include "pubsub/hub.hpp"
#include "script/reserved_names.hpp"

#include <wsrelay/plugin.h>

#include <string>
#include <vector>

using namespace wsrelay;
using pubsub::ChannelOptions;
using pubsub::ChannelRule;
using pubsub::ChannelRules;
using pubsub::Gap;
using pubsub::History;
using pubsub::Hub;
using pubsub::Position;
using pubsub::Recovery;
using frame::Frame;
using frame::FramePtr;

namespace {

struct Recorder : pubsub::Subscriber {
  std::vector<std::string> got;
  std::string id = "sess";
  std::optional<std::string> user;
  void deliver(const FramePtr& f) override { got.emplace_back(f->payload()); }
  std::string_view presence_session() const override { return id; }
  const std::optional<std::string>& presence_user() const override { return user; }
};

ChannelOptions kept(std::size_t size, std::int64_t ttl = 300, bool presence = false) {
  ChannelOptions o;
  o.history_size = size;
  o.history_ttl_s = ttl;
  o.presence = presence;
  return o;
}

std::vector<std::string> texts(const std::vector<FramePtr>& frames) {
  std::vector<std::string> out;
  for (const FramePtr& f : frames) out.emplace_back(f->payload());
  return out;
}

}  // namespace

TEST_CASE("memory: seq is spliced into the encoded object", "[memory]") {
  CHECK(pubsub::with_seq("{}", 1)->payload() == R"({"seq":1})");
  CHECK(pubsub::with_seq(R"({"a":1})", 42)->payload() == R"({"a":1,"seq":42})");
  CHECK(pubsub::with_seq("{ }", 7)->payload() == R"({ "seq":7})");
  CHECK(pubsub::with_seq("{\"a\":\"}\"}\n ", 18446744073709551615u)->payload() ==
        R"({"a":"}","seq":18446744073709551615})");
  CHECK(pubsub::history_message_problem(R"({"a":1})") == nullptr);
  CHECK(pubsub::history_message_problem(R"([1])") != nullptr);
  CHECK(pubsub::history_message_problem(R"("text")") != nullptr);
  CHECK(std::string(pubsub::history_message_problem(R"({"seq":3})")).find("'seq'") != std::string::npos);
}

TEST_CASE("memory: a stream says which positions it can continue from", "[memory]") {
  pubsub::Stream s("room", "e1", 0);
  for (int i = 1; i <= 5; ++i) s.append(pubsub::with_seq("{}", s.top() + 1), 3, 0);
  CHECK(s.top() == 5);
  CHECK(s.size() == 3);  // 3, 4, 5 kept
  std::vector<FramePtr> out;
  CHECK(s.after({"e1", 2}, 100, &out) == Gap::Filled);
  CHECK(texts(out) == std::vector<std::string>{R"({"seq":3})", R"({"seq":4})", R"({"seq":5})"});
  out.clear();
  CHECK(s.after({"e1", 4}, 100, &out) == Gap::Filled);
  CHECK(texts(out) == std::vector<std::string>{R"({"seq":5})"});
  out.clear();
  CHECK(s.after({"e1", 5}, 100, &out) == Gap::Filled);
  CHECK(out.empty());
  CHECK(s.after({"e1", 1}, 100, &out) == Gap::TooOld);  // seq 2 is gone
  CHECK(s.after({"e1", 6}, 100, &out) == Gap::Ahead);
  CHECK(s.after({"e2", 5}, 100, &out) == Gap::EpochDiffers);
  CHECK(out.empty());
  CHECK(s.after({"e1", 2}, 2, &out) == Gap::Filled);  // a limit gives the first ones
  CHECK(texts(out) == std::vector<std::string>{R"({"seq":3})", R"({"seq":4})"});
  CHECK(texts(s.latest(2)) == std::vector<std::string>{R"({"seq":4})", R"({"seq":5})"});
  // An empty stream at 0 continues from 0, and from nothing else.
  pubsub::Stream fresh("x", "e", 0);
  CHECK(fresh.after({"e", 0}, 10, nullptr) == Gap::Filled);
  CHECK(fresh.after({"e", 1}, 10, nullptr) == Gap::Ahead);
}

TEST_CASE("memory: history_ttl starts a stream afresh with a new epoch", "[memory]") {
  std::int64_t now = 1000;
  History h(1 << 20, [&] { return now; });
  const ChannelOptions o = kept(10, 5);
  pubsub::Stream& s = h.stream("room", o);
  const std::string epoch = s.epoch();
  h.append(s, pubsub::with_seq("{}", 1), o);
  now += 5000;  // exactly the ttl: still kept
  CHECK(h.stream("room", o).epoch() == epoch);
  CHECK(h.stream("room", o).top() == 1);
  now += 1;
  pubsub::Stream& again = h.stream("room", o);
  CHECK(again.epoch() != epoch);
  CHECK(again.top() == 0);
  CHECK(h.publications() == 0);
  // The sweep drops what nobody touches.
  now += 6000;
  h.expire([&](std::string_view) { return &o; });
  CHECK(h.stream_count() == 0);
  CHECK(h.bytes() == 0);
}

TEST_CASE("memory: the memory bound drops the least recently published streams", "[memory]") {
  std::int64_t now = 0;
  const std::size_t entry = 2 + 8 + pubsub::Stream::kEntryOverhead;  // {"seq":N} of one digit... roughly
  const std::size_t position = pubsub::Stream::position_cost("a");   // each stream's own cost
  History h(entry * 10 + 3 * position, [&] { return now; });
  const ChannelOptions o = kept(100);
  auto publish = [&](const std::string& channel) {
    pubsub::Stream& s = h.stream(channel, o);
    h.append(s, pubsub::with_seq("{}", s.top() + 1), o);
  };
  for (int i = 0; i < 4; ++i) publish("a");
  for (int i = 0; i < 4; ++i) publish("b");
  const std::string epoch_a = h.stream("a", o).epoch();
  const std::string epoch_b = h.stream("b", o).epoch();
  publish("a");  // a is now the most recently published
  for (int i = 0; i < 4; ++i) publish("c");
  CHECK(h.bytes() <= h.memory_limit());
  CHECK(h.dropped_for_memory() == 1);
  CHECK(h.stream("a", o).epoch() == epoch_a);  // kept
  CHECK(h.stream("b", o).epoch() != epoch_b);  // dropped whole: a new epoch
  // One stream alone over the bound keeps its newest publications.
  History small(entry * 3 + pubsub::Stream::position_cost("solo"), [&] { return now; });
  pubsub::Stream& s = small.stream("solo", o);
  for (int i = 0; i < 10; ++i) small.append(s, pubsub::with_seq("{}", s.top() + 1), o);
  CHECK(small.bytes() <= small.memory_limit());
  CHECK(s.top() == 10);
  CHECK(s.after({s.epoch(), 9}, 10, nullptr) == Gap::Filled);
  CHECK(s.after({s.epoch(), 2}, 10, nullptr) == Gap::TooOld);
}

TEST_CASE("memory: a stream's own position counts in the bytes", "[memory]") {
  std::int64_t now = 0;
  History h(1 << 20, [&] { return now; });
  const ChannelOptions o = kept(10, 5);
  pubsub::Stream& s = h.stream("room-with-a-long-name", o);
  CHECK(s.bytes() == pubsub::Stream::position_cost("room-with-a-long-name"));
  CHECK(h.bytes() == s.bytes());
  const FramePtr f = pubsub::with_seq("{}", 1);
  h.append(s, f, o);
  CHECK(h.bytes() == pubsub::Stream::position_cost("room-with-a-long-name") + f->size() + pubsub::Stream::kEntryOverhead);
  now += 6000;
  h.expire([&](std::string_view) { return &o; });
  CHECK(h.bytes() == 0);
}

TEST_CASE("memory: a held stream past its history_ttl keeps its position, not its publications", "[memory]") {
  std::int64_t now = 1000;
  History h(1 << 20, [&] { return now; });
  const ChannelOptions o = kept(10, 5);
  pubsub::Stream& s = h.stream("room", o);
  h.hold(s);  // the channel has a subscriber
  const std::string epoch = s.epoch();
  h.append(s, pubsub::with_seq("{}", 1), o);
  h.append(s, pubsub::with_seq("{}", 2), o);
  now += 5001;  // past the ttl of the last publication
  pubsub::Stream& same = h.stream("room", o);
  CHECK(&same == &s);
  CHECK(same.epoch() == epoch);  // its subscribers' stream goes on
  CHECK(same.top() == 2);
  CHECK(same.size() == 0);       // what it kept has expired
  CHECK(h.publications() == 0);
  CHECK(h.bytes() == pubsub::Stream::position_cost("room"));
  CHECK(same.after({epoch, 1}, 10, nullptr) == Gap::TooOld);  // recovered:false, not a wrong replay
  CHECK(same.after({epoch, 2}, 10, nullptr) == Gap::Filled);  // nothing was missed
  CHECK(h.append(same, pubsub::with_seq("{}", 3), o) == 3);   // seq 3, same epoch
  // The sweep also keeps it, past the ttl again, dropping only the publications.
  now += 6000;
  h.expire([&](std::string_view) { return &o; });
  CHECK(h.stream_count() == 1);
  CHECK(h.stream("room", o).epoch() == epoch);
  CHECK(h.stream("room", o).top() == 3);
  CHECK(h.publications() == 0);
  // Released (the last subscriber left): its ttl counts from then...
  h.release("room");
  now += 5000;
  CHECK(h.stream("room", o).epoch() == epoch);
  h.expire([&](std::string_view) { return &o; });
  CHECK(h.stream_count() == 1);
  // ...and once it passed with nobody holding it, the stream starts afresh.
  now += 1;
  h.expire([&](std::string_view) { return &o; });
  CHECK(h.stream_count() == 0);
  pubsub::Stream& fresh = h.stream("room", o);
  CHECK(fresh.epoch() != epoch);
  CHECK(fresh.top() == 0);
  // A channel that loses its history (no rule) is dropped, held or not.
  h.hold(fresh);
  h.expire([&](std::string_view) { return static_cast<const ChannelOptions*>(nullptr); });
  CHECK(h.stream_count() == 0);
}

TEST_CASE("memory: the memory bound drops a held stream's publications, never its position", "[memory]") {
  std::int64_t now = 0;
  const FramePtr one = pubsub::with_seq("{}", 1);
  const std::size_t entry = one->size() + pubsub::Stream::kEntryOverhead;
  const std::size_t position = pubsub::Stream::position_cost("a");
  History h(entry * 6 + 3 * position, [&] { return now; });
  const ChannelOptions o = kept(100);
  auto publish = [&](const std::string& channel) {
    pubsub::Stream& s = h.stream(channel, o);
    return h.append(s, pubsub::with_seq("{}", s.top() + 1), o);
  };
  pubsub::Stream& a = h.stream("a", o);
  h.hold(a);
  const std::string epoch_a = a.epoch();
  for (int i = 0; i < 3; ++i) publish("a");  // a: held, least recently published
  for (int i = 0; i < 2; ++i) publish("b");  // b: nobody holds it
  const std::string epoch_b = h.stream("b", o).epoch();
  for (int i = 0; i < 3; ++i) publish("c");  // over the bound: a goes first, but only its publications
  CHECK(h.bytes() <= h.memory_limit());
  CHECK(h.cleared_for_memory() == 1);
  CHECK(h.dropped_for_memory() == 0);
  CHECK(h.stream_count() == 3);
  CHECK(a.epoch() == epoch_a);
  CHECK(a.top() == 3);
  CHECK(a.size() == 0);
  CHECK(a.after({epoch_a, 1}, 10, nullptr) == Gap::TooOld);
  // More pressure: b (not held) is dropped whole; a, with nothing left to
  // drop, is not looked at again.
  for (int i = 0; i < 3; ++i) publish("c");
  CHECK(h.bytes() <= h.memory_limit());
  CHECK(h.dropped_for_memory() == 1);
  CHECK(h.cleared_for_memory() == 1);
  CHECK(h.stream("b", o).epoch() != epoch_b);
  // a publishes again: seq 4, same epoch.
  CHECK(publish("a") == 4);
  CHECK(a.epoch() == epoch_a);
  CHECK(a.size() == 1);
  // Released, it is the bound's to drop whole again.
  h.release("a");
  for (int i = 0; i < 6; ++i) publish("c");
  CHECK(h.bytes() <= h.memory_limit());
  CHECK(h.stream("a", o).epoch() != epoch_a);
}

TEST_CASE("memory: a channel's subscribers see seq go on in one epoch across history_ttl", "[memory][pubsub]") {
  std::int64_t now = 1000;
  Hub hub([&] { return now; });
  hub.configure(ChannelRules({{"room*", kept(2, 2)}}), 1 << 20);
  Recorder a, b;
  const pubsub::Subscribed first = hub.subscribe("room1", &a, nullptr);
  hub.subscribe("room1", &b, nullptr);
  REQUIRE(first.position);
  const std::string epoch = first.position->epoch;
  CHECK(hub.publish("room1", Frame::text(R"({"n":1})"), pubsub::PublishOptions{}).seq == 1);
  now += 3500;  // the ttl passes with the channel idle
  hub.tick();
  CHECK(hub.publish("room1", Frame::text(R"({"n":2})"), pubsub::PublishOptions{}).seq == 2);
  CHECK(b.got == std::vector<std::string>{R"({"n":1,"seq":1})", R"({"n":2,"seq":2})"});
  // The ttl passes again without even a tick: the publish itself finds it expired.
  now += 3500;
  CHECK(hub.publish("room1", Frame::text(R"({"n":3})"), pubsub::PublishOptions{}).seq == 3);
  // Recovery from before the dropped publications: recovered:false, same epoch.
  Recorder c;
  const Position before{epoch, 1};
  const pubsub::Subscribed late = hub.subscribe("room1", &c, &before);
  CHECK(late.recovery == Recovery::NotRecovered);
  CHECK(late.missed.empty());
  REQUIRE(late.position);
  CHECK(late.position->epoch == epoch);
  CHECK(late.position->seq == 3);
  hub.unsubscribe("room1", &c);
  // From the last one kept: recovered.
  Recorder d;
  const Position at2{epoch, 2};
  const pubsub::Subscribed rec = hub.subscribe("room1", &d, &at2);
  CHECK(rec.recovery == Recovery::Recovered);
  CHECK(texts(rec.missed) == std::vector<std::string>{R"({"n":3,"seq":3})"});
  hub.unsubscribe("room1", &d);
  // The last subscriber leaves long after the last publication; one that
  // comes back soon after still continues (the ttl counts from the leaving).
  hub.unsubscribe("room1", &a);
  now += 5000;
  hub.unsubscribe("room1", &b);
  now += 1000;
  hub.tick();
  const Position at3{epoch, 3};
  const pubsub::Subscribed back = hub.subscribe("room1", &a, &at3);
  CHECK(back.recovery == Recovery::Recovered);
  REQUIRE(back.position);
  CHECK(back.position->epoch == epoch);
  hub.unsubscribe("room1", &a);
  // With no subscriber, once the ttl passed, the stream starts afresh — also
  // for the first subscriber that comes after it, before any tick.
  now += 2001;
  const pubsub::Subscribed again = hub.subscribe("room1", &a, &at3);
  CHECK(again.recovery == Recovery::NotRecovered);
  REQUIRE(again.position);
  CHECK(again.position->epoch != epoch);
  CHECK(again.position->seq == 0);
  CHECK(hub.publish("room1", Frame::text(R"({"n":1})"), pubsub::PublishOptions{}).seq == 1);
  hub.unsubscribe_all(&a);
  now += 2001;
  hub.tick();
  CHECK(hub.history_store().stream_count() == 0);
}

TEST_CASE("memory: the hub keeps history channels' publications and positions", "[memory][pubsub]") {
  Hub hub;
  hub.configure(ChannelRules({{"room*", kept(3)}, {"plain", {}}}), 1 << 20);
  Recorder a, b;
  // Published with nobody subscribed: kept, position 1.
  const pubsub::Published first = hub.publish("room1", Frame::text(R"({"type":"chat"})"), pubsub::PublishOptions{});
  CHECK(first.seq == 1);
  CHECK(first.delivered == 0);
  const pubsub::Subscribed sub = hub.subscribe("room1", &a, nullptr);
  REQUIRE(sub.position);
  CHECK(sub.position->seq == 1);
  CHECK(sub.recovery == Recovery::NotAsked);
  CHECK(hub.publish("room1", Frame::text(R"({"type":"chat"})"), pubsub::PublishOptions{}).seq == 2);
  CHECK(a.got == std::vector<std::string>{R"({"type":"chat","seq":2})"});
  // The last subscriber leaves: the position carries on.
  hub.unsubscribe("room1", &a);
  CHECK(hub.publish("room1", Frame::text(R"({"n":3})"), pubsub::PublishOptions{}).seq == 3);
  // Ephemeral and binary publications get no seq and are not kept.
  hub.subscribe("room1", &b);
  pubsub::PublishOptions ephemeral;
  ephemeral.history = false;
  CHECK(hub.publish("room1", Frame::text(R"({"type":"typing"})"), ephemeral).seq == 0);
  CHECK(hub.publish("room1", Frame::binary("\x01\x02"), pubsub::PublishOptions{}).seq == 0);
  CHECK(b.got == std::vector<std::string>{R"({"type":"typing"})", "\x01\x02"});
  // A text that is not an object cannot take a seq: refused, not dropped silently.
  const pubsub::Published refused = hub.publish("room1", Frame::text("[1,2]"), pubsub::PublishOptions{});
  CHECK_FALSE(refused.refused.empty());
  CHECK(refused.delivered == 0);
  // Recovery from seq 1: 2 and 3, in order.
  Recorder c;
  const Position since{sub.position->epoch, 1};
  const pubsub::Subscribed rec = hub.subscribe("room1", &c, &since);
  CHECK(rec.recovery == Recovery::Recovered);
  CHECK(texts(rec.missed) == std::vector<std::string>{R"({"type":"chat","seq":2})", R"({"n":3,"seq":3})"});
  const Position stale{"other-epoch", 1};
  Recorder d;
  CHECK(hub.subscribe("room1", &d, &stale).recovery == Recovery::NotRecovered);
  CHECK(hub.recoveries(true) == 1);
  CHECK(hub.recoveries(false) == 1);
  // History pages: the latest, or those after a position.
  auto page = hub.history("room1", 2, nullptr);
  REQUIRE(page);
  CHECK(page->position.seq == 3);
  CHECK(texts(page->messages) == std::vector<std::string>{R"({"type":"chat","seq":2})", R"({"n":3,"seq":3})"});
  CHECK_FALSE(hub.history("plain", 10, nullptr));
  // A plain channel is as before: no seq spliced, nothing kept.
  hub.subscribe("plain", &a);
  CHECK(hub.publish("plain", Frame::text(R"({"x":1})"), pubsub::PublishOptions{}).seq == 0);
  CHECK(a.got.back() == R"({"x":1})");
  for (auto* s : {&a, &b, &c, &d}) hub.unsubscribe_all(s);
}

TEST_CASE("memory: presence lists a presence channel's subscribers as they now are", "[memory][pubsub]") {
  Hub hub;
  hub.configure(ChannelRules({{"lobby", kept(0, 0, true)}}), 1 << 20);
  Recorder a, b;
  a.id = "s1";
  a.user = "alice";
  b.id = "s2";
  CHECK(hub.presence("lobby")->empty());
  hub.subscribe("lobby", &a);
  hub.subscribe("lobby", &b);
  auto entries = hub.presence("lobby");
  REQUIRE(entries);
  REQUIRE(entries->size() == 2);
  CHECK(hub.presence_entries() == 2);
  b.user = "bob";  // a re-auth shows at once
  bool saw_bob = false;
  const auto now = hub.presence("lobby");
  for (const auto& e : *now) saw_bob = saw_bob || (e.session == "s2" && e.user == "bob");
  CHECK(saw_bob);
  CHECK_FALSE(hub.presence("elsewhere"));
  hub.unsubscribe_all(&a);
  hub.unsubscribe_all(&b);
}

TEST_CASE("memory: a recovering subscribe gets subscribe.ok, then what it missed, then live", "[memory][script]") {
  fakes::EngineFixture f;
  f.hub.configure(ChannelRules({{"room*", kept(100)}}), 1 << 20);
  // The handler publishes after subscribing: that live message must still
  // come after the replay, which comes after the reply.
  f.load(R"(
    local h = {}
    function h.go(s, m)
      local ok, pos = s:subscribe(m.channel, {since = m.since})
      relay.publish(m.channel, {type = "live"})
      return {type = "ok", recovered = pos.recovered, seq = pos.seq, epoch = pos.epoch}
    end
    function h.pub(s, m)
      local n, seq = relay.publish(m.channel, {type = "old", n = m.n})
      return {type = "pub", seq = seq}
    end
    return h
  )");
  fakes::Client& writer = f.connect();
  std::string epoch;
  for (int i = 1; i <= 3; ++i) {
    fakes::Msg m = f.ask(writer, R"({"type":"pub","channel":"room1","n":)" + std::to_string(i) + "}");
    CHECK(m.num("seq") == i);
  }
  {
    fakes::Client& probe = f.connect();
    f.send(probe, R"({"type":"go","channel":"room1"})");
    const auto got = f.received(probe);
    REQUIRE(got.size() == 2);
    fakes::Msg ok(got[0]);  // the reply first, in a history channel, then the live one
    epoch = ok.str("epoch");
    CHECK(ok.num("seq") == 3);
    CHECK_FALSE(ok.has("recovered"));
    CHECK(fakes::same_json(got[1], R"({"type":"live","seq":4})"));
  }
  fakes::Client& reader = f.connect();
  f.send(reader, R"({"type":"go","channel":"room1","since":{"seq":1,"epoch":")" + epoch + R"("}})");
  const auto got = f.received(reader);
  INFO(Catch::Detail::stringify(got));
  REQUIRE(got.size() == 5);
  fakes::Msg ok(got[0]);
  CHECK(ok.str("type") == "ok");
  CHECK(ok.is_true("recovered"));
  CHECK(ok.num("seq") == 4);
  CHECK(fakes::same_json(got[1], R"({"type":"old","n":2,"seq":2})"));
  CHECK(fakes::same_json(got[2], R"({"type":"old","n":3,"seq":3})"));
  CHECK(fakes::same_json(got[3], R"({"type":"live","seq":4})"));  // the probe's, missed too
  CHECK(fakes::same_json(got[4], R"({"type":"live","seq":5})"));  // published after the subscribe
}

TEST_CASE("memory: scripts meet clear errors", "[memory][script]") {
  fakes::EngineFixture f;
  f.hub.configure(ChannelRules({{"room*", kept(10)}}), 1 << 20);
  f.load(R"(
    local h = {}
    function h.try(s, m)
      local ok, err = pcall(load(m.code, "=code", "t", _ENV))
      return {type = "r", ok = ok, err = err and tostring(err) or nil}
    end
    return h
  )");
  fakes::Client& c = f.connect();
  auto run = [&](const std::string& code) {
    cJSON* text = cJSON_CreateString(code.c_str());
    char* printed = cJSON_PrintUnformatted(text);
    fakes::Msg m = f.ask(c, std::string(R"({"type":"try","code":)") + printed + "}");
    cJSON_free(printed);
    cJSON_Delete(text);
    return m;
  };
  CHECK_THAT(run(R"(relay.publish("room1", {seq = 3}))").str("err"), Catch::Contains("get 'seq' from the engine"));
  CHECK_THAT(run(R"(relay.publish("room1", "[1]"))").str("err"), Catch::Contains("must be a JSON object"));
  CHECK_THAT(run(R"(relay.next_seq("room1"))").str("err"), Catch::Contains("relay.publish assigns its seq"));
  CHECK_THAT(run(R"(relay.history("room1", {since = {seq = -1, epoch = "e"}}))").str("err"),
             Catch::Contains("since.seq must be a non-negative integer"));
  CHECK_THAT(run(R"(relay.history("room1", {since = {seq = 1}}))").str("err"), Catch::Contains("since.epoch must be a string"));
  CHECK_THAT(run(R"(relay.publish("room1", {}, {history = "no"}))").str("err"), Catch::Contains("history must be a boolean"));
  CHECK(run(R"(relay.publish("room1", {seq = 3}, {history = false}))").is_true("ok"));
  CHECK(run(R"(assert(relay.presence("room1") == nil))").is_true("ok"));
  CHECK(run(R"(local _, e = relay.history("plain") assert(e == "not_available"))").is_true("ok"));
  CHECK(run(R"(assert(relay.channel_options("room1").history_size == 10 and relay.channel_options("x") == nil))").is_true("ok"));
}

TEST_CASE("config: channel_options", "[config][memory]") {
  auto parse = [](const std::string& options) {
    return config::parse(R"({"endpoints": [{"path": "/ws"}], "channel_options": )" + options + "}", "config.json",
                         "/nonexistent", [](const std::string&) { return std::optional<std::string>(); });
  };
  auto r = parse(R"([{"match": "room*", "history_size": 100, "history_ttl": 60, "presence": true, "join_leave": true},
                     {"match": "user_session_*", "history_size": 50}, {"match": "lobby", "presence": true}])");
  REQUIRE(r.config);
  REQUIRE(r.config->channel_options.size() == 3);
  CHECK(r.config->channel_options[0].options.history_ttl_s == 60);
  CHECK(r.config->channel_options[1].options.history_ttl_s == 300);  // the default
  CHECK(r.config->channel_options[2].options.presence);
  CHECK_FALSE(r.config->channel_options[2].options.has_history());
  auto errors = [&](const std::string& options) {
    auto bad = parse(options);
    CHECK_FALSE(bad.config);
    return Catch::Detail::stringify(bad.errors);
  };
  CHECK_THAT(errors(R"({})"), Catch::Contains("config.json: channel_options: expected an array"));
  CHECK_THAT(errors(R"([{"history_size": 1}])"), Catch::Contains("channel_options[0].match: required key is missing"));
  CHECK_THAT(errors(R"([{"match": "a*b"}])"), Catch::Contains("channel_options[0].match: '*' may only end the pattern"));
  CHECK_THAT(errors(R"([{"match": ""}])"), Catch::Contains("channel_options[0].match: expected a channel name"));
  CHECK_THAT(errors(R"([{"match": "room*"}, {"match": "room1"}])"),
             Catch::Contains("channel_options[1].match: every channel \"room1\" matches is already matched by channel_options[0]"));
  CHECK_THAT(errors(R"([{"match": "a", "history_size": -1}])"), Catch::Contains("channel_options[0].history_size"));
  CHECK_THAT(errors(R"([{"match": "a", "history_ttl": 5}])"), Catch::Contains("channel_options[0].history_ttl: needs \"history_size\""));
  CHECK_THAT(errors(R"([{"match": "a", "presence": 1}])"), Catch::Contains("channel_options[0].presence: expected a boolean"));
  CHECK_THAT(errors(R"([{"match": "a", "history": 1}])"), Catch::Contains("channel_options[0].history: unknown key"));
  auto limit = config::parse(R"({"endpoints": [{"path": "/ws"}], "limits": {"history_memory_mb": 0}})", "config.json",
                             "/nonexistent", [](const std::string&) { return std::optional<std::string>(); });
  CHECK_FALSE(limit.config);
  CHECK_THAT(Catch::Detail::stringify(limit.errors), Catch::Contains("limits.history_memory_mb"));
}

namespace {
const wsrelay_module kHistoryModule[] = {{"history", nullptr}};
}  // namespace

TEST_CASE("reserved names: every field of relay is reserved, and a module cannot take one", "[memory][extensions]") {
  fakes::EngineFixture f;
  f.load(R"(
    local names = {}
    for k in pairs(relay) do names[#names + 1] = k end
    return {list = function() return {type = "names", names = names} end}
  )");
  fakes::Client& c = f.connect();
  fakes::Msg m = f.ask(c, R"({"type":"list"})");
  const cJSON* names = cJSON_GetObjectItemCaseSensitive(m.root(), "names");
  REQUIRE(cJSON_GetArraySize(names) > 10);
  for (const cJSON* n = names->child; n != nullptr; n = n->next) {
    INFO("relay." << n->valuestring);
    // relay.jwt is the jwt extension's module (built in), not the relay's.
    if (std::string(n->valuestring) == "jwt") continue;
    CHECK(script::is_reserved_relay_name(n->valuestring));
  }

  wsrelay_plugin plugin{};
  plugin.hdr = WSRELAY_PLUGIN_HEADER("takes_history");
  plugin.abi_version = WSRELAY_PLUGIN_ABI_VERSION;
  plugin.modules = kHistoryModule;
  plugin.count_modules = 1;
  fakes::EngineFixture g;
  g.context.extensions.push_back({&plugin, "{}"});
  CHECK_THAT(g.try_load("return {}"), Catch::Contains("extension 'takes_history': module name 'history' is reserved"));
}
