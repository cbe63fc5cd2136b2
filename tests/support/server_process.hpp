// Runs the real server binary (or any helper, e.g. the python echo server)
// as a child process for the integration tests.
//
// Children are started with fork/exec so that, before exec, they can ask the
// kernel to SIGKILL them when the test runner dies (PR_SET_PDEATHSIG): a
// crashed or killed test run must not leave servers holding ports. Note that
// Linux ties that signal to the *thread* that forked, so start servers from
// the test's own thread (as Catch2 test cases do), not from a short-lived
// helper thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <csignal>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace wsrelay::test {

using EnvList = std::vector<std::pair<std::string, std::string>>;

class ServerProcess {
public:
  // Spawns the binary with args and the test's environment plus env (which
  // overrides variables of the same name), then reads its output until a
  // complete line containing "listening on ws://" appears, and takes the port
  // after the last ':' of the "ws://HOST:PORT" token on that line. Returns
  // nullptr and sets *error (including the output so far) on timeout, on exit
  // before that line, or if the binary cannot be executed.
  //
  // The child's stdout and stderr both go to one pipe that a background thread
  // keeps draining into log(): nothing the child prints is lost or interleaved
  // with the test report, and a chatty child never blocks on a full pipe. Its
  // stdin is a pipe we hold open until destruction, so helpers that exit on
  // stdin EOF (echo_server.py) die with us however we end.
#ifdef WSRELAY_BINARY
  static std::unique_ptr<ServerProcess> start(const std::vector<std::string>& args, const EnvList& env = {},
                                              std::string* error = nullptr,
                                              std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                              const std::string& binary = WSRELAY_BINARY);
#else
  static std::unique_ptr<ServerProcess> start(const std::vector<std::string>& args, const EnvList& env,
                                              std::string* error, std::chrono::milliseconds timeout,
                                              const std::string& binary);
#endif

  ~ServerProcess();  // SIGTERM, wait up to 5 s, then SIGKILL; joins the reader thread
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  int port() const;
  pid_t pid() const;
  std::string log() const;  // everything read from stdout/stderr so far (thread-safe)
  // True once needle appears in log(); false on timeout or when the child's
  // output ended without it.
  bool wait_for_log(const std::string& needle, std::chrono::milliseconds timeout);
  // Sends a signal, waits for exit, returns the exit status (WEXITSTATUS, or
  // 128+signal), or -1 on timeout (the process is then left running). If the
  // process has already exited, returns its status without signalling.
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Exit status as stop() reports it, or -1 while the process is running.
  int exit_status();

private:
  ServerProcess() = default;
  void reader_loop();
  bool reap(std::chrono::milliseconds timeout);  // true once the child is reaped

  pid_t pid_ = -1;
  int port_ = 0;
  int output_fd_ = -1;  // read end of the child's stdout+stderr pipe
  int stdin_fd_ = -1;   // write end of the child's stdin
  int wake_fds_[2] = {-1, -1};  // tells the reader thread to drain and stop
  bool reaped_ = false;
  int status_ = -1;

  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::string log_;
  bool output_eof_ = false;
  std::thread reader_;
};

// Runs a command to completion capturing stdout and stderr separately; for
// CLI tests (--check, --help, --version). argv[0] is searched in PATH if it
// has no '/'. stdin is /dev/null. exit_code is WEXITSTATUS, 128+signal, 127
// if the command could not be executed (err says why), or -1 on timeout (the
// command is then SIGKILLed and err ends with a note).
struct CommandResult {
  int exit_code;
  std::string out;
  std::string err;
};
CommandResult run_command(const std::vector<std::string>& argv, const EnvList& env = {},
                          std::chrono::milliseconds timeout = std::chrono::seconds(20));

}  // namespace wsrelay::test
