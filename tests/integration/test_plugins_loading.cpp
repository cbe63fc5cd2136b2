// How plugins are found and refused: lws's own lws_plugins_init() (its
// file-name rule, its silent failures) and the relay's loader on top of it,
// which names the file and the reason for every plugin it cannot use.
#include "integration/test_plugins_support.hpp"
#include "server/plugin_loader.hpp"
#include "server/server.hpp"
#include "support/json_helpers.hpp"
#include "support/server_fixture.hpp"
#include "support/server_process.hpp"

#include <libwebsockets.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>

using namespace wsrelay::test;
using wsrelay::server::PluginSet;
using wsrelay::test::plugins::kPluginDir;
using wsrelay::test::plugins::quoted;
using wsrelay::test::plugins::test_plugin_dir;

namespace {

std::vector<std::string> lws_load(const std::string& dir, const char* cls, const char* filter) {
  lws_plugin* list = nullptr;
  const char* dirs[] = {dir.c_str(), nullptr};
  lws_plugins_init(&list, dirs, cls, filter, nullptr, nullptr);
  std::vector<std::string> names;
  for (lws_plugin* p = list; p != nullptr; p = p->list) names.emplace_back(p->hdr->name);
  lws_plugins_destroy(&list, nullptr, nullptr);
  return names;
}

// `wsrelay --check` and a real start on a config using plugin folder `dir`.
// True when a config loading plugins from dir is refused, both by --check
// and at start (exit 1, "not started"), with stderr naming every needle.
bool refused_naming(const std::string& dir, const std::vector<std::string>& needles) {
  TempDir tmp;
  const std::string config = tmp.write("c.json", "{\"plugin_dirs\": [" + quoted(dir) + R"(],
      "listen": {"port": 0, "protocols": ["wsrelay-echo"]}, "endpoints": [{"path": "/ws"}]})");
  bool refused = true;
  for (const bool check : {true, false}) {
    std::vector<std::string> args = {WSRELAY_BINARY, "--config", config};
    if (check) args.push_back("--check");
    const CommandResult r = run_command(args);
    UNSCOPED_INFO((check ? "--check" : "start") << " stderr:\n" << r.err);
    refused = refused && r.exit_code == 1;
    for (const auto& needle : needles) refused = refused && r.err.find(needle) != std::string::npos;
    if (!check) refused = refused && r.err.find("not started") != std::string::npos;
  }
  return refused;
}

}  // namespace

TEST_CASE("plugins: lws derives the symbol from the file name", "[plugins][lws]") {
  CHECK(PluginSet::lws_symbol_of("libprotocol_wsrelay.so") == "wsrelay");
  CHECK(PluginSet::lws_symbol_of("libprotocol_lws_mirror.so") == "lws_mirror");
  CHECK(PluginSet::lws_symbol_of("libwsrelay_ext_jwt.so") == "ext_jwt");
  CHECK(PluginSet::lws_symbol_of("libwebsockets-evlib_ev.so") == "evlib_ev");
  CHECK(PluginSet::lws_symbol_of("libprotocol_x.so.1.2") == "x");
  CHECK(PluginSet::lws_symbol_of("plugin.so").empty());
}

TEST_CASE("plugins: what lws_plugins_init does with a folder (lws 4.1)", "[plugins][lws]") {
  lws_set_log_level(0, nullptr);
  const std::string scan = test_plugin_dir("scan");  // libprotocol_aaa_broken.so, libprotocol_zzz_good.so
  // Without a filter lws stops the scan at the first file it cannot load:
  // the good plugin sorted after the broken one is never loaded.
  CHECK(lws_load(scan, "lws_protocol_plugin", nullptr).empty());
  // With the symbol as filter only that file is opened: the good one loads.
  CHECK(lws_load(scan, "lws_protocol_plugin", "zzz_good") == std::vector<std::string>{"good"});
  // The filter is compared with the whole symbol, not a prefix.
  CHECK(lws_load(scan, "lws_protocol_plugin", "zzz").empty());
  // A plugin of another class is not loaded (and reports nothing).
  CHECK(lws_load(scan, "wsrelay_plugin", "zzz_good").empty());
  // A symbol shorter than 6 characters is refused without a word.
  CHECK(lws_load(test_plugin_dir("short"), "lws_protocol_plugin", nullptr).empty());
  // The shipped echo plugin loads under its symbol.
  CHECK(lws_load(kPluginDir, "lws_protocol_plugin", "wsrelay_echo") == std::vector<std::string>{"wsrelay echo"});
  wsrelay::server::install_lws_logging();
}

TEST_CASE("plugins: a plugin that cannot be loaded is a start error naming the file", "[plugins][loader]") {
  SECTION("missing symbol") {
    CHECK(refused_naming(test_plugin_dir("nosymbol"), {"libprotocol_nosymbol.so", "no exported symbol 'nosymbol'"}));
  }
  SECTION("symbol of a renamed file") {
    CHECK(refused_naming(test_plugin_dir("renamed"), {"libprotocol_renamed_echo.so", "no exported symbol 'renamed_echo'"}));
  }
  SECTION("wrong magic") {
    CHECK(refused_naming(test_plugin_dir("badmagic"), {"libprotocol_badmagic.so", "lws plugin API magic 1", "expects 190"}));
  }
  SECTION("not a plugin header at all") {
    CHECK(refused_naming(test_plugin_dir("notaplugin"), {"libprotocol_notaplugin.so", "lws plugin API magic"}));
  }
  SECTION("wrong class") {
    CHECK(refused_naming(test_plugin_dir("badclass"), {"libprotocol_badclass.so", "class 'some_other_class'"}));
  }
  SECTION("another ABI version") {
    CHECK(refused_naming(test_plugin_dir("oldabi"),
                   {"libwsrelay_ext_oldabi.so", "built against wsrelay plugin ABI 999", "speaks ABI 2"}));
  }
  SECTION("a symbol lws 4.1 would skip") {
    CHECK(refused_naming(test_plugin_dir("short"), {"libprotocol_tiny.so", "shorter than 6 characters"}));
  }
  SECTION("a file that is no shared object") {
    TempDir dir;
    dir.write("libprotocol_garbage.so", "not an ELF file");
    CHECK(refused_naming(dir.path(), {"libprotocol_garbage.so", "cannot load"}));
  }
  SECTION("two files lws would both load for one symbol") {
    TempDir dir;
    std::filesystem::copy_file(kPluginDir + "/libprotocol_wsrelay_echo.so", dir.path() + "/libprotocol_wsrelay_echo.so");
    std::filesystem::copy_file(kPluginDir + "/libprotocol_wsrelay_echo.so", dir.path() + "/libother-wsrelay_echo.so");
    CHECK(refused_naming(dir.path(), {"libother-wsrelay_echo.so", "libprotocol_wsrelay_echo.so", "keep one"}));
  }
}

TEST_CASE("plugins: config errors name the key", "[plugins][config]") {
  TempDir tmp;
  auto errors_of = [&](const std::string& json) {
    const std::string config = tmp.write("c.json", json);
    const CommandResult r = run_command({WSRELAY_BINARY, "--check", "--config", config});
    CHECK(r.exit_code == 1);
    return r.err;
  };
  const std::string dirs = "\"plugin_dirs\": [" + quoted(kPluginDir) + "], ";
  CHECK_THAT(errors_of("{" + dirs + R"("listen": {"port": 0, "protocols": ["no-such-protocol"]}, "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("listen.protocols[0]: no protocol plugin provides \"no-such-protocol\"") &&
                 Catch::Contains("protocols found: wsrelay-echo"));
  CHECK_THAT(errors_of("{" + dirs + R"("listen": [{"port": 0}, {"port": 0, "protocols": ["wsrelay-echo", "x"]}], "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("listen[1].protocols[1]: no protocol plugin provides \"x\""));
  CHECK_THAT(errors_of("{" + dirs + R"("extensions": ["nothere"], "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("extensions[0]: no extension plugin named \"nothere\""));
  CHECK_THAT(errors_of(R"({"plugin_dirs": ["/no/such/folder"], "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("plugin_dirs[0]: not a folder: /no/such/folder"));
  CHECK_THAT(errors_of(R"({"plugin_dirs": "plugins", "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("plugin_dirs: expected an array of folders"));
  CHECK_THAT(errors_of(R"({"listen": {"port": 0, "protocols": ["wsrelay"]}, "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("listen.protocols[0]: \"wsrelay\" is built in and always served"));
  CHECK_THAT(errors_of(R"({"listen": {"port": 0, "protocols": [{"name": "x", "options": {"a": [1]}}]}, "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("listen.protocols[0].options.a: expected a string, number or boolean"));
  CHECK_THAT(errors_of(R"({"listen": {"port": 0, "protocols": [{"options": {}}]}, "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("listen.protocols[0].name: required key is missing"));
  CHECK_THAT(errors_of(R"({"extensions": [{"name": "x", "options": 3}], "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("extensions[0].options: expected an object"));
  CHECK_THAT(errors_of(R"({"extensions": ["a b"], "endpoints": [{"path": "/ws"}]})"),
             Catch::Contains("extensions[0]: expected a extension name"));
}

TEST_CASE("plugins: --check loads the plugins a config uses and says ok", "[plugins][config]") {
  TempDir tmp;
  const std::string config = tmp.write("c.json", "{\"plugin_dirs\": [" + quoted(kPluginDir) + R"(],
      "listen": {"port": 0, "protocols": ["wsrelay-echo"]}, "endpoints": [{"path": "/ws"}]})");
  const CommandResult r = run_command({WSRELAY_BINARY, "--check", "--config", config});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("ok (1 endpoint)"));
}

TEST_CASE("plugins: the default plugin folders", "[plugins][loader]") {
  const auto dirs = PluginSet::default_dirs();
  REQUIRE(dirs.size() == 2);
  // Next to libwsrelay_core.so first (an installed tree), then this build's.
  CHECK_THAT(dirs[0], Catch::EndsWith("/wsrelay/plugins"));
  CHECK(dirs[1] == kPluginDir);
  std::vector<std::string> errors;
  auto set = PluginSet::load_dirs(dirs, false, errors);
  INFO(Catch::Detail::stringify(errors));
  REQUIRE(set != nullptr);
  // The relay and the jwt extension are built in: their files are skipped.
  CHECK(set->protocol("wsrelay-echo") != nullptr);
  CHECK(set->protocol("wsrelay") == nullptr);
  CHECK(set->extension("jwt") == nullptr);
  CHECK(set->protocol_names() == std::vector<std::string>{"wsrelay-echo"});
}
