// The config's channel_options: what channels keep (pubsub/channel_options.hpp).
#include "config/loader.hpp"

#include "pubsub/channel_name.hpp"

#include <cjson/cJSON.h>

namespace wsrelay::config {

std::optional<pubsub::ChannelRule> Loader::read_channel_rule(const cJSON* obj, const std::string& path) {
  const std::size_t before = errors_.size();
  check_keys(obj, path, {"match", "history_size", "history_ttl", "presence", "join_leave"});
  pubsub::ChannelRule rule;
  const std::string match_path = child_path(path, "match");
  if (const cJSON* v = member(obj, "match")) {
    if (auto m = get_string(v, match_path)) {
      const std::size_t star = m->find('*');
      if (m->empty()) {
        error(match_path, "expected a channel name, or a prefix ending in '*'");
      } else if (star != std::string::npos && star != m->size() - 1) {
        error(match_path, "'*' may only end the pattern (a prefix), got " + quote(*m));
      } else if (const char* problem = pubsub::channel_name_problem(*m)) {
        error(match_path, problem);
      } else {
        rule.match = std::move(*m);
      }
    }
  } else {
    error(match_path, "required key is missing");
  }
  if (const cJSON* v = member(obj, "history_size")) {
    if (auto n = get_integer(v, child_path(path, "history_size"), 0, 100000)) rule.options.history_size = *n;
  }
  if (const cJSON* v = member(obj, "history_ttl")) {
    const std::string ttl_path = child_path(path, "history_ttl");
    if (auto n = get_integer(v, ttl_path, 1, 30LL * 24 * 3600)) rule.options.history_ttl_s = *n;
    if (member(obj, "history_size") == nullptr) error(ttl_path, "needs \"history_size\" (the history it bounds)");
  } else if (rule.options.history_size != 0) {
    rule.options.history_ttl_s = 300;
  }
  for (const char* key : {"presence", "join_leave"}) {
    if (const cJSON* v = member(obj, key)) {
      if (!cJSON_IsBool(v)) {
        error(child_path(path, key), "expected a boolean");
      } else {
        (std::string_view(key) == "presence" ? rule.options.presence : rule.options.join_leave) = cJSON_IsTrue(v);
      }
    }
  }
  if (errors_.size() != before) return std::nullopt;
  return rule;
}

void Loader::read_channel_options(const cJSON* item, Config& cfg) {
  if (item == nullptr) return;
  const std::string path = "channel_options";
  if (!cJSON_IsArray(item)) {
    error(path, "expected an array of {\"match\": ..., ...} objects");
    return;
  }
  std::vector<std::string> paths;  // parallel to cfg.channel_options
  for_each_object(item, path, [&](const cJSON* el, const std::string& el_path) {
    auto rule = read_channel_rule(el, el_path);
    if (!rule) return;
    // First match wins: a rule that an earlier one covers would never apply.
    for (std::size_t j = 0; j < cfg.channel_options.size(); ++j) {
      const std::string& earlier = cfg.channel_options[j].match;
      std::string_view later = rule->match;
      if (!later.empty() && later.back() == '*') later.remove_suffix(1);
      const bool shadowed = earlier == rule->match || (earlier.back() == '*' && pubsub::channel_rule_matches(earlier, later));
      if (shadowed) {
        error(child_path(el_path, "match"), "every channel " + quote(rule->match) + " matches is already matched by " +
                                                paths[j] + " (" + quote(earlier) +
                                                "; the first match wins, so this rule would never apply)");
        return;
      }
    }
    cfg.channel_options.push_back(std::move(*rule));
    paths.push_back(el_path);
  });
}

}  // namespace wsrelay::config
