// Unit tests for core/pubsub: the Hub's channel table, fan-out and counters,
// with recording subscribers (and real Sessions where the queue matters).
#include <catch2/catch.hpp>

#include "fakes/fake_transport.hpp"
#include "pubsub/hub.hpp"
#include "frame/frame.hpp"
#include "session/session.hpp"
#include "stats/stats.hpp"

#include <string>
#include <vector>

using wsrelay::pubsub::Broker;
using wsrelay::pubsub::Hub;
using wsrelay::pubsub::Subscriber;
using wsrelay::pubsub::PublishOptions;
using wsrelay::frame::Frame;
using wsrelay::frame::FramePtr;

namespace {

struct RecordingSubscriber : Subscriber {
  std::vector<FramePtr> got;
  void deliver(const FramePtr& frame) override { got.push_back(frame); }
};

std::vector<std::string> channels_of(const Subscriber& s) { return {s.channels().begin(), s.channels().end()}; }

}  // namespace

TEST_CASE("hub: subscribe and unsubscribe report membership changes", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a;
  CHECK(hub.subscribe("room", &a));
  CHECK_FALSE(hub.subscribe("room", &a));  // already a member
  CHECK(hub.subscriber_count("room") == 1);
  CHECK(hub.subscription_count() == 1);
  CHECK(channels_of(a) == std::vector<std::string>{"room"});

  CHECK_FALSE(hub.unsubscribe("other", &a));  // never subscribed there
  CHECK_FALSE(hub.unsubscribe("other", &a));
  CHECK(hub.unsubscribe("room", &a));
  CHECK_FALSE(hub.unsubscribe("room", &a));  // no longer a member
  CHECK(hub.subscription_count() == 0);
  CHECK(a.channels().empty());

  // Membership is per subscriber: b's unsubscribe does not touch a.
  RecordingSubscriber b;
  CHECK(hub.subscribe("room", &a));
  CHECK_FALSE(hub.unsubscribe("room", &b));
  CHECK(hub.subscriber_count("room") == 1);
}

TEST_CASE("hub: publish reaches every subscriber but the excluded one", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a, b, c, outsider;
  hub.subscribe("room", &a);
  hub.subscribe("room", &b);
  hub.subscribe("room", &c);
  hub.subscribe("elsewhere", &outsider);

  const FramePtr first = Frame::text("{\"n\":1}");
  CHECK(hub.publish("room", first, nullptr) == 3);
  CHECK(a.got.size() == 1);
  CHECK(b.got.size() == 1);
  CHECK(c.got.size() == 1);
  CHECK(outsider.got.empty());

  const FramePtr second = Frame::text("{\"n\":2}");
  CHECK(hub.publish("room", second, &b) == 2);
  CHECK(a.got.size() == 2);
  CHECK(b.got.size() == 1);
  CHECK(c.got.size() == 2);

  // Excluding a non-member changes nothing.
  CHECK(hub.publish("room", second, &outsider) == 3);
  // A channel nobody is in.
  CHECK(hub.publish("empty", second, nullptr) == 0);
  // The Broker interface is the same publish.
  Broker& broker = hub;
  CHECK(broker.publish("elsewhere", first, PublishOptions{}).delivered == 1);
  CHECK(outsider.got.size() == 1);

  CHECK(hub.deliveries() == 3 + 2 + 3 + 0 + 1);
}

TEST_CASE("hub: one frame is shared by every subscriber", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a, b, c;
  for (auto* s : {&a, &b, &c}) hub.subscribe("room", s);
  const FramePtr frame = Frame::text("shared payload");
  const long before = frame.use_count();
  REQUIRE(hub.publish("room", frame, nullptr) == 3);
  for (auto* s : {&a, &b, &c}) {
    REQUIRE(s->got.size() == 1);
    CHECK(s->got[0].get() == frame.get());
    CHECK(s->got[0]->payload() == "shared payload");
  }
  CHECK(frame.use_count() == before + 3);  // pointers, not copies

  // Through real Sessions too: each queue holds the same buffer.
  wsrelay::stats::Stats stats;
  wsrelay::fakes::FakeTransport t1, t2;
  wsrelay::session::Session s1("s1", {}, &t1, &stats, 1 << 20);
  wsrelay::session::Session s2("s2", {}, &t2, &stats, 1 << 20);
  hub.subscribe("live", &s1);
  hub.subscribe("live", &s2);
  const FramePtr news = Frame::text("{\"type\":\"news\"}");
  REQUIRE(hub.publish("live", news, nullptr) == 2);
  REQUIRE(s1.has_pending());
  REQUIRE(s2.has_pending());
  CHECK(s1.front().get() == news.get());
  CHECK(s2.front().get() == news.get());
  CHECK(t1.write_requests == 1);
  CHECK(t2.write_requests == 1);
  CHECK(wsrelay::fakes::drain(s1) == std::vector<std::string>{"{\"type\":\"news\"}"});
  CHECK(stats.messages_out == 2);
  hub.unsubscribe_all(&s1);
  hub.unsubscribe_all(&s2);
}

TEST_CASE("hub: an emptied channel is removed", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a, b;
  hub.subscribe("room", &a);
  hub.subscribe("room", &b);
  hub.subscribe("lobby", &a);
  CHECK(hub.channel_count() == 2);
  CHECK(hub.unsubscribe("room", &a));
  CHECK(hub.channel_count() == 2);
  CHECK(hub.subscriber_count("room") == 1);
  CHECK(hub.unsubscribe("room", &b));
  CHECK(hub.channel_count() == 1);
  CHECK(hub.subscriber_count("room") == 0);
  CHECK(hub.publish("room", Frame::text("x"), nullptr) == 0);
  CHECK(b.got.empty());
}

TEST_CASE("hub: unsubscribe_all leaves every channel", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a, b;
  for (const char* ch : {"one", "two", "three"}) hub.subscribe(ch, &a);
  hub.subscribe("two", &b);
  CHECK(hub.subscription_count() == 4);
  CHECK(hub.channel_count() == 3);

  hub.unsubscribe_all(&a);
  CHECK(a.channels().empty());
  CHECK(hub.subscription_count() == 1);
  CHECK(hub.channel_count() == 1);  // "one" and "three" emptied
  CHECK(hub.subscriber_count("two") == 1);
  CHECK(hub.publish("two", Frame::text("x"), nullptr) == 1);
  CHECK(a.got.empty());
  CHECK(b.got.size() == 1);

  hub.unsubscribe_all(&a);  // nothing left: a no-op
  CHECK(hub.subscription_count() == 1);
  // And a can come back.
  CHECK(hub.subscribe("one", &a));
}

TEST_CASE("hub: delivery after swap-remove still reaches the remaining subscribers", "[pubsub]") {
  Hub hub;
  RecordingSubscriber s[5];
  for (auto& x : s) hub.subscribe("room", &x);
  CHECK(hub.unsubscribe("room", &s[1]));
  CHECK(hub.unsubscribe("room", &s[0]));
  CHECK(hub.publish("room", Frame::text("x"), &s[4]) == 2);
  CHECK(s[0].got.empty());
  CHECK(s[1].got.empty());
  CHECK(s[2].got.size() == 1);
  CHECK(s[3].got.size() == 1);
  CHECK(s[4].got.empty());
}

TEST_CASE("hub: next_seq counts per channel and restarts after the channel empties", "[pubsub]") {
  Hub hub;
  RecordingSubscriber a, b;
  hub.subscribe("room", &a);
  hub.subscribe("lobby", &b);
  CHECK(hub.next_seq("room") == 1);
  CHECK(hub.next_seq("room") == 2);
  CHECK(hub.next_seq("lobby") == 1);
  CHECK(hub.next_seq("room") == 3);
  CHECK(hub.next_seq("lobby") == 2);

  // Another subscriber joining does not reset the channel.
  hub.subscribe("room", &b);
  CHECK(hub.next_seq("room") == 4);
  hub.unsubscribe("room", &a);
  CHECK(hub.next_seq("room") == 5);

  // Emptied: the channel and its counter are gone.
  hub.unsubscribe("room", &b);
  CHECK(hub.channel_count() == 1);
  hub.subscribe("room", &a);
  CHECK(hub.next_seq("room") == 1);
  CHECK(hub.next_seq("lobby") == 3);
}

TEST_CASE("hub: next_seq on a channel without subscribers", "[pubsub]") {
  Hub hub;
  // The sender of a message to an empty channel still gets increasing numbers...
  CHECK(hub.next_seq("void") == 1);
  CHECK(hub.next_seq("void") == 2);
  CHECK(hub.channel_count() == 0);  // ...without creating a channel
  // ...and a first subscriber carries on from there, so no number repeats.
  RecordingSubscriber a;
  hub.subscribe("void", &a);
  CHECK(hub.next_seq("void") == 3);
  hub.unsubscribe("void", &a);
  CHECK(hub.next_seq("void") == 1);
}

TEST_CASE("hub: counters", "[pubsub]") {
  Hub hub;
  CHECK(hub.channel_count() == 0);
  CHECK(hub.subscription_count() == 0);
  CHECK(hub.deliveries() == 0);
  CHECK(hub.subscriber_count("nowhere") == 0);

  RecordingSubscriber a, b, c;
  hub.subscribe("x", &a);
  hub.subscribe("x", &b);
  hub.subscribe("y", &b);
  hub.subscribe("z", &c);
  hub.subscribe("x", &a);  // refused: not counted twice
  CHECK(hub.channel_count() == 3);
  CHECK(hub.subscriber_count("x") == 2);
  CHECK(hub.subscriber_count("y") == 1);
  CHECK(hub.subscriber_count("z") == 1);
  CHECK(hub.subscription_count() == 4);
  CHECK(channels_of(b) == std::vector<std::string>{"x", "y"});

  hub.publish("x", Frame::text("1"), nullptr);  // 2
  hub.publish("x", Frame::text("2"), &a);       // 1
  hub.publish("y", Frame::text("3"), &b);       // 0
  hub.publish("q", Frame::text("4"), nullptr);  // 0
  CHECK(hub.deliveries() == 3);

  hub.unsubscribe("x", &b);
  CHECK(hub.subscription_count() == 3);
  CHECK(hub.subscriber_count("x") == 1);
  hub.unsubscribe_all(&b);
  hub.unsubscribe_all(&c);
  CHECK(hub.channel_count() == 1);
  CHECK(hub.subscription_count() == 1);
  CHECK(hub.deliveries() == 3);  // history, not state
}
