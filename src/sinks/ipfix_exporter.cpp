// The IPFIX exporter's transport: parsing --ipfix-collector, the UDP and TCP sessions.
#include <arpa/inet.h>
#include <linux/sockios.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <spdlog/spdlog.h>

#include "netprobe/sinks/ipfix.hpp"
#include "netprobe/util/duration.hpp"
#include "netprobe/util/parse.hpp"

namespace netprobe::sinks::ipfix {

namespace {

using Clock = std::chrono::steady_clock;
using util::parseNumber;
constexpr std::size_t kBatch = 2000;


std::int64_t nowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

std::uint32_t exportTime() {
    return static_cast<std::uint32_t>(
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
}

}  // namespace

std::string CollectorConfig::target() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port) + (tcp ? "/tcp" : "/udp");
}

Result<CollectorConfig> parseCollector(std::string_view spec) {
    CollectorConfig c;
    auto bad = [&](const std::string& why) {
        return std::unexpected(makeError("--ipfix-collector=" + std::string(spec) + ": " + why));
    };
    const auto comma = spec.find(',');
    std::string_view hostport = spec.substr(0, comma);
    std::string_view opts = comma == std::string_view::npos ? std::string_view() : spec.substr(comma + 1);
    std::string_view host, port;
    if (const auto scheme = hostport.find("://"); scheme != std::string_view::npos)
        return bad("no URL scheme: HOST:PORT, with transport=udp or transport=tcp as an option (\"" +
                   std::string(hostport.substr(0, scheme + 3)) + "\" given)");
    if (hostport.starts_with('[')) {
        const auto close = hostport.find(']');
        if (close == std::string_view::npos || close + 1 >= hostport.size() || hostport[close + 1] != ':')
            return bad("expected [IPv6]:PORT");
        host = hostport.substr(1, close - 1);
        port = hostport.substr(close + 2);
    } else {
        const auto colon = hostport.rfind(':');
        if (colon == std::string_view::npos) return bad("expected HOST:PORT");
        host = hostport.substr(0, colon);
        port = hostport.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) return bad("an IPv6 address goes in brackets: [ADDR]:PORT");
    }
    if (host.empty()) return bad("empty host");
    unsigned p = 0;
    if (!parseNumber(port, p) || p == 0 || p > 65535) return bad("port must be 1-65535");
    c.host = std::string(host);
    c.port = static_cast<std::uint16_t>(p);
    c.encoder.max_message = 1400;
    while (!opts.empty()) {
        const auto next = opts.find(',');
        std::string_view kv = opts.substr(0, next);
        opts = next == std::string_view::npos ? std::string_view() : opts.substr(next + 1);
        const auto eq = kv.find('=');
        if (eq == std::string_view::npos) return bad("option \"" + std::string(kv) + "\" is not KEY=VALUE");
        const auto k = kv.substr(0, eq), v = kv.substr(eq + 1);
        if (k == "transport") {
            if (v == "udp") c.tcp = false;
            else if (v == "tcp") c.tcp = true;
            else return bad("transport must be udp or tcp");
        } else if (k == "biflow") {
            if (v == "on") c.encoder.biflow = true;
            else if (v == "off") c.encoder.biflow = false;
            else return bad("biflow must be on or off");
        } else if (k == "domain") {
            if (!parseNumber(v, c.encoder.observation_domain)) return bad("domain must be a 32-bit number");
        } else if (k == "enterprise") {
            if (!parseNumber(v, c.encoder.enterprise) || c.encoder.enterprise == 0)
                return bad("enterprise must be a nonzero 32-bit number");
        } else if (k == "mtu") {
            std::size_t m = 0;
            if (!parseNumber(v, m) || m < 512 || m > 65535) return bad("mtu must be 512-65535 bytes");
            c.encoder.max_message = m;
        } else if (k == "template-refresh") {
            auto d = util::parseDuration(v);
            if (!d || *d < std::chrono::seconds(1) || *d > std::chrono::hours(24))
                return bad("template-refresh must be a duration from 1s to 24h");
            c.template_refresh = std::chrono::duration_cast<std::chrono::seconds>(*d);
        } else if (k == "queue") {
            if (!parseNumber(v, c.queue) || c.queue == 0 || c.queue > 10'000'000)
                return bad("queue must be 1-10000000 records");
        } else {
            return bad("unknown option \"" + std::string(k) +
                       "\" (transport, biflow, domain, enterprise, mtu, template-refresh, queue)");
        }
    }
    // Over TCP messages are not bound by the path MTU: fewer, larger ones.
    if (c.tcp && spec.find("mtu=") == std::string_view::npos) c.encoder.max_message = 65000;
    return c;
}

IpfixExporter::IpfixExporter(CollectorConfig config)
    : config_(std::move(config)), encoder_(config_.encoder), queue_(config_.queue) {
    status_.kind = "ipfix";
    status_.target = config_.target();
    status_.queue_capacity = queue_.capacity();
    init_ms_ = nowMs();
}

std::unique_ptr<IpfixExporter> IpfixExporter::start(CollectorConfig config) {
    std::unique_ptr<IpfixExporter> e(new IpfixExporter(std::move(config)));
    e->thread_ = std::thread([p = e.get()] { p->loop(); });
    return e;
}

IpfixExporter::~IpfixExporter() { drain(std::chrono::milliseconds(0)); }

void IpfixExporter::offer(const analysis::FlowExportView& view) { queue_.push(view.records); }

void IpfixExporter::drain(std::chrono::milliseconds timeout) {
    if (!thread_.joinable()) return;
    drain_deadline_ns_.store((Clock::now() + timeout).time_since_epoch().count());
    queue_.stop();
    thread_.join();
}

SinkStatus IpfixExporter::status() const {
    std::lock_guard lock(status_mu_);
    SinkStatus s = status_;
    s.queued = queue_.size();
    s.records_dropped_queue = queue_.dropped();
    return s;
}

void IpfixExporter::fail(const std::string& what) {
    std::lock_guard lock(status_mu_);
    ++status_.errors_total;
    status_.up = false;
    if (status_.last_error != what) spdlog::warn("ipfix {}: {}", status_.target, what);
    status_.last_error = what;
}

Result<void> IpfixExporter::connect() {
    addrinfo hints{};
    hints.ai_socktype = config_.tcp ? SOCK_STREAM : SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICSERV;
    addrinfo* res = nullptr;
    const std::string port = std::to_string(config_.port);
    if (int rc = getaddrinfo(config_.host.c_str(), port.c_str(), &hints, &res); rc != 0)
        return std::unexpected(makeError("resolve " + config_.host + ": " + gai_strerror(rc)));
    std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> guard(res, freeaddrinfo);
    std::string err = "no address";
    for (auto* ai = res; ai; ai = ai->ai_next) {
        util::UniqueFd fd(::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) {
            err = std::string("socket: ") + std::strerror(errno);
            continue;
        }
        if (::connect(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0) {
            if (errno != EINPROGRESS) {
                err = std::string("connect: ") + std::strerror(errno);
                continue;
            }
            pollfd p{fd.get(), POLLOUT, 0};
            if (::poll(&p, 1, 3000) != 1) {
                err = "connect: timed out";
                continue;
            }
            int soerr = 0;
            socklen_t len = sizeof soerr;
            ::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
            if (soerr != 0) {
                err = std::string("connect: ") + std::strerror(soerr);
                continue;
            }
        }
        if (config_.tcp) {
            int one = 1;
            ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        fd_ = std::move(fd);
        return {};
    }
    return std::unexpected(makeError(err));
}

void IpfixExporter::disconnect(const std::string& why) {
    fail(why);
    fd_.reset();
    // TCP: what the collector's host has not acknowledged goes again on the next connection.
    std::vector<FlowExportRecord> again;
    for (auto& f : inflight_)
        for (auto& r : f.records) again.push_back(std::move(r));
    inflight_.clear();
    inflight_bytes_ = 0;
    if (!again.empty()) {
        {
            std::lock_guard lock(status_mu_);
            status_.records_resent += again.size();
            status_.records_sent -= std::min<std::uint64_t>(status_.records_sent, again.size());
        }
        queue_.requeue(std::move(again));
    }
    next_connect_ = Clock::now() + backoff_;
    backoff_ = std::min<std::chrono::seconds>(backoff_ * 2, std::chrono::seconds(30));
}

Result<void> IpfixExporter::sendMessage(const Message& m) {
    std::size_t off = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(10);
    while (off < m.bytes.size()) {
        ssize_t n = ::send(fd_.get(), m.bytes.data() + off, m.bytes.size() - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += static_cast<std::size_t>(n);
            if (!config_.tcp) break;  // a datagram goes whole or not at all
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
            if (left <= 0) return std::unexpected(makeError("send: timed out (collector not reading)"));
            pollfd p{fd_.get(), POLLOUT, 0};
            ::poll(&p, 1, static_cast<int>(left));
            continue;
        }
        return std::unexpected(errnoError(errno, "send"));
    }
    std::lock_guard lock(status_mu_);
    ++status_.messages_sent;
    status_.bytes_sent += m.bytes.size();
    status_.up = true;
    return {};
}

Result<void> IpfixExporter::sendControl() {
    if (config_.tcp) encoder_.resetSession();
    if (auto r = sendMessage(encoder_.templates(exportTime())); !r) return r;
    ExporterStats st;
    {
        std::lock_guard lock(status_mu_);
        st.messages = status_.messages_sent;
        st.octets = status_.bytes_sent;
        st.records = status_.records_sent;
        st.not_sent = status_.records_dropped_send + queue_.dropped();
    }
    st.init_ms = init_ms_;
    if (auto r = sendMessage(encoder_.stats(st, exportTime())); !r) return r;
    next_templates_ = Clock::now() + config_.template_refresh;
    return {};
}

void IpfixExporter::trimAcknowledged() {
    if (!config_.tcp || inflight_.empty()) return;
    int unacked = 0;
    if (::ioctl(fd_.get(), SIOCOUTQ, &unacked) != 0) return;
    // The last `unacked` bytes written are not acknowledged; messages wholly before them are.
    while (!inflight_.empty() && inflight_bytes_ - inflight_.front().bytes >= static_cast<std::size_t>(unacked)) {
        inflight_bytes_ -= inflight_.front().bytes;
        inflight_.pop_front();
    }
}

void IpfixExporter::loop() {
    for (;;) {
        const std::int64_t drain_ns = drain_deadline_ns_.load();
        const bool draining = drain_ns != 0;
        const auto now = Clock::now();
        if (draining && (now.time_since_epoch().count() >= drain_ns || (queue_.size() == 0 && inflight_.empty())))
            break;
        if (!fd_) {
            if (now < next_connect_) {
                auto wait = std::min(next_connect_, now + std::chrono::milliseconds(200));
                std::this_thread::sleep_until(wait);
                continue;
            }
            if (auto r = connect(); !r) {
                disconnect("cannot connect: " + r.error().what());
                continue;
            }
            {
                std::lock_guard lock(status_mu_);
                ++status_.connects_total;
            }
            if (auto r = sendControl(); !r) {
                disconnect(r.error().what());
                continue;
            }
            if (!config_.tcp) {
                // A collector that is down answers with ICMP port unreachable: wait a
                // moment for it before sending records into the void.
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
                int soerr = 0;
                socklen_t len = sizeof soerr;
                ::getsockopt(fd_.get(), SOL_SOCKET, SO_ERROR, &soerr, &len);
                if (soerr != 0) {
                    disconnect(std::string("collector unreachable: ") + std::strerror(soerr));
                    continue;
                }
            }
            backoff_ = std::chrono::seconds(1);
            std::lock_guard lock(status_mu_);
            if (!status_.last_error.empty()) spdlog::info("ipfix {}: connected", status_.target);
            status_.last_error.clear();
            status_.up = true;
        }
        if (config_.tcp) {
            // The collector never writes: readable means it closed or reset the connection.
            pollfd p{fd_.get(), POLLIN | POLLRDHUP, 0};
            if (::poll(&p, 1, 0) == 1 && (p.revents & (POLLIN | POLLRDHUP | POLLERR | POLLHUP))) {
                disconnect("connection closed by the collector");
                continue;
            }
            trimAcknowledged();
        } else if (Clock::now() >= next_templates_) {
            if (auto r = sendControl(); !r) {
                disconnect(r.error().what());
                continue;
            }
        }
        auto batch = queue_.take(kBatch, Clock::now() + std::chrono::milliseconds(draining ? 50 : 500));
        if (batch.empty()) continue;
        auto messages = encoder_.data(batch, exportTime());
        std::size_t done = 0;  // input records sent
        bool failed = false;
        for (const auto& m : messages) {
            auto r = sendMessage(m);
            if (!r) {
                const bool refused = r.error().code == ECONNREFUSED;
                if (!config_.tcp && !refused) {
                    // Not a collector going away (EMSGSIZE, no route...): these records cannot go.
                    std::lock_guard lock(status_mu_);
                    status_.records_dropped_send += m.count;
                    done += m.count;
                    continue;
                }
                // Keep this message's records and the rest for the next connection.
                std::vector<FlowExportRecord> rest(std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(done)),
                                                   std::make_move_iterator(batch.end()));
                queue_.requeue(std::move(rest));
                disconnect(r.error().what());
                failed = true;
                break;
            }
            {
                std::lock_guard lock(status_mu_);
                status_.records_sent += m.count;
            }
            if (config_.tcp) {
                InFlight f{m.bytes.size(), {}};
                f.records.assign(std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(m.first)),
                                 std::make_move_iterator(batch.begin() + static_cast<std::ptrdiff_t>(m.first + m.count)));
                inflight_bytes_ += f.bytes;
                inflight_.push_back(std::move(f));
            }
            done += m.count;
        }
        if (!failed && config_.tcp) trimAcknowledged();
    }
    // Draining: give the collector's host a moment to acknowledge what was written.
    if (fd_ && config_.tcp) {
        const auto until = Clock::now() + std::chrono::seconds(2);
        while (!inflight_.empty() && Clock::now() < until) {
            trimAcknowledged();
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    const auto left = queue_.size() + [&] {
        std::size_t n = 0;
        for (const auto& f : inflight_) n += f.records.size();
        return n;
    }();
    if (left > 0) spdlog::warn("ipfix {}: {} record(s) not delivered at shutdown", config_.target(), left);
    fd_.reset();
}

}  // namespace netprobe::sinks::ipfix
