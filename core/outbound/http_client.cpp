#include "outbound/http_client.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <deque>
#include <mutex>

namespace wsrelay::outbound {

std::string url_problem(std::string_view url) {
  std::string_view rest;
  if (url.rfind("http://", 0) == 0) {
    rest = url.substr(7);
  } else if (url.rfind("https://", 0) == 0) {
    rest = url.substr(8);
  } else {
    return "url must start with http:// or https://";
  }
  for (unsigned char ch : url) {
    if (ch <= 0x20 || ch == 0x7f) return "url contains a space or a control character";
  }
  const std::size_t end = rest.find_first_of("/?#");
  const std::string_view authority = rest.substr(0, end);
  if (authority.empty() || authority[0] == ':') return "url has no host";
  if (authority.find('@') != std::string_view::npos) return "url must not carry credentials (send an authorization header)";
  return {};
}

// One transfer: the request, the answer being read, and who to tell.
struct HttpClient::Pending {
  HttpRequest request;
  Done done;
  HttpResponse response;
  CURL* easy = nullptr;
  curl_slist* header_list = nullptr;
  bool too_large = false;
  char error_buffer[CURL_ERROR_SIZE] = {0};

  ~Pending() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (header_list != nullptr) curl_slist_free_all(header_list);
  }
};

namespace {

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) {
  auto* p = static_cast<HttpClient::Pending*>(user);
  const std::size_t len = size * n;
  if (p->response.body.size() + len > p->request.max_response_bytes) {
    p->too_large = true;
    return 0;  // aborts the transfer with CURLE_WRITE_ERROR
  }
  p->response.body.append(data, len);
  return len;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) {
  auto* p = static_cast<HttpClient::Pending*>(user);
  const std::size_t len = size * n;
  std::string_view line(data, len);
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
  if (line.rfind("HTTP/", 0) == 0) {
    p->response.headers.clear();  // a new answer (after a redirect, or a 100 Continue)
    return len;
  }
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos || colon == 0) return len;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.remove_suffix(1);
  // The headers of one answer are bounded like its body.
  if (p->response.body.size() + p->response.headers.size() * 64 + len > p->request.max_response_bytes) {
    p->too_large = true;
    return 0;
  }
  p->response.headers.emplace_back(std::move(name), std::string(value));
  return len;
}

std::string error_text(const HttpClient::Pending& p, CURLcode code) {
  const std::string detail = p.error_buffer[0] != 0 ? std::string(p.error_buffer) : std::string(curl_easy_strerror(code));
  switch (code) {
    case CURLE_OPERATION_TIMEDOUT:
      return "timeout";
    case CURLE_COULDNT_RESOLVE_HOST:
      return "resolve failed: " + detail;
    case CURLE_COULDNT_CONNECT:
      return "connect failed: " + detail;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CACERT_BADFILE:
      return "tls: " + detail;
    case CURLE_FILESIZE_EXCEEDED:
      return "too large";
    case CURLE_WRITE_ERROR:
      return p.too_large ? "too large" : "failed: " + detail;
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
      return "closed mid-body: " + detail;
    case CURLE_TOO_MANY_REDIRECTS:
      return "too many redirects";
    default:
      return "failed: " + detail;
  }
}

std::once_flag curl_initialised;

}  // namespace

// The worker thread and what it shares with the loop's thread: incoming
// requests (loop → worker) under a mutex; answers go back through
// Completions.
struct HttpClient::Worker {
  explicit Worker(HttpClient& owner) : owner(owner) {
    multi = curl_multi_init();
    thread = std::thread([this] { run(); });
  }
  ~Worker() {
    {
      std::lock_guard<std::mutex> lock(mutex);
      stopping = true;
    }
    curl_multi_wakeup(multi);
    thread.join();
    for (auto& p : active) curl_multi_remove_handle(multi, p->easy);
    active.clear();
    incoming.clear();
    curl_multi_cleanup(multi);
  }

  void submit(std::unique_ptr<Pending> p) {
    {
      std::lock_guard<std::mutex> lock(mutex);
      incoming.push_back(std::move(p));
    }
    curl_multi_wakeup(multi);
  }

  // Worker thread only.
  void attach(std::unique_ptr<Pending> p) {
    Pending& r = *p;
    r.easy = curl_easy_init();
    CURL* e = r.easy;
    curl_easy_setopt(e, CURLOPT_URL, r.request.url.c_str());
    curl_easy_setopt(e, CURLOPT_PRIVATE, &r);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    // Straight to the backend: a proxy in the environment (http_proxy) is
    // not the relay's to follow, and would surprise a loopback backend.
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, r.request.timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, r.request.timeout_ms);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r.error_buffer);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(r.request.max_response_bytes));
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, "");  // what libcurl can decode; the cap applies after
    if (r.request.max_redirects > 0) {
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(r.request.max_redirects));
    }
    if (r.request.tls_insecure) {
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
      curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    const std::string& m = r.request.method;
    if (m == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (m != "GET" || !r.request.body.empty()) {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m.c_str());
      if (!r.request.body.empty() || m == "POST" || m == "PUT" || m == "PATCH") {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.request.body.data());
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(r.request.body.size()));
      }
    }
    // No "Expect: 100-continue" round trip for large bodies.
    r.header_list = curl_slist_append(r.header_list, "Expect:");
    for (const auto& [name, value] : r.request.headers) {
      r.header_list = curl_slist_append(r.header_list, (name + ": " + value).c_str());
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r.header_list);
    curl_multi_add_handle(multi, e);
    active.push_back(std::move(p));
  }

  void run() {
    for (;;) {
      std::deque<std::unique_ptr<Pending>> batch;
      {
        std::lock_guard<std::mutex> lock(mutex);
        if (stopping) return;
        batch.swap(incoming);
      }
      for (auto& p : batch) attach(std::move(p));
      int running = 0;
      curl_multi_perform(multi, &running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Pending* raw = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
        const CURLcode code = msg->data.result;
        curl_multi_remove_handle(multi, msg->easy_handle);
        auto it = std::find_if(active.begin(), active.end(), [&](const auto& a) { return a.get() == raw; });
        if (it == active.end()) continue;
        std::unique_ptr<Pending> p = std::move(*it);
        active.erase(it);
        if (code == CURLE_OK) {
          long status = 0;
          curl_easy_getinfo(p->easy, CURLINFO_RESPONSE_CODE, &status);
          p->response.status = static_cast<int>(status);
        } else {
          p->response.error = error_text(*p, code);
          p->response.headers.clear();
          p->response.body.clear();
        }
        // Handed to the loop's thread with its callback; the easy handle is
        // freed here, on the thread that used it.
        auto shared = std::make_shared<std::pair<HttpResponse, Done>>(std::move(p->response), std::move(p->done));
        p.reset();
        HttpClient* client = &owner;
        owner.completions_.post([client, shared] { client->finished(std::move(shared->first), shared->second); });
      }
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
  }

  HttpClient& owner;
  CURLM* multi = nullptr;
  std::thread thread;
  std::mutex mutex;
  bool stopping = false;
  std::deque<std::unique_ptr<Pending>> incoming;
  std::vector<std::unique_ptr<Pending>> active;  // worker thread only
};

HttpClient::HttpClient(loop::Completions& completions) : completions_(completions) {}

HttpClient::~HttpClient() = default;

void HttpClient::start(HttpRequest request, Done done) {
  if (worker_ == nullptr) {
    std::call_once(curl_initialised, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    worker_ = std::make_unique<Worker>(*this);
  }
  auto p = std::make_unique<Pending>();
  p->request = std::move(request);
  p->done = std::move(done);
  ++in_flight_;
  ++counters_.requests;
  worker_->submit(std::move(p));
}

void HttpClient::finished(HttpResponse response, const Done& done) {
  --in_flight_;
  if (!response.error.empty()) {
    ++counters_.failures;
    if (response.error == "timeout") ++counters_.timeouts;
  }
  done(std::move(response));
}

}  // namespace wsrelay::outbound
