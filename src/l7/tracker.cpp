// The connection tracker (see tracker.hpp).
#include <netprobe/l7/tracker.hpp>

#include <algorithm>
#include <map>
#include <tuple>

#include <netprobe/l7/amqp.hpp>
#include <netprobe/l7/http1.hpp>
#include <netprobe/l7/kafka.hpp>
#include <netprobe/l7/parser.hpp>

namespace netprobe::l7 {

const char* sideName(Side s) { return s == Side::Client ? "client" : "server"; }

namespace {
constexpr std::size_t kMaxStreams = 1024;  // HTTP/2 streams open at once per connection (its default limit is 100)
// Kafka requests in flight per connection: clients pipeline (librdkafka's
// max.in.flight is 1000000 by default; a producer of one message per request has
// hundreds in flight), more than --l7-max-pending's default.
constexpr std::size_t kMaxKafkaInFlight = 1024;
}  // namespace

// A socket that reached TCP_CLOSE without a close(2) keeps its parser state this long
// after the later of that and its last data (what it still held can be read after).
constexpr std::chrono::seconds kClosedGrace{5};

struct ConnectionTracker::Conn final : Http1Listener, ExchangeSink {
    struct Pending {
        std::string method, path, route;
        std::uint64_t ts_ns = 0;
        std::uint64_t bytes = 0;
    };
    Conn(ConnectionTracker& o, const ebpf::L7Message& m)
        : owner(o), sock(m.sock), pid(m.pid), cgroup_id(m.cgroup_id), local(m.local), remote(m.remote),
          local_port(m.local_port), remote_port(m.remote_port), family(m.family) {}

    bool onHead(bool sending, Http1Message& h) override;
    void onEnd(bool sending, std::uint64_t bytes) override;
    void onExchange(Exchange&& e) override;
    // The request's process, cgroup, socket, and client/server ends (by r.side).
    void identify(Request& r) const {
        r.pid = pid;
        r.cgroup_id = cgroup_id;
        r.family = family;
        const bool server_local = r.side == Side::Server;
        r.server = server_local ? local : remote;
        r.client = server_local ? remote : local;
        r.server_port = server_local ? local_port : remote_port;
        r.client_port = server_local ? remote_port : local_port;
        r.sock = sock;
    }

    ConnectionTracker& owner;
    std::uint64_t sock;
    std::uint32_t pid;
    std::uint64_t cgroup_id;
    util::Addr16 local, remote;
    std::uint16_t local_port, remote_port;
    std::uint8_t family;
    std::optional<Side> side;
    std::vector<Pending> pending;    // oldest first (a handful at most: pipelining depth)
    bool request_open = false;       // the last pending request's body is still arriving
    std::optional<Request> current;  // the response in progress, with its request
    std::uint64_t last_ns = 0;
    std::uint64_t sock_closed_ns = 0;  // the socket reached TCP_CLOSE without a close(2) seen
    Http1Stream send{this, true}, recv{this, false};
    // Redis, PostgreSQL, MySQL: the protocol's parser, created with the first message.
    std::unique_ptr<MessageParser> parser;
    const char* protocol = "";
    // DNS: queries awaiting their response, by (peer address, peer port, id); over TCP,
    // per direction, the bytes of the current message still to skip.
    struct DnsPending {
        std::uint64_t ts_ns = 0;
        std::string qname;
        std::uint16_t qtype = 0;
        std::uint64_t bytes = 0;
        bool sent = false;            // this socket sent the query (the client's side)
        util::Addr16 local{};         // this end of the datagram (an unconnected socket's varies)
        std::uint16_t local_port = 0;
    };
    std::map<std::tuple<util::Addr16, std::uint16_t, std::uint16_t>, DnsPending> dns_pending;
    std::uint64_t dns_skip[2] = {0, 0};
    std::uint64_t dns_await[2] = {0, 0};  // a length was read: its message starts at the next byte
    std::string dns_len[2];               // a length's first byte, read alone
};

struct ConnectionTracker::DnsPendingRef {
    const std::tuple<util::Addr16, std::uint16_t, std::uint16_t>& key;
    const Conn::DnsPending& p;
};

void ConnectionTracker::dnsUnanswered(const Conn& c, const DnsPendingRef& ref, std::uint64_t until_ns) {
    ++counters_.unanswered;
    if (dns_unanswered_.size() >= opts_.max_requests) {
        ++counters_.dns_unanswered_dropped;
        return;
    }
    const auto& p = ref.p;
    Request r;
    r.mono_ns = p.ts_ns;
    r.duration_seconds = until_ns > p.ts_ns ? static_cast<double>(until_ns - p.ts_ns) / 1e9 : 0;
    r.protocol = "dns";
    r.side = p.sent ? Side::Client : Side::Server;
    r.method = dnsTypeName(p.qtype);
    r.path = p.qname;
    r.route = p.qname;
    r.status = -1;
    r.request_bytes = p.bytes;
    r.pid = c.pid;
    r.cgroup_id = c.cgroup_id;
    r.family = c.family;
    const auto& remote = std::get<0>(ref.key);
    const auto remote_port = std::get<1>(ref.key);
    r.server = p.sent ? remote : p.local;
    r.client = p.sent ? p.local : remote;
    r.server_port = p.sent ? remote_port : p.local_port;
    r.client_port = p.sent ? p.local_port : remote_port;
    r.sock = c.sock;
    dns_unanswered_.push_back(std::move(r));
}

bool ConnectionTracker::Conn::onHead(bool sending, Http1Message& h) {
    auto& ctr = owner.counters_;
    if (h.request) {
        if (!side) side = sending ? Side::Client : Side::Server;
        if (pending.size() >= owner.opts_.max_pending) {
            pending.erase(pending.begin());
            ++ctr.unanswered;
        }
        std::string path = h.target.substr(0, h.target.find_first_of("?#"));
        if (path.size() > 256) path.resize(256);
        pending.push_back({h.method, std::move(path), routeTemplate(h.target), h.start_ts_ns, h.head_bytes});
        request_open = true;
        return false;
    }
    if (h.status < 200) return false;  // interim (100 Continue): the final response follows
    if (!side) side = sending ? Side::Server : Side::Client;
    if (current) {  // the previous response's end was not seen
        owner.complete(std::move(*current));
        current.reset();
    }
    if (pending.empty()) {
        ++ctr.unmatched_responses;
        return false;
    }
    Pending p = std::move(pending.front());
    pending.erase(pending.begin());
    if (pending.empty()) request_open = false;
    Request& r = current.emplace();  // built in place (a Request is ~340 bytes to move)
    r.mono_ns = p.ts_ns;
    r.duration_seconds = h.start_ts_ns > p.ts_ns ? static_cast<double>(h.start_ts_ns - p.ts_ns) / 1e9 : 0;
    r.protocol = "http";
    r.side = *side;
    r.method = std::move(p.method);
    r.path = std::move(p.path);
    r.route = std::move(p.route);
    r.status = h.status;
    r.request_bytes = p.bytes;
    r.response_bytes = h.head_bytes;
    identify(r);
    return r.method == "HEAD";
}

void ConnectionTracker::Conn::onEnd(bool sending, std::uint64_t bytes) {
    // Which kind of message ended: requests travel client -> server.
    const bool is_request = side && ((*side == Side::Client) == sending);
    if (is_request) {
        if (request_open && !pending.empty()) pending.back().bytes = bytes;
        request_open = false;
        return;
    }
    if (current) {
        current->response_bytes = std::max(current->response_bytes, bytes);
        owner.complete(std::move(*current));
        current.reset();
    }
}

void ConnectionTracker::Conn::onExchange(Exchange&& e) {
    Request r;
    r.mono_ns = e.request_ns;
    r.duration_seconds = e.response_ns > e.request_ns ? static_cast<double>(e.response_ns - e.request_ns) / 1e9 : 0;
    r.protocol = e.protocol.empty() ? std::string(protocol) : std::move(e.protocol);
    r.side = e.client ? Side::Client : Side::Server;
    r.method = std::move(e.method);
    r.path = std::move(e.path);
    if (r.path.size() > 256) r.path.resize(256);
    r.route = e.route.empty() ? r.path : std::move(e.route);
    r.status = e.status >= 0 ? e.status : e.error ? 1 : e.outcome_unknown ? 2 : 0;
    r.error = std::move(e.error_code);
    r.request_bytes = e.request_bytes;
    r.response_bytes = e.response_bytes;
    identify(r);
    owner.complete(std::move(r));
}

ConnectionTracker::ConnectionTracker(TrackerOptions options) : opts_(options) {}
ConnectionTracker::~ConnectionTracker() = default;

void ConnectionTracker::complete(Request&& r) {
    ++counters_.requests;
    if (out_.size() >= opts_.max_requests) {
        ++counters_.requests_dropped;
        return;
    }
    out_.push_back(std::move(r));
}

void ConnectionTracker::finish(Conn& c, std::uint64_t now_ns) {
    c.send.close();
    c.recv.close();
    counters_.unanswered += c.pending.size();
    // A query's wait ends when its socket closed (a client that gave up), else now.
    const std::uint64_t closed_at = c.sock_closed_ns ? c.sock_closed_ns : now_ns;
    for (const auto& [key, p] : c.dns_pending) dnsUnanswered(c, {key, p}, std::max(closed_at, p.ts_ns));
    c.dns_pending.clear();
    counters_.desyncs += c.send.desyncs() + c.recv.desyncs();
    if (c.parser) {
        c.parser->close();
        const auto& pc = c.parser->counters();
        counters_.unanswered += pc.unanswered;
        counters_.unmatched_responses += pc.unmatched_responses;
        counters_.desyncs += pc.desyncs;
        c.parser.reset();
    }
}

void ConnectionTracker::feed(const ebpf::L7Message& m) {
    ++counters_.messages;
    auto it = conns_.find(m.sock);
    if (m.direction == NP_L7_CLOSED) {
        if (it == conns_.end()) return;
        if (m.flags & NP_L7_F_SOCK_CLOSED) {
            // No close(2): the process exited, or a reset or FIN ended the socket while the
            // process may still read what it holds; expire() lets it go after a grace.
            it->second->sock_closed_ns = std::max<std::uint64_t>(m.ts_ns, 1);
            return;
        }
        finish(*it->second, m.ts_ns);
        conns_.erase(it);
        return;
    }
    if (m.protocol != NP_L7_HTTP1 && m.protocol != NP_L7_DNS && m.protocol != NP_L7_REDIS &&
        m.protocol != NP_L7_POSTGRES && m.protocol != NP_L7_MYSQL && m.protocol != NP_L7_HTTP2 &&
        m.protocol != NP_L7_KAFKA && m.protocol != NP_L7_AMQP) {
        ++counters_.other_protocol;
        return;
    }
    // (UDP: the remote end is each datagram's peer, not the socket's.)
    if (it != conns_.end() && (it->second->local_port != m.local_port ||
                               (m.ip_proto != 17 && it->second->remote_port != m.remote_port))) {
        // The socket address was reused by another connection (its close was not seen).
        finish(*it->second, m.ts_ns);
        conns_.erase(it);
        it = conns_.end();
    }
    if (it == conns_.end()) {
        if (conns_.size() >= opts_.max_connections) {
            ++counters_.connections_dropped;
            return;
        }
        it = conns_.emplace(m.sock, std::make_unique<Conn>(*this, m)).first;
    }
    Conn& c = *it->second;
    c.last_ns = m.ts_ns;
    if (m.protocol == NP_L7_DNS) {
        if (m.ip_proto == 17)
            dnsMessage(c, m, m.head, m.len);
        else
            dnsTcp(c, m);
        return;
    }
    const Chunk ch{m.head, m.len, m.tail, m.ts_ns, (m.flags & NP_L7_F_TLS) != 0, m.pieces};
    if (m.protocol == NP_L7_HTTP1) {
        (m.direction == NP_L7_SEND ? c.send : c.recv).feed(ch);
        return;
    }
    if (!c.parser) {
        switch (m.protocol) {
            case NP_L7_REDIS:
                c.parser = makeRedisParser(c, opts_.max_pending, m.local_port, m.remote_port);
                c.protocol = "redis";
                break;
            case NP_L7_POSTGRES:
                c.parser = makePostgresParser(c, opts_.max_pending);
                c.protocol = "postgres";
                break;
            case NP_L7_HTTP2:
                c.parser = makeHttp2Parser(c, kMaxStreams);
                c.protocol = "http2";
                break;
            case NP_L7_KAFKA:
                c.parser = makeKafkaParser(c, std::max(opts_.max_pending, kMaxKafkaInFlight));
                c.protocol = "kafka";
                break;
            case NP_L7_AMQP:
                c.parser = makeAmqpParser(c, m.local_port, m.remote_port);
                c.protocol = "amqp";
                break;
            default:
                c.parser = makeMySqlParser(c, opts_.max_pending);
                c.protocol = "mysql";
                break;
        }
    }
    if (m.flags & NP_L7_F_SPLIT) {
        // Kafka: the message's 4-byte size came alone in the previous syscall (read while
        // the kernel was inferring the protocol, not recorded): put it back in front.
        const auto n = static_cast<std::uint32_t>(m.len);
        std::string head = {static_cast<char>(n >> 24), static_cast<char>(n >> 16), static_cast<char>(n >> 8),
                            static_cast<char>(n)};
        head += m.head;
        c.parser->feed(m.direction == NP_L7_SEND, Chunk{head, std::uint64_t{m.len} + 4, m.tail, m.ts_ns});
        return;
    }
    c.parser->feed(m.direction == NP_L7_SEND, ch);
}

void ConnectionTracker::dnsMessage(Conn& c, const ebpf::L7Message& m, std::string_view bytes, std::uint64_t len) {
    auto msg = parseDns(bytes);
    if (!msg) {
        ++counters_.not_parsed;
        return;
    }
    const bool sending = m.direction == NP_L7_SEND;
    const auto key = std::make_tuple(m.remote, m.remote_port, msg->id);
    if (!msg->response) {
        if (c.dns_pending.size() >= opts_.max_dns_pending && !c.dns_pending.contains(key)) {
            // the oldest query goes (the map is by key: find it)
            auto oldest = std::min_element(c.dns_pending.begin(), c.dns_pending.end(), [](const auto& a, const auto& b) {
                return a.second.ts_ns < b.second.ts_ns;
            });
            c.dns_pending.erase(oldest);
            ++counters_.unanswered;
        }
        auto& p = c.dns_pending[key];
        if (p.ts_ns) dnsUnanswered(c, {key, p}, m.ts_ns);  // the same id again before an answer: a retry
        p = {m.ts_ns, std::move(msg->qname), msg->qtype, len, sending, m.local, m.local_port};
        return;
    }
    auto it = c.dns_pending.find(key);
    if (it == c.dns_pending.end() || it->second.qname != msg->qname) {
        ++counters_.unmatched_responses;
        return;
    }
    Conn::DnsPending p = std::move(it->second);
    c.dns_pending.erase(it);
    Request r;
    r.mono_ns = p.ts_ns;
    r.duration_seconds = m.ts_ns > p.ts_ns ? static_cast<double>(m.ts_ns - p.ts_ns) / 1e9 : 0;
    r.protocol = "dns";
    r.side = sending ? Side::Server : Side::Client;  // who answers is the server
    r.method = dnsTypeName(p.qtype);
    r.path = p.qname;
    r.route = std::move(p.qname);
    r.status = msg->rcode;
    r.answers = std::move(msg->answers);
    r.request_bytes = p.bytes;
    r.response_bytes = len;
    r.pid = c.pid;
    r.cgroup_id = c.cgroup_id;
    r.family = c.family;
    const bool server_local = r.side == Side::Server;
    r.server = server_local ? m.local : m.remote;
    r.client = server_local ? m.remote : m.local;
    r.server_port = server_local ? m.local_port : m.remote_port;
    r.client_port = server_local ? m.remote_port : m.local_port;
    r.sock = c.sock;
    complete(std::move(r));
}

void ConnectionTracker::dnsTcp(Conn& c, const ebpf::L7Message& m) {
    // Each message is preceded by its length (2 bytes, RFC 1035 4.2.2); servers may read
    // the two bytes one at a time (dnsmasq) and the message in a read of its own.
    const int dir = m.direction == NP_L7_SEND ? 0 : 1;
    std::uint64_t& skip = c.dns_skip[dir];
    std::uint64_t& await = c.dns_await[dir];
    std::string& lenbuf = c.dns_len[dir];
    const std::uint64_t len = std::max<std::uint64_t>(m.len, m.head.size());
    std::uint64_t pos = 0;
    while (pos < len) {
        if (skip) {
            const auto n = std::min(skip, len - pos);
            skip -= n;
            pos += n;
            continue;
        }
        if (await) {  // a message starts here
            const std::uint64_t msg_len = await;
            await = 0;
            const std::size_t avail = pos < m.head.size() ? m.head.size() - static_cast<std::size_t>(pos) : 0;
            dnsMessage(c, m, m.head.substr(static_cast<std::size_t>(std::min<std::uint64_t>(pos, m.head.size())),
                                           std::min<std::size_t>(avail, msg_len)),
                       msg_len);
            const std::uint64_t here = std::min(msg_len, len - pos);
            pos += here;
            skip = msg_len - here;
            continue;
        }
        if (pos >= m.head.size()) {  // the length is in bytes not copied: lost until the next syscall
            lenbuf.clear();
            ++counters_.desyncs;
            return;
        }
        lenbuf += m.head[static_cast<std::size_t>(pos)];
        ++pos;
        if (lenbuf.size() < 2) continue;
        await = (static_cast<std::uint8_t>(lenbuf[0]) << 8) | static_cast<std::uint8_t>(lenbuf[1]);
        lenbuf.clear();
    }
}

std::vector<Request> ConnectionTracker::takeDnsUnanswered() {
    std::vector<Request> r;
    r.swap(dns_unanswered_);
    return r;
}

std::vector<Request> ConnectionTracker::take(std::vector<Request> spare) {
    std::vector<Request> r;
    r.swap(out_);
    // The next interval's storage: room for a quarter more than this one took (a load that
    // grows a little does not double the vector, a reallocation that moves every request),
    // from the spare when it has that room (its pages are resident: a fresh vector faults
    // in each of its pages as it fills, ~5.6k faults/s under nginx + wrk), else a fresh one
    // with room for half more, so that the next interval's spare - this storage - still
    // fits a load that moved by up to a fifth.
    const std::size_t need = std::min<std::size_t>(r.size() + r.size() / 4, opts_.max_requests);
    spare.clear();
    if (spare.capacity() >= need && spare.capacity() <= 4 * need + 1024) {
        out_.swap(spare);
    } else {
        out_.reserve(std::min<std::size_t>(r.size() + r.size() / 2, opts_.max_requests));
    }
    return r;
}

void ConnectionTracker::expire(std::uint64_t now_ns) {
    const auto idle = static_cast<std::uint64_t>(opts_.idle_timeout.count());
    const auto dns_timeout = static_cast<std::uint64_t>(opts_.dns_timeout.count());
    for (auto it = conns_.begin(); it != conns_.end();) {
        auto& q = it->second->dns_pending;
        for (auto p = q.begin(); p != q.end();) {
            if (now_ns > p->second.ts_ns + dns_timeout) {
                dnsUnanswered(*it->second, {p->first, p->second}, now_ns);
                p = q.erase(p);
            } else {
                ++p;
            }
        }
        const auto& c = *it->second;
        const bool closed = c.sock_closed_ns &&
                            now_ns > std::max(c.sock_closed_ns, c.last_ns) + static_cast<std::uint64_t>(std::chrono::nanoseconds(kClosedGrace).count());
        if (closed || now_ns > c.last_ns + idle) {
            finish(*it->second, now_ns);
            if (!closed) ++counters_.connections_expired;
            it = conns_.erase(it);
        } else {
            ++it;
        }
    }
}

TrackerCounters ConnectionTracker::counters() const {
    TrackerCounters c = counters_;
    for (const auto& [_, conn] : conns_) {
        c.desyncs += conn->send.desyncs() + conn->recv.desyncs();
        if (conn->parser) {
            const auto& pc = conn->parser->counters();
            c.unanswered += pc.unanswered;
            c.unmatched_responses += pc.unmatched_responses;
            c.desyncs += pc.desyncs;
        }
    }
    return c;
}

}  // namespace netprobe::l7
