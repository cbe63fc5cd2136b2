#include "server/hosted.hpp"

#include <algorithm>
#include <mutex>
#include <vector>

namespace wsrelay::server {

namespace {

std::mutex g_mutex;
std::vector<Relay*> g_relays;

}  // namespace

void host_relay(Relay& relay) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_relays.push_back(&relay);
}

void unhost_relay(Relay& relay) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_relays.erase(std::remove(g_relays.begin(), g_relays.end(), &relay), g_relays.end());
}

Relay* hosted_relay(const void* user) {
  if (user == nullptr) return nullptr;
  std::lock_guard<std::mutex> lock(g_mutex);
  for (Relay* r : g_relays) {
    if (r == user) return r;
  }
  return nullptr;
}

}  // namespace wsrelay::server
