// The epoll HTTP/1.1 server: one I/O thread, a worker pool for handlers.
#include "netprobe/http/server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <spdlog/spdlog.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <netprobe/http/stream.hpp>
#include <netprobe/util/fd.hpp>

#include "http/auth.hpp"
#include "http/tls.hpp"

namespace netprobe::http {

namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kListenId = 1;
constexpr std::uint64_t kWakeId = 2;
constexpr std::uint64_t kFirstConnId = 16;
constexpr std::size_t kReadChunk = 16 * 1024;
// After a refusal the server closes; it first reads (and drops) what the client is
// still sending for up to this long / this much, so the client sees the response
// instead of a reset.
constexpr auto kDrainTime = std::chrono::milliseconds(500);
constexpr std::size_t kDrainBytes = 1 << 20;

// Status codes with their own counter; others count as 0 ("other").
constexpr int kCodes[] = {200, 400, 401, 404, 405, 413, 414, 429, 431, 500, 501, 503, 505};
constexpr std::size_t kNumCodes = std::size(kCodes) + 1;
std::size_t codeSlot(int status) {
    for (std::size_t i = 0; i < std::size(kCodes); ++i)
        if (kCodes[i] == status) return i;
    return std::size(kCodes);
}

bool isKnownMethod(std::string_view m) {
    for (std::string_view k : {"POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
        if (m == k) return true;
    return false;
}

// The web configuration in force: TLS context, users, headers, rate limit.
struct Generation {
    std::uint64_t id = 0;
    SslCtx tls;  // null: plain HTTP
    std::unique_ptr<BasicAuth> auth;  // null: no authentication
    std::vector<std::pair<std::string, std::string>> headers;
    std::chrono::nanoseconds rate_interval{0};
    std::uint32_t rate_burst = 0;
};

Result<std::shared_ptr<const Generation>> buildGeneration(const WebConfig& web, std::uint64_t id) {
    auto g = std::make_shared<Generation>();
    g->id = id;
    if (web.tls) {
        auto ctx = makeServerContext(*web.tls);
        if (!ctx) return std::unexpected(ctx.error());
        g->tls = std::move(*ctx);
    }
    if (!web.basic_auth_users.empty()) g->auth = std::make_unique<BasicAuth>(web.basic_auth_users);
    g->headers = web.headers;
    g->rate_interval = web.rate_interval;
    g->rate_burst = web.rate_burst;
    return std::shared_ptr<const Generation>(std::move(g));
}

enum class Phase { Handshake, Head, Dispatched, Writing, Draining, Streaming };

struct Conn {
    std::uint64_t id = 0;
    util::UniqueFd fd;
    Ssl ssl;
    std::shared_ptr<const Generation> gen;
    std::string peer;
    Phase phase = Phase::Head;
    bool idle = true;         // Head: no byte of the next request yet
    bool close_after = false; // Writing: close once sent
    CloseReason close_reason = CloseReason::Done;
    bool registered = false;  // in the epoll set
    std::uint32_t interest = 0;  // the events asked for while registered
    std::string in;
    std::string out;
    std::size_t out_off = 0;
    std::size_t drained = 0;
    Clock::time_point since;     // the current phase began
    Clock::time_point deadline;  // the current phase must end by then
    std::shared_ptr<StreamChannel> stream;  // a streaming response (from its completion on)
    Clock::time_point last_write;           // Streaming: the last byte written (heartbeats)
};

StreamEnd streamEndOf(CloseReason r) {
    switch (r) {
        case CloseReason::SlowReader: return StreamEnd::SlowReader;
        case CloseReason::WriteTimeout: return StreamEnd::WriteTimeout;
        case CloseReason::ConfigChanged: return StreamEnd::ConfigChanged;
        case CloseReason::Shutdown: return StreamEnd::Shutdown;
        case CloseReason::Done: return StreamEnd::Closed;
        default: return StreamEnd::Client;
    }
}

struct Job {
    std::uint64_t conn = 0;
    Request request;
    std::shared_ptr<const Generation> gen;
};

struct Completion {
    std::uint64_t conn = 0;
    std::string bytes;
    bool keep_alive = true;
    int status = 200;
    std::shared_ptr<StreamChannel> stream;  // a streaming response
};

std::string describePeer(const sockaddr_storage& ss) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (ss.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&ss);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(s->sin_port));
    }
    if (ss.ss_family == AF_INET6) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(&ss);
        inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s->sin6_port));
    }
    return "?";
}

Result<util::UniqueFd> listenOn(const std::string& address_in, std::uint16_t port, std::uint16_t& bound) {
    std::string address = address_in;
    if (address.size() > 2 && address.front() == '[' && address.back() == ']') address = address.substr(1, address.size() - 2);
    sockaddr_storage ss{};
    socklen_t len = 0;
    int family = AF_INET;
    if (inet_pton(AF_INET, address.c_str(), &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr) == 1) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        len = sizeof(sockaddr_in);
    } else if (inet_pton(AF_INET6, address.c_str(), &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr) == 1) {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
        family = AF_INET6;
    } else {
        return std::unexpected(makeError("invalid listen address \"" + address_in + "\" (an IPv4 or IPv6 address)"));
    }
    const std::string where = (family == AF_INET6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
    util::UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return std::unexpected(errnoError(errno, "socket for " + where));
    int one = 1, zero = 0;
    // A restarted agent must bind while its previous connections linger (TIME-WAIT,
    // FIN-WAIT-2): SO_REUSEADDR, as every server sets it.
    if (::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
        return std::unexpected(errnoError(errno, "SO_REUSEADDR on " + where));
    if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&ss), len) != 0) {
        const int e = errno;
        return std::unexpected(errnoError(e, "cannot listen on " + where + (e == EADDRINUSE ? " (port in use)" : "")));
    }
    if (::listen(fd.get(), 1024) != 0) return std::unexpected(errnoError(errno, "listen on " + where));
    sockaddr_storage got{};
    socklen_t gl = sizeof got;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&got), &gl);
    bound = ntohs(got.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&got)->sin6_port
                                             : reinterpret_cast<sockaddr_in*>(&got)->sin_port);
    return fd;
}

}  // namespace

Result<void> checkWebConfig(const WebConfig& web) {
    auto g = buildGeneration(web, 0);
    if (!g) return std::unexpected(g.error());
    return {};
}

const char* toString(CloseReason r) {
    switch (r) {
        case CloseReason::Client: return "client";
        case CloseReason::Done: return "done";
        case CloseReason::RequestError: return "request_error";
        case CloseReason::IdleTimeout: return "idle_timeout";
        case CloseReason::HeadTimeout: return "head_timeout";
        case CloseReason::HandshakeTimeout: return "handshake_timeout";
        case CloseReason::WriteTimeout: return "write_timeout";
        case CloseReason::TlsError: return "tls_error";
        case CloseReason::Evicted: return "evicted";
        case CloseReason::Rejected: return "rejected";
        case CloseReason::ConfigChanged: return "config_changed";
        case CloseReason::Shutdown: return "shutdown";
        case CloseReason::SlowReader: return "slow_reader";
        case CloseReason::Count: break;
    }
    return "unknown";
}

struct Server::Impl {
    ServerOptions opts;
    Handler handler;
    util::UniqueFd listener;
    util::UniqueFd epoll;
    util::UniqueFd wake;
    std::uint16_t bound_port = 0;

    // The web configuration: replaced by setWebConfig (any thread), read by the I/O
    // thread at accept and dispatch.
    mutable std::mutex gen_mu;
    std::shared_ptr<const Generation> gen;
    std::uint64_t next_gen_id = 1;

    // I/O thread only.
    std::unordered_map<std::uint64_t, std::unique_ptr<Conn>> conns;
    std::uint64_t next_conn_id = kFirstConnId;
    std::vector<std::uint64_t> resume;  // connections to read again (pipelined or buffered bytes)
    Clock::time_point listen_paused_until{};
    bool listen_paused = false;
    double tokens = 0;
    Clock::time_point tokens_at{};
    std::uint64_t tokens_gen = 0;
    std::uint64_t seen_gen = 1;  // the generation whose stale connections were closed
    Clock::time_point last_accept_error_log{};

    // Workers.
    std::mutex job_mu;
    std::condition_variable job_cv;
    std::deque<Job> jobs;
    std::mutex done_mu;
    std::vector<Completion> done;
    // Streams with bytes queued (or ended by their producer): set by any thread.
    std::mutex stream_mu;
    std::vector<std::uint64_t> stream_ready;
    std::atomic<std::uint64_t> streams_open{0};
    std::atomic<bool> stopping{false};
    std::vector<std::thread> workers;
    std::thread io;

    // Stats (written by the I/O thread and workers, read by stats()).
    std::atomic<std::uint64_t> accepted{0}, open{0}, auth_failures{0}, rate_limited{0}, accept_errors{0};
    std::atomic<std::uint64_t> closed[static_cast<int>(CloseReason::Count)] = {};
    std::atomic<std::uint64_t> responses[kNumCodes] = {};

    std::shared_ptr<const Generation> current() const {
        std::lock_guard lk(gen_mu);
        return gen;
    }

    void run();
    void workerLoop();
    void acceptAll();
    void onEvent(Conn& c);
    void doHandshake(Conn& c);
    void doRead(Conn& c);
    void parseNext(Conn& c);
    void respondNow(Conn& c, Response r, bool keep_alive, bool head_only);
    void startWrite(Conn& c, std::string bytes, bool keep_alive, int status);
    void doWrite(Conn& c);
    void doDrain(Conn& c);
    void finishResponse(Conn& c);
    void closeConn(std::uint64_t id, CloseReason why);
    void setEvents(Conn& c, std::uint32_t events);
    void unregister(Conn& c);
    void sweep(Clock::time_point now);
    void processCompletions();
    void closeStale();
    void startStreaming(Conn& c);
    void pumpStream(Conn& c);
    void readStream(Conn& c);
    void processStreams();
    bool takeToken(const Generation& g, Clock::time_point now);
    Completion serve(Job& job);
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() { stop(); }

std::uint16_t Server::port() const { return impl_->bound_port; }
const ServerOptions& Server::options() const { return impl_->opts; }

Result<std::unique_ptr<Server>> Server::start(ServerOptions options, const WebConfig& web, Handler handler) {
    auto im = std::make_unique<Impl>();
    im->opts = std::move(options);
    im->handler = std::move(handler);
    if (im->opts.workers == 0) im->opts.workers = 1;
    if (im->opts.max_connections == 0) return std::unexpected(makeError("max_connections must be at least 1"));
    auto g = buildGeneration(web, im->next_gen_id++);
    if (!g) return std::unexpected(g.error());
    im->gen = std::move(*g);
    auto l = listenOn(im->opts.address, im->opts.port, im->bound_port);
    if (!l) return std::unexpected(l.error());
    im->listener = std::move(*l);
    im->epoll = util::UniqueFd(::epoll_create1(EPOLL_CLOEXEC));
    if (!im->epoll) return std::unexpected(errnoError(errno, "epoll_create1"));
    im->wake = util::UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!im->wake) return std::unexpected(errnoError(errno, "eventfd"));
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = kListenId;
    if (::epoll_ctl(im->epoll.get(), EPOLL_CTL_ADD, im->listener.get(), &ev) != 0)
        return std::unexpected(errnoError(errno, "epoll_ctl"));
    ev.data.u64 = kWakeId;
    if (::epoll_ctl(im->epoll.get(), EPOLL_CTL_ADD, im->wake.get(), &ev) != 0)
        return std::unexpected(errnoError(errno, "epoll_ctl"));
    Impl* p = im.get();
    for (unsigned i = 0; i < im->opts.workers; ++i) im->workers.emplace_back([p] { p->workerLoop(); });
    im->io = std::thread([p] { p->run(); });
    return std::unique_ptr<Server>(new Server(std::move(im)));
}

Result<void> Server::setWebConfig(const WebConfig& web) {
    std::uint64_t id = 0;
    {
        std::lock_guard lk(impl_->gen_mu);
        id = impl_->next_gen_id++;
    }
    auto g = buildGeneration(web, id);
    if (!g) return std::unexpected(g.error());
    {
        std::lock_guard lk(impl_->gen_mu);
        impl_->gen = std::move(*g);
    }
    // The I/O thread closes the idle connections of the previous configuration now.
    const std::uint64_t one = 1;
    (void)!::write(impl_->wake.get(), &one, sizeof one);
    return {};
}

void Server::stop() {
    if (!impl_ || !impl_->io.joinable()) return;
    impl_->stopping = true;
    const std::uint64_t one = 1;
    (void)!::write(impl_->wake.get(), &one, sizeof one);
    impl_->io.join();
    impl_->listener.reset();
    impl_->job_cv.notify_all();
    for (auto& w : impl_->workers) w.join();
    impl_->workers.clear();
}

ServerStats Server::stats() const {
    ServerStats s;
    s.listener = impl_->opts.name;
    s.tls = impl_->current()->tls != nullptr;
    s.accepted = impl_->accepted.load(std::memory_order_relaxed);
    s.open = impl_->open.load(std::memory_order_relaxed);
    for (int i = 0; i < static_cast<int>(CloseReason::Count); ++i) s.closed[i] = impl_->closed[i].load(std::memory_order_relaxed);
    for (std::size_t i = 0; i < kNumCodes; ++i) {
        const auto n = impl_->responses[i].load(std::memory_order_relaxed);
        if (n) s.responses.emplace_back(i < std::size(kCodes) ? kCodes[i] : 0, n);
    }
    s.auth_failures = impl_->auth_failures.load(std::memory_order_relaxed);
    s.rate_limited = impl_->rate_limited.load(std::memory_order_relaxed);
    s.accept_errors = impl_->accept_errors.load(std::memory_order_relaxed);
    s.streams_open = impl_->streams_open.load(std::memory_order_relaxed);
    return s;
}

// ---- the I/O thread ----

void Server::Impl::run() {
    epoll_event evs[64];
    auto next_sweep = Clock::now();
    while (!stopping.load(std::memory_order_relaxed)) {
        const int timeout = resume.empty() ? 250 : 0;
        const int n = ::epoll_wait(epoll.get(), evs, 64, timeout);
        if (n < 0 && errno != EINTR) {
            spdlog::error("http {}: epoll_wait: {}", opts.name, std::strerror(errno));
            break;
        }
        for (int i = 0; i < n; ++i) {
            const auto id = evs[i].data.u64;
            if (id == kListenId) {
                acceptAll();
            } else if (id == kWakeId) {
                std::uint64_t v = 0;
                (void)!::read(wake.get(), &v, sizeof v);
                processCompletions();
                processStreams();
                closeStale();
            } else if (auto it = conns.find(id); it != conns.end()) {
                onEvent(*it->second);
            }
        }
        if (!resume.empty()) {
            auto ids = std::move(resume);
            resume.clear();
            for (auto id : ids)
                if (auto it = conns.find(id); it != conns.end() && it->second->phase == Phase::Head) doRead(*it->second);
        }
        const auto now = Clock::now();
        if (now >= next_sweep) {
            sweep(now);
            next_sweep = now + std::chrono::milliseconds(250);
        }
    }
    // Shutdown: every connection closes, the listener with the Impl.
    std::vector<std::uint64_t> ids;
    for (const auto& [id, _] : conns) ids.push_back(id);
    for (auto id : ids) closeConn(id, CloseReason::Shutdown);
}

void Server::Impl::acceptAll() {
    for (;;) {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        int fd = ::accept4(listener.get(), reinterpret_cast<sockaddr*>(&ss), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
            if (errno == ECONNABORTED) continue;
            accept_errors.fetch_add(1, std::memory_order_relaxed);
            const auto now = Clock::now();
            if (now - last_accept_error_log > std::chrono::seconds(10)) {
                spdlog::warn("http {}: accept: {} (pausing accepts for 100 ms)", opts.name, std::strerror(errno));
                last_accept_error_log = now;
            }
            // Out of descriptors (EMFILE, ENFILE, ENOBUFS): the pending connection stays
            // queued; stop polling the listener for a moment instead of spinning on it.
            epoll_event ev{};
            ev.data.u64 = kListenId;
            ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, listener.get(), &ev);
            listen_paused = true;
            listen_paused_until = now + std::chrono::milliseconds(100);
            return;
        }
        util::UniqueFd cfd(fd);
        accepted.fetch_add(1, std::memory_order_relaxed);
        if (conns.size() >= opts.max_connections) {
            // Evict the connection that has waited longest without a request in progress.
            Conn* victim = nullptr;
            for (auto& [_, c] : conns) {
                const bool evictable = c->phase == Phase::Handshake || c->phase == Phase::Draining ||
                                       (c->phase == Phase::Head);
                if (evictable && (!victim || c->since < victim->since)) victim = c.get();
            }
            if (!victim) {
                closed[static_cast<int>(CloseReason::Rejected)].fetch_add(1, std::memory_order_relaxed);
                continue;  // cfd closes
            }
            closeConn(victim->id, CloseReason::Evicted);
        }
        int one = 1;
        ::setsockopt(cfd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        auto c = std::make_unique<Conn>();
        c->id = next_conn_id++;
        c->fd = std::move(cfd);
        c->peer = describePeer(ss);
        c->gen = current();
        const auto now = Clock::now();
        c->since = now;
        if (c->gen->tls) {
            c->ssl.reset(SSL_new(c->gen->tls.get()));
            if (!c->ssl || SSL_set_fd(c->ssl.get(), c->fd.get()) != 1) {
                ERR_clear_error();
                closed[static_cast<int>(CloseReason::TlsError)].fetch_add(1, std::memory_order_relaxed);
                continue;
            }
            SSL_set_accept_state(c->ssl.get());
            c->phase = Phase::Handshake;
            c->deadline = now + opts.handshake_timeout;
        } else {
            c->phase = Phase::Head;
            c->idle = true;
            c->deadline = now + opts.head_timeout;
        }
        open.fetch_add(1, std::memory_order_relaxed);
        Conn& ref = *c;
        conns.emplace(c->id, std::move(c));
        setEvents(ref, EPOLLIN);
    }
}

void Server::Impl::setEvents(Conn& c, std::uint32_t events) {
    if (c.registered && c.interest == events) return;
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = c.id;
    if (!c.registered) {
        if (::epoll_ctl(epoll.get(), EPOLL_CTL_ADD, c.fd.get(), &ev) == 0) c.registered = true;
    } else {
        ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, c.fd.get(), &ev);
    }
    c.interest = events;
}

void Server::Impl::unregister(Conn& c) {
    if (!c.registered) return;
    ::epoll_ctl(epoll.get(), EPOLL_CTL_DEL, c.fd.get(), nullptr);
    c.registered = false;
}

void Server::Impl::closeConn(std::uint64_t id, CloseReason why) {
    auto it = conns.find(id);
    if (it == conns.end()) return;
    Conn& c = *it->second;
    unregister(c);
    if (c.ssl && why != CloseReason::TlsError && why != CloseReason::Client) {
        SSL_set_quiet_shutdown(c.ssl.get(), 0);
        (void)SSL_shutdown(c.ssl.get());  // best effort close_notify, never waits
    }
    ERR_clear_error();
    if (c.stream) {
        c.stream->finish(c.phase == Phase::Streaming ? streamEndOf(why) : StreamEnd::NotStarted);
        if (c.phase == Phase::Streaming) streams_open.fetch_sub(1, std::memory_order_relaxed);
    }
    closed[static_cast<int>(why)].fetch_add(1, std::memory_order_relaxed);
    open.fetch_sub(1, std::memory_order_relaxed);
    conns.erase(it);
}

void Server::Impl::onEvent(Conn& c) {
    switch (c.phase) {
        case Phase::Handshake: return doHandshake(c);
        case Phase::Head: return doRead(c);
        case Phase::Writing: return doWrite(c);
        case Phase::Draining: return doDrain(c);
        case Phase::Streaming: {
            const auto id = c.id;
            readStream(c);  // may close c
            if (auto it = conns.find(id); it != conns.end()) pumpStream(*it->second);
            return;
        }
        case Phase::Dispatched: return;  // not registered while dispatched
    }
}

void Server::Impl::doHandshake(Conn& c) {
    ERR_clear_error();
    const int r = SSL_accept(c.ssl.get());
    if (r == 1) {
        c.phase = Phase::Head;
        c.idle = true;
        c.since = Clock::now();
        c.deadline = c.since + opts.head_timeout;
        setEvents(c, EPOLLIN);
        resume.push_back(c.id);  // the client's first bytes may already be decrypted
        return;
    }
    const int e = SSL_get_error(c.ssl.get(), r);
    if (e == SSL_ERROR_WANT_READ) return setEvents(c, EPOLLIN);
    if (e == SSL_ERROR_WANT_WRITE) return setEvents(c, EPOLLOUT);
    spdlog::debug("http {}: TLS handshake with {} failed: {}", opts.name, c.peer, sslErrorText());
    closeConn(c.id, CloseReason::TlsError);
}

void Server::Impl::doRead(Conn& c) {
    const std::size_t cap = opts.limits.max_request_line + opts.limits.max_header_bytes + 4096;
    char buf[kReadChunk];
    bool eof = false;
    setEvents(c, EPOLLIN);  // (a TLS read that wanted to write asked for EPOLLOUT too)
    while (c.in.size() < cap) {
        ssize_t n = 0;
        if (c.ssl) {
            ERR_clear_error();
            const int r = SSL_read(c.ssl.get(), buf, static_cast<int>(std::min(sizeof buf, cap - c.in.size())));
            if (r > 0) {
                n = r;
            } else {
                const int e = SSL_get_error(c.ssl.get(), r);
                if (e == SSL_ERROR_WANT_READ) break;
                if (e == SSL_ERROR_WANT_WRITE) {
                    setEvents(c, EPOLLIN | EPOLLOUT);
                    break;
                }
                eof = true;
                break;
            }
        } else {
            n = ::recv(c.fd.get(), buf, std::min(sizeof buf, cap - c.in.size()), 0);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                eof = true;
                break;
            }
            if (n == 0) {
                eof = true;
                break;
            }
        }
        c.in.append(buf, static_cast<std::size_t>(n));
    }
    if (!c.in.empty() && c.idle) {
        // The first byte of a request: its head must be complete within head_timeout.
        c.idle = false;
        c.since = Clock::now();
        c.deadline = c.since + opts.head_timeout;
    }
    const auto id = c.id;
    parseNext(c);  // may answer and close c
    if (eof) {
        auto it = conns.find(id);
        if (it != conns.end() && it->second->phase == Phase::Head) closeConn(id, CloseReason::Client);
    }
}

void Server::Impl::parseNext(Conn& c) {
    if (c.phase != Phase::Head || c.in.empty()) return;
    Request req;
    const auto pr = parseRequestHead(c.in, opts.limits, req);
    if (pr.status == ParseResult::Status::Incomplete) return;
    if (pr.status == ParseResult::Status::Error) {
        c.in.clear();
        return respondNow(c, Response::error(pr.error_status, pr.reason), false, false);
    }
    c.in.erase(0, pr.consumed);
    req.peer = c.peer;
    const bool head = req.method == "HEAD";
    if (req.method != "GET" && !head) {
        Response r = Response::error(isKnownMethod(req.method) ? 405 : 501, "method " + req.method + " not allowed");
        r.headers.emplace_back("Allow", "GET, HEAD");
        // The body (if any) is not read: the connection closes after the answer.
        return respondNow(c, std::move(r), req.keep_alive && !req.hasBody(), false);
    }
    if (req.hasBody()) {
        c.in.clear();
        return respondNow(c, Response::error(413, "request bodies are not accepted"), false, head);
    }
    const auto g = current();
    if (!takeToken(*g, Clock::now())) {
        rate_limited.fetch_add(1, std::memory_order_relaxed);
        Response r = Response::error(429, "too many requests");
        return respondNow(c, std::move(r), req.keep_alive, head);
    }
    // Dispatched: out of the epoll set until the response is ready (a hang-up would
    // otherwise report on every wait).
    unregister(c);
    c.phase = Phase::Dispatched;
    {
        std::lock_guard lk(job_mu);
        jobs.push_back(Job{c.id, std::move(req), g});
    }
    job_cv.notify_one();
}

bool Server::Impl::takeToken(const Generation& g, Clock::time_point now) {
    if (g.rate_interval.count() <= 0) return true;
    if (tokens_gen != g.id) {
        tokens_gen = g.id;
        tokens = g.rate_burst;
        tokens_at = now;
    }
    const double per = std::chrono::duration<double>(g.rate_interval).count();
    tokens = std::min<double>(g.rate_burst, tokens + std::chrono::duration<double>(now - tokens_at).count() / per);
    tokens_at = now;
    if (tokens < 1.0) return false;
    tokens -= 1.0;
    return true;
}

void Server::Impl::respondNow(Conn& c, Response r, bool keep_alive, bool head_only) {
    const auto g = current();
    const int status = r.status;
    startWrite(c, serialize(std::move(r), keep_alive, head_only, g->headers), keep_alive, status);
}

void Server::Impl::startWrite(Conn& c, std::string bytes, bool keep_alive, int status) {
    responses[codeSlot(status)].fetch_add(1, std::memory_order_relaxed);
    c.out = std::move(bytes);
    c.out_off = 0;
    c.close_after = !keep_alive;
    c.close_reason = status >= 400 ? CloseReason::RequestError : CloseReason::Done;
    c.phase = Phase::Writing;
    c.since = Clock::now();
    c.deadline = c.since + opts.write_timeout;
    doWrite(c);
}

void Server::Impl::doWrite(Conn& c) {
    while (c.out_off < c.out.size()) {
        const std::size_t left = c.out.size() - c.out_off;
        if (c.ssl) {
            ERR_clear_error();
            const int r = SSL_write(c.ssl.get(), c.out.data() + c.out_off, static_cast<int>(std::min<std::size_t>(left, 1 << 20)));
            if (r > 0) {
                c.out_off += static_cast<std::size_t>(r);
                continue;
            }
            const int e = SSL_get_error(c.ssl.get(), r);
            if (e == SSL_ERROR_WANT_WRITE) return setEvents(c, EPOLLOUT);
            if (e == SSL_ERROR_WANT_READ) return setEvents(c, EPOLLIN);
            return closeConn(c.id, CloseReason::Client);
        }
        const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, left, MSG_NOSIGNAL);
        if (n > 0) {
            c.out_off += static_cast<std::size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return setEvents(c, EPOLLOUT);
        if (n < 0 && errno == EINTR) continue;
        return closeConn(c.id, CloseReason::Client);
    }
    finishResponse(c);
}

void Server::Impl::finishResponse(Conn& c) {
    std::string().swap(c.out);  // a large answer's buffer goes now, not with the connection
    c.out_off = 0;
    if (c.stream) return startStreaming(c);
    if (c.close_after) {
        if (c.close_reason == CloseReason::RequestError) {
            // Let the client read the refusal: no more writes, drop what it still sends.
            if (c.ssl) {
                (void)SSL_shutdown(c.ssl.get());
                ERR_clear_error();
            }
            ::shutdown(c.fd.get(), SHUT_WR);
            c.phase = Phase::Draining;
            c.drained = 0;
            c.since = Clock::now();
            c.deadline = c.since + kDrainTime;
            setEvents(c, EPOLLIN);
            return;
        }
        return closeConn(c.id, c.close_reason);
    }
    if (c.gen != current() && c.in.empty()) return closeConn(c.id, CloseReason::ConfigChanged);
    c.phase = Phase::Head;
    c.idle = c.in.empty();
    c.since = Clock::now();
    c.deadline = c.since + (c.idle ? opts.idle_timeout : opts.head_timeout);
    setEvents(c, EPOLLIN);
    resume.push_back(c.id);  // pipelined requests, or bytes TLS has already decrypted
}

void Server::Impl::doDrain(Conn& c) {
    char buf[kReadChunk];
    for (;;) {
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n > 0) {
            c.drained += static_cast<std::size_t>(n);
            if (c.drained >= kDrainBytes) return closeConn(c.id, c.close_reason);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        return closeConn(c.id, c.close_reason);
    }
}

void Server::Impl::sweep(Clock::time_point now) {
    if (listen_paused && now >= listen_paused_until) {
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.u64 = kListenId;
        ::epoll_ctl(epoll.get(), EPOLL_CTL_MOD, listener.get(), &ev);
        listen_paused = false;
    }
    std::vector<std::pair<std::uint64_t, CloseReason>> expired;
    std::vector<std::uint64_t> heartbeat;
    for (const auto& [id, c] : conns) {
        if (c->phase == Phase::Streaming) {
            // A stream: its socket must take bytes within write_timeout; idle, a heartbeat.
            if (c->out_off < c->out.size()) {
                if (now - c->since >= opts.write_timeout) expired.emplace_back(id, CloseReason::WriteTimeout);
            } else if (now - c->last_write >= c->stream->options().heartbeat_interval) {
                heartbeat.push_back(id);
            }
            continue;
        }
        if (c->phase == Phase::Dispatched || now < c->deadline) continue;
        CloseReason why = CloseReason::HeadTimeout;
        switch (c->phase) {
            case Phase::Handshake: why = CloseReason::HandshakeTimeout; break;
            case Phase::Head: why = c->idle ? CloseReason::IdleTimeout : CloseReason::HeadTimeout; break;
            case Phase::Writing: why = CloseReason::WriteTimeout; break;
            case Phase::Draining: why = c->close_reason; break;
            case Phase::Dispatched:
            case Phase::Streaming: break;
        }
        expired.emplace_back(id, why);
    }
    for (auto [id, why] : expired) closeConn(id, why);
    for (auto id : heartbeat) {
        auto it = conns.find(id);
        if (it == conns.end()) continue;
        Conn& c = *it->second;
        c.out = c.stream->options().heartbeat;
        c.out_off = 0;
        c.since = now;
        pumpStream(c);
    }
}

void Server::Impl::closeStale() {
    const auto g = current();
    if (g->id == seen_gen) return;
    seen_gen = g->id;
    std::vector<std::uint64_t> stale;
    for (const auto& [id, c] : conns)
        if (c->gen != g && (c->phase == Phase::Handshake || c->phase == Phase::Streaming || (c->phase == Phase::Head && c->idle)))
            stale.push_back(id);
    for (auto id : stale) closeConn(id, CloseReason::ConfigChanged);
}

void Server::Impl::processCompletions() {
    std::vector<Completion> batch;
    {
        std::lock_guard lk(done_mu);
        batch.swap(done);
    }
    for (auto& d : batch) {
        auto it = conns.find(d.conn);
        if (it == conns.end()) {
            if (d.stream) d.stream->finish(StreamEnd::NotStarted);
            continue;
        }
        it->second->stream = std::move(d.stream);
        startWrite(*it->second, std::move(d.bytes), d.keep_alive, d.status);
    }
}

void Server::Impl::processStreams() {
    std::vector<std::uint64_t> ready;
    {
        std::lock_guard lk(stream_mu);
        ready.swap(stream_ready);
    }
    std::sort(ready.begin(), ready.end());
    ready.erase(std::unique(ready.begin(), ready.end()), ready.end());
    for (auto id : ready)
        if (auto it = conns.find(id); it != conns.end() && it->second->phase == Phase::Streaming) pumpStream(*it->second);
}

void Server::Impl::startStreaming(Conn& c) {
    c.phase = Phase::Streaming;
    c.since = c.last_write = Clock::now();
    streams_open.fetch_add(1, std::memory_order_relaxed);
    const std::uint64_t id = c.id;
    c.stream->attach([this, id] {
        {
            std::lock_guard lk(stream_mu);
            stream_ready.push_back(id);
        }
        const std::uint64_t one = 1;
        (void)!::write(wake.get(), &one, sizeof one);
    });
    setEvents(c, EPOLLIN);  // a hang-up shows as readable
    pumpStream(c);
}

// Writes what is queued, then takes more from the channel, until the socket is full or
// nothing is left. Closes the connection when the stream ended.
void Server::Impl::pumpStream(Conn& c) {
    for (;;) {
        // over its buffer limit: closed at once, whatever the socket still holds
        if (c.stream->end() == StreamEnd::SlowReader) return closeConn(c.id, CloseReason::SlowReader);
        while (c.out_off < c.out.size()) {
            const std::size_t left = c.out.size() - c.out_off;
            if (c.ssl) {
                ERR_clear_error();
                const int r = SSL_write(c.ssl.get(), c.out.data() + c.out_off, static_cast<int>(std::min<std::size_t>(left, 1 << 20)));
                if (r > 0) {
                    c.out_off += static_cast<std::size_t>(r);
                    c.since = c.last_write = Clock::now();
                    continue;
                }
                const int e = SSL_get_error(c.ssl.get(), r);
                if (e == SSL_ERROR_WANT_WRITE) return setEvents(c, EPOLLIN | EPOLLOUT);
                if (e == SSL_ERROR_WANT_READ) return setEvents(c, EPOLLIN);
                return closeConn(c.id, CloseReason::Client);
            }
            const ssize_t n = ::send(c.fd.get(), c.out.data() + c.out_off, left, MSG_NOSIGNAL);
            if (n > 0) {
                c.out_off += static_cast<std::size_t>(n);
                c.since = c.last_write = Clock::now();
                continue;
            }
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return setEvents(c, EPOLLIN | EPOLLOUT);
            if (n < 0 && errno == EINTR) continue;
            return closeConn(c.id, CloseReason::Client);
        }
        bool closing = false;
        std::string more = c.stream->take(closing);
        if (more.empty()) {
            std::string().swap(c.out);
            c.out_off = 0;
            if (closing) return closeConn(c.id, CloseReason::Done);
            c.since = Clock::now();
            return setEvents(c, EPOLLIN);
        }
        c.out = std::move(more);
        c.out_off = 0;
        c.since = Clock::now();  // write_timeout counts from here
    }
}

// A stream's client sends nothing more: what it sends is dropped; its close ends the stream.
void Server::Impl::readStream(Conn& c) {
    char buf[4096];
    for (int rounds = 0; rounds < 16; ++rounds) {
        if (c.ssl) {
            ERR_clear_error();
            const int r = SSL_read(c.ssl.get(), buf, sizeof buf);
            if (r > 0) continue;
            const int e = SSL_get_error(c.ssl.get(), r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
            return closeConn(c.id, CloseReason::Client);
        }
        const ssize_t n = ::recv(c.fd.get(), buf, sizeof buf, 0);
        if (n > 0) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n < 0 && errno == EINTR) continue;
        return closeConn(c.id, CloseReason::Client);
    }
}

// ---- workers ----

Completion Server::Impl::serve(Job& job) {
    const Request& req = job.request;
    const bool head = req.method == "HEAD";
    Response r;
    bool authorized = true;
    const bool is_public =
        std::find(opts.public_paths.begin(), opts.public_paths.end(), req.path) != opts.public_paths.end();
    if (job.gen->auth && !is_public) {
        const auto h = req.header("authorization");
        const auto creds = h ? parseBasicAuth(*h) : std::nullopt;
        authorized = creds && job.gen->auth->check(*creds);
    }
    if (!authorized) {
        auth_failures.fetch_add(1, std::memory_order_relaxed);
        r = Response::error(401, "unauthorized");
        r.headers.emplace_back("WWW-Authenticate", "Basic realm=\"netprobe\", charset=\"UTF-8\"");
    } else {
        try {
            r = handler(req);
        } catch (const std::exception& e) {
            spdlog::error("http {}: {} {}: {}", opts.name, req.method, req.path, e.what());
            r = Response::error(500, "internal error");
        }
    }
    Completion out;
    out.conn = job.conn;
    out.status = r.status;
    out.keep_alive = req.keep_alive;
    if (r.stream) {
        if (head || r.status != 200) {
            r.stream->finish(StreamEnd::NotStarted);
            r.stream = nullptr;  // an ordinary answer (with its Content-Length)
        } else {
            out.stream = r.stream;
            out.keep_alive = false;  // the body ends with the connection
        }
    }
    out.bytes = serialize(std::move(r), out.keep_alive, head, job.gen->headers);
    return out;
}

void Server::Impl::workerLoop() {
    for (;;) {
        Job job;
        {
            std::unique_lock lk(job_mu);
            job_cv.wait(lk, [&] { return stopping.load() || !jobs.empty(); });
            if (stopping.load()) return;
            job = std::move(jobs.front());
            jobs.pop_front();
        }
        Completion c = serve(job);
        job = Job{};  // the request and the generation go before the answer is queued
        {
            std::lock_guard lk(done_mu);
            done.push_back(std::move(c));
        }
        const std::uint64_t one = 1;
        (void)!::write(wake.get(), &one, sizeof one);
    }
}

}  // namespace netprobe::http
