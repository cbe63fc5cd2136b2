#include "support/server_fixture.hpp"

#include "util/log.hpp"

#include <catch2/catch.hpp>

#include <csignal>
#include <fstream>
#include <sstream>

namespace wsrelay::test {

config::EnvLookup empty_env() {
  return [](const std::string&) -> std::optional<std::string> { return std::nullopt; };
}

config::Config default_test_config() {
  config::Config cfg = config::default_config(empty_env());
  cfg.listeners.at(0).port = 0;
  cfg.log_level = "warn";
  return cfg;
}

config::Config parse_test_config(const std::string& json, const std::string& base_dir) {
  config::LoadResult loaded = config::parse(json, "test.json", base_dir, empty_env());
  std::string all;
  for (const auto& e : loaded.errors) all += e + "\n";
  INFO("config errors:\n" << all << "config:\n" << json);
  REQUIRE(loaded.config.has_value());
  config::Config cfg = std::move(*loaded.config);
  for (auto& l : cfg.listeners) l.port = 0;
  if (json.find("\"log_level\"") == std::string::npos) cfg.log_level = "warn";
  return cfg;
}

std::string standard_script_with(const std::string& extra) {
  std::ifstream in(std::string(WSRELAY_SOURCE_DIR) + "/scripts/standard.lua");
  REQUIRE(in.good());
  std::stringstream ss;
  ss << in.rdbuf();
  std::string text = ss.str();
  const std::string tail = "return handlers";
  const auto pos = text.rfind(tail);
  REQUIRE(pos != std::string::npos);
  text.insert(pos, extra + "\n");
  return text;
}

ServerFixture::ServerFixture() : ServerFixture(default_test_config()) {}

ServerFixture::ServerFixture(const config::Config& cfg) {
  std::signal(SIGPIPE, SIG_IGN);
  if (auto level = log::parse_level(cfg.log_level)) log::set_level(*level);
  std::vector<std::string> errors;
  server_ = server::Server::create(cfg, errors);
  std::string all;
  for (const auto& e : errors) all += e + "\n";
  INFO("Server::create errors:\n" << all);
  REQUIRE(server_ != nullptr);
  REQUIRE(server_->ports().size() == cfg.listeners.size());
  REQUIRE(server_->ports().at(0) > 0);
  thread_ = std::thread([s = server_.get()] { s->run(); });
}

ServerFixture::~ServerFixture() {
  if (server_) server_->stop();
  if (thread_.joinable()) thread_.join();
  server_.reset();
}

int ServerFixture::port(std::size_t listener) const { return server_->ports().at(listener); }

std::unique_ptr<WsClient> ServerFixture::connect_raw(const std::string& path) {
  std::string error;
  auto client = WsClient::connect("127.0.0.1", port(), path, {}, &error);
  INFO("connect " << path << ": " << error);
  REQUIRE(client != nullptr);
  return client;
}

std::unique_ptr<WsClient> ServerFixture::connect(const std::string& path) {
  auto client = connect_raw(path);
  Json welcome = recv_json(*client);
  INFO("welcome: " << welcome.print());
  REQUIRE(welcome.str("type") == "welcome");
  return client;
}

std::unique_ptr<WsClient> ServerFixture::connect_as(const std::string& user, const std::string& channel) {
  auto client = connect();
  auth(*client, user);
  if (!channel.empty()) subscribe(*client, channel);
  return client;
}

Json ServerFixture::status() {
  auto response = http_get("127.0.0.1", port(), "/status");
  REQUIRE(response.has_value());
  INFO("body: " << response->body);
  REQUIRE(response->status == 200);
  Json json = Json::parse(response->body);
  REQUIRE(json.is_object());
  return json;
}

Json recv_json(WsClient& client, std::chrono::milliseconds timeout) {
  auto text = client.recv_text(timeout);
  if (!text) {
    const auto& last = client.last_message();
    UNSCOPED_INFO("recv_json: no text message (closed=" << client.closed() << " close_code=" << client.close_code()
                                                        << " last kind="
                                                        << (last ? static_cast<int>(last->kind) : -1)
                                                        << " protocol_error='" << client.protocol_error() << "')");
    return Json();
  }
  Json json = Json::parse(*text);
  if (!json.ok()) UNSCOPED_INFO("recv_json: not JSON: " << *text);
  return json;
}

Json request(WsClient& client, std::string_view text, std::chrono::milliseconds timeout) {
  if (!client.send_text(text)) {
    UNSCOPED_INFO("request: send failed: " << text);
    return Json();
  }
  return recv_json(client, timeout);
}

bool silent_for(WsClient& client, std::chrono::milliseconds quiet) {
  auto message = client.recv(quiet);
  if (message) {
    UNSCOPED_INFO("silent_for: unexpected message kind=" << static_cast<int>(message->kind) << " data="
                                                        << message->data);
    return false;
  }
  return !client.closed();
}

void auth(WsClient& client, const std::string& user) {
  Json reply = request(client, R"({"type":"auth","id":"auth","token":")" + user + "\"}");
  INFO("auth reply: " << reply.print());
  REQUIRE(reply.str("type") == "auth.ok");
  REQUIRE(reply.str("user") == user);
}

void subscribe(WsClient& client, const std::string& channel) {
  Json reply = request(client, R"({"type":"subscribe","id":"sub","channel":")" + channel + "\"}");
  INFO("subscribe reply: " << reply.print());
  REQUIRE(reply.str("type") == "subscribe.ok");
  REQUIRE(reply.str("channel") == channel);
}

std::string id_of(const Json& message) { return message.get("id").print(); }

long long now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace wsrelay::test
