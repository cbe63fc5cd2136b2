#include "support/server_process.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>

extern char** environ;

namespace wsrelay::test {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::string_view kReadyNeedle = "listening on ws://";

int remaining_ms(Clock::time_point deadline, int cap_ms = 24 * 3600 * 1000) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<long long>(left, 0, cap_ms));
}

// Exit status in the shell's convention, which is what the CLI tests compare.
int status_to_code(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// Reaps pid if it exits before deadline (polling: there is no portable
// waitpid with a timeout, and SIGCHLD handlers would interfere with whatever
// else the test process does).
bool wait_pid(pid_t pid, int* status, Clock::time_point deadline) {
  auto pause = std::chrono::milliseconds(1);
  for (;;) {
    pid_t r = ::waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {  // ECHILD: someone else reaped it; treat as gone
      *status = 0;
      return true;
    }
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::min(pause, std::chrono::milliseconds(std::max(remaining_ms(deadline), 1))));
    pause = std::min(pause * 2, std::chrono::milliseconds(20));
  }
}

std::vector<std::string> merged_environment(const EnvList& extra) {
  std::vector<std::string> out;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    std::string_view kv(*e);
    std::string_view name = kv.substr(0, kv.find('='));
    bool overridden = std::any_of(extra.begin(), extra.end(), [&](const auto& p) { return p.first == name; });
    if (!overridden) out.emplace_back(kv);
  }
  for (const auto& [name, value] : extra) out.push_back(name + "=" + value);
  return out;
}

// Resolved in the parent because the child, between fork and exec, may only
// make async-signal-safe calls (no allocation).
std::string resolve_executable(const std::string& cmd, const std::vector<std::string>& env) {
  if (cmd.find('/') != std::string::npos) return cmd;
  std::string path = "/usr/local/bin:/usr/bin:/bin";
  for (const auto& kv : env)
    if (kv.rfind("PATH=", 0) == 0) path = kv.substr(5);
  std::string_view rest = path;
  for (;;) {
    auto colon = rest.find(':');
    std::string dir(rest.substr(0, colon));
    std::string candidate = (dir.empty() ? std::string(".") : dir) + "/" + cmd;
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(candidate.c_str(), X_OK) == 0)
      return candidate;
    if (colon == std::string_view::npos) return {};
    rest.remove_prefix(colon + 1);
  }
}

// fork + exec with in_fd/out_fd/err_fd as the child's 0/1/2. Returns the pid,
// or -1 with *error set (exec failures are reported through a CLOEXEC pipe, so
// a missing binary is an error here rather than a mysterious exit 127).
pid_t spawn(const std::vector<std::string>& argv, const EnvList& env, int in_fd, int out_fd, int err_fd,
            std::string* error) {
  if (argv.empty()) {
    *error = "empty command line";
    return -1;
  }
  const std::vector<std::string> env_strings = merged_environment(env);
  const std::string exe = resolve_executable(argv[0], env_strings);
  if (exe.empty()) {
    *error = "command not found in PATH: " + argv[0];
    return -1;
  }
  std::vector<char*> c_argv;
  for (const auto& a : argv) c_argv.push_back(const_cast<char*>(a.c_str()));
  c_argv.push_back(nullptr);
  std::vector<char*> c_env;
  for (const auto& e : env_strings) c_env.push_back(const_cast<char*>(e.c_str()));
  c_env.push_back(nullptr);
  const long max_fd = std::max(::sysconf(_SC_OPEN_MAX), 1024L);

  int exec_pipe[2];
  if (::pipe2(exec_pipe, O_CLOEXEC) < 0) {
    *error = std::string("pipe2: ") + std::strerror(errno);
    return -1;
  }
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    *error = std::string("fork: ") + std::strerror(errno);
    ::close(exec_pipe[0]);
    ::close(exec_pipe[1]);
    return -1;
  }
  if (pid == 0) {
    // Child: async-signal-safe calls only until exec.
    auto die = [&](int err) {
      ssize_t ignored = ::write(exec_pipe[1], &err, sizeof err);
      (void)ignored;
      ::_exit(127);
    };
    // Die with the test runner (see the header), closing the race where the
    // parent died before prctl.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    // Start from default signal state: the test runner may ignore SIGPIPE or
    // block signals, and SIG_IGN/masks survive exec.
    sigset_t none;
    sigemptyset(&none);
    ::sigprocmask(SIG_SETMASK, &none, nullptr);
    for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGCHLD}) ::signal(sig, SIG_DFL);
    // Move the fds out of 0..2 first so dup2 cannot clobber one with another.
    const int src[3] = {in_fd, out_fd, err_fd};
    int tmp[3];
    for (int i = 0; i < 3; ++i)
      if ((tmp[i] = ::fcntl(src[i], F_DUPFD, 3)) < 0) die(errno);
    for (int i = 0; i < 3; ++i)
      if (::dup2(tmp[i], i) < 0) die(errno);
    // Nothing else of ours (other servers' pipes, client sockets) may leak
    // into the child: mark every fd above 2 close-on-exec. exec_pipe[1] thus
    // stays open until a successful exec closes it.
    if (::close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) {
      for (long fd = 3; fd < max_fd; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    }
    ::execve(exe.c_str(), c_argv.data(), c_env.data());
    die(errno);
  }

  ::close(exec_pipe[1]);
  int child_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &child_errno, sizeof child_errno);
  } while (n < 0 && errno == EINTR);
  ::close(exec_pipe[0]);
  if (n == static_cast<ssize_t>(sizeof child_errno)) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    *error = "cannot execute " + exe + ": " + std::strerror(child_errno);
    return -1;
  }
  return pid;
}

void close_fd(int& fd) {
  if (fd >= 0) ::close(fd);
  fd = -1;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// The first *complete* line containing the needle (a half-written line could
// hold a truncated port number), or "" if there is none yet.
std::string find_ready_line(const std::string& log) {
  // Only the first occurrence matters: if its line is unfinished, so is
  // everything after it.
  const std::size_t hit = log.find(kReadyNeedle);
  if (hit == std::string::npos) return {};
  const std::size_t eol = log.find('\n', hit);
  if (eol == std::string::npos) return {};
  const std::size_t bol = log.rfind('\n', hit);
  const std::size_t begin = bol == std::string::npos ? 0 : bol + 1;
  return log.substr(begin, eol - begin);
}

// "... listening on ws://HOST:PORT/..." -> PORT (0 if absent). The last ':'
// of the host:port part so that "ws://[::1]:8080" works too.
int parse_port(std::string_view line) {
  const std::size_t at = line.find("ws://");
  if (at == std::string_view::npos) return 0;
  std::string_view token = line.substr(at + 5);
  token = token.substr(0, token.find_first_of(" \t\r\n"));
  token = token.substr(0, token.find('/'));
  const std::size_t colon = token.rfind(':');
  if (colon == std::string_view::npos) return 0;
  int port = 0;
  for (std::size_t i = colon + 1; i < token.size() && token[i] >= '0' && token[i] <= '9'; ++i) {
    port = port * 10 + (token[i] - '0');
    if (port > 65535) return 0;
  }
  return port;
}

}  // namespace

// ---------------------------------------------------------------------------
// ServerProcess

std::unique_ptr<ServerProcess> ServerProcess::start(const std::vector<std::string>& args, const EnvList& env,
                                                    std::string* error, std::chrono::milliseconds timeout,
                                                    const std::string& binary) {
  std::string local_error;
  std::string& err = error ? *error : local_error;
  std::unique_ptr<ServerProcess> proc(new ServerProcess());

  int out_pipe[2];
  int in_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) < 0) {
    err = std::string("pipe2: ") + std::strerror(errno);
    return nullptr;
  }
  proc->output_fd_ = out_pipe[0];
  if (::pipe2(in_pipe, O_CLOEXEC) < 0) {
    err = std::string("pipe2: ") + std::strerror(errno);
    ::close(out_pipe[1]);
    return nullptr;
  }
  proc->stdin_fd_ = in_pipe[1];
  if (::pipe2(proc->wake_fds_, O_CLOEXEC) < 0) {
    err = std::string("pipe2: ") + std::strerror(errno);
    ::close(out_pipe[1]);
    ::close(in_pipe[0]);
    return nullptr;
  }

  std::vector<std::string> argv{binary};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = spawn(argv, env, in_pipe[0], out_pipe[1], out_pipe[1], &err);
  // Only the child uses these ends; holding them would hide the child's EOF.
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  if (pid < 0) return nullptr;
  proc->pid_ = pid;

  set_nonblocking(proc->output_fd_);
  proc->reader_ = std::thread(&ServerProcess::reader_loop, proc.get());

  const auto deadline = Clock::now() + timeout;
  std::string ready_line;
  for (;;) {
    {
      std::unique_lock lock(proc->mutex_);
      // Wake up now and then to notice an exit whose output pipe stays open
      // (a grandchild holding it).
      proc->cv_.wait_until(lock, std::min(deadline, Clock::now() + std::chrono::milliseconds(50)), [&] {
        return proc->output_eof_ || !find_ready_line(proc->log_).empty();
      });
      ready_line = find_ready_line(proc->log_);
      if (!ready_line.empty()) break;
    }
    if (proc->reap(std::chrono::milliseconds(0))) {
      // Let the reader catch the last words before quoting them.
      std::unique_lock lock(proc->mutex_);
      proc->cv_.wait_for(lock, std::chrono::milliseconds(500), [&] { return proc->output_eof_; });
      err = binary + " exited with status " + std::to_string(status_to_code(proc->status_)) +
            " before logging '" + std::string(kReadyNeedle) + "'; output:\n" + proc->log_;
      return nullptr;
    }
    if (Clock::now() >= deadline) {
      err = "timeout after " + std::to_string(timeout.count()) + " ms waiting for " + binary + " to log '" +
            std::string(kReadyNeedle) + "'; output:\n" + proc->log();
      return nullptr;  // the destructor terminates it
    }
  }
  proc->port_ = parse_port(ready_line);
  if (proc->port_ <= 0) {
    err = "cannot parse a port from the line: " + ready_line;
    return nullptr;
  }
  err.clear();
  return proc;
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0 && !reap(std::chrono::milliseconds(0))) {
    ::kill(pid_, SIGTERM);
    if (!reap(std::chrono::seconds(5))) {
      ::kill(pid_, SIGKILL);
      reap(std::chrono::seconds(30));
    }
  }
  close_fd(stdin_fd_);
  if (reader_.joinable()) {
    // The child is gone, so whatever it wrote is already in the pipe: the
    // reader drains it and stops even if a grandchild still holds the pipe.
    char byte = 'x';
    ssize_t ignored = ::write(wake_fds_[1], &byte, 1);
    (void)ignored;
    reader_.join();
  }
  close_fd(output_fd_);
  close_fd(wake_fds_[0]);
  close_fd(wake_fds_[1]);
}

void ServerProcess::reader_loop() {
  pollfd fds[2] = {{output_fd_, POLLIN, 0}, {wake_fds_[0], POLLIN, 0}};
  char buf[16 * 1024];
  for (;;) {
    int r = ::poll(fds, 2, -1);
    if (r < 0 && errno == EINTR) continue;
    const bool stop = r < 0 || fds[1].revents != 0;
    for (;;) {
      ssize_t n = ::read(output_fd_, buf, sizeof buf);
      if (n > 0) {
        std::lock_guard lock(mutex_);
        log_.append(buf, static_cast<std::size_t>(n));
        cv_.notify_all();
        continue;
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && !stop) break;
      // EOF, a read error, or drained after a stop request.
      std::lock_guard lock(mutex_);
      output_eof_ = true;
      cv_.notify_all();
      return;
    }
  }
}

bool ServerProcess::reap(std::chrono::milliseconds timeout) {
  if (reaped_) return true;
  if (pid_ <= 0) return true;
  int status = 0;
  if (!wait_pid(pid_, &status, Clock::now() + timeout)) return false;
  reaped_ = true;
  status_ = status;
  return true;
}

int ServerProcess::port() const { return port_; }
pid_t ServerProcess::pid() const { return pid_; }

std::string ServerProcess::log() const {
  std::lock_guard lock(mutex_);
  return log_;
}

bool ServerProcess::wait_for_log(const std::string& needle, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  cv_.wait_for(lock, timeout, [&] { return output_eof_ || log_.find(needle) != std::string::npos; });
  return log_.find(needle) != std::string::npos;
}

int ServerProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (reap(std::chrono::milliseconds(0))) return status_to_code(status_);
  // Signalling only an unreaped pid: a reaped one may already belong to
  // another process.
  ::kill(pid_, sig);
  if (!reap(timeout)) return -1;
  return status_to_code(status_);
}

int ServerProcess::exit_status() {
  return reap(std::chrono::milliseconds(0)) ? status_to_code(status_) : -1;
}

// ---------------------------------------------------------------------------
// run_command

CommandResult run_command(const std::vector<std::string>& argv, const EnvList& env,
                          std::chrono::milliseconds timeout) {
  CommandResult result{-1, {}, {}};
  int out_pipe[2];
  int err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) < 0) {
    result.err = std::string("pipe2: ") + std::strerror(errno);
    return result;
  }
  if (::pipe2(err_pipe, O_CLOEXEC) < 0) {
    result.err = std::string("pipe2: ") + std::strerror(errno);
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    return result;
  }
  // stdin from /dev/null: a command that unexpectedly reads input must see EOF
  // rather than hang until the timeout.
  int dev_null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  std::string error;
  const pid_t pid = dev_null < 0 ? -1 : spawn(argv, env, dev_null, out_pipe[1], err_pipe[1], &error);
  if (dev_null < 0) error = std::string("open /dev/null: ") + std::strerror(errno);
  close_fd(dev_null);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (pid < 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    result.exit_code = 127;
    result.err = error;
    return result;
  }
  set_nonblocking(out_pipe[0]);
  set_nonblocking(err_pipe[0]);

  const auto deadline = Clock::now() + timeout;
  int fds[2] = {out_pipe[0], err_pipe[0]};
  std::string* sinks[2] = {&result.out, &result.err};
  bool exited = false;
  int status = 0;
  char buf[16 * 1024];
  while (fds[0] >= 0 || fds[1] >= 0) {
    pollfd p[2] = {{fds[0], POLLIN, 0}, {fds[1], POLLIN, 0}};  // negative fds are ignored by poll
    // Short slices: the command may exit while a background grandchild keeps
    // the pipes open, and that must not cost the whole timeout.
    const int r = ::poll(p, 2, remaining_ms(deadline, 50));
    if (r < 0 && errno != EINTR) break;
    for (int i = 0; i < 2; ++i) {
      if (fds[i] < 0 || p[i].revents == 0) continue;
      for (;;) {
        const ssize_t n = ::read(fds[i], buf, sizeof buf);
        if (n > 0) {
          sinks[i]->append(buf, static_cast<std::size_t>(n));
          continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        close_fd(fds[i]);  // EOF or error
        break;
      }
    }
    if (!exited && ::waitpid(pid, &status, WNOHANG) == pid) exited = true;
    if (exited && r == 0) break;  // exited and nothing more to read
    if (Clock::now() >= deadline) break;
  }
  close_fd(fds[0]);
  close_fd(fds[1]);
  if (!exited && !wait_pid(pid, &status, deadline)) {
    ::kill(pid, SIGKILL);
    wait_pid(pid, &status, Clock::now() + std::chrono::seconds(30));
    result.exit_code = -1;
    result.err += "\n[run_command: timed out after " + std::to_string(timeout.count()) + " ms; killed]";
    return result;
  }
  result.exit_code = status_to_code(status);
  return result;
}

}  // namespace wsrelay::test
