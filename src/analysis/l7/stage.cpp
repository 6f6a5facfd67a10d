// The L7 stage (see stage.hpp).
#include <netprobe/analysis/l7/stage.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/analysis/l7/http1.hpp>
#include <netprobe/collector/snapshot.hpp>

namespace netprobe::analysis::l7 {
namespace {

constexpr std::size_t kSlots = 6;             // the window in slots (one more is kept as the ring's spare)
constexpr std::size_t kSamplesPerSlot = 512;  // durations kept per slot (a uniform sample beyond)

std::string endpointKey(const Request& r, std::string_view route) {
    std::string k = r.protocol;
    k += '|';
    k += sideName(r.side);
    k += '|';
    k += r.service;
    k += '|';
    k += r.method;
    k += '|';
    k += route;
    return k;
}

std::string statusClass(int status) {
    if (status < 100 || status > 599) return "unknown";
    return std::string(1, static_cast<char>('0' + status / 100)) + "xx";
}

std::string hostPort(const util::Addr16& a, std::uint16_t port) {
    std::string h = util::formatAddr(a);
    if (h.find(':') != std::string::npos) h = "[" + h + "]";
    return h + ":" + std::to_string(port);
}

}  // namespace

const char* sideName(Side s) { return s == Side::Client ? "client" : "server"; }

struct L7Stage::Endpoint {
    struct Slot {
        std::int64_t id = -1;
        std::uint64_t requests = 0, errors = 0, client_errors = 0, request_bytes = 0, response_bytes = 0;
        std::vector<float> durations;  // every one up to kSamplesPerSlot, then a uniform sample (Algorithm R)
    };
    std::string protocol, side, service, method, route;
    std::uint64_t requests_total = 0, errors_total = 0;
    std::array<Slot, kSlots + 1> slots;
};

struct L7Stage::Conn {
    struct Pending {
        std::string method, path, route;
        std::uint64_t ts_ns = 0;
        std::uint64_t bytes = 0;
    };
    std::optional<Side> side;
    std::deque<Pending> pending;
    bool request_open = false;      // the last pending request's body is still arriving
    std::optional<Request> current; // the response in progress, with its request
    std::uint64_t response_ts = 0;
    std::uint64_t last_ns = 0;
    ebpf::L7Message meta;           // the first message's identity fields (no data)
    std::unique_ptr<Http1Stream> send, recv;
};

L7Stage::L7Stage(L7Options options, std::shared_ptr<const Attribution> attribution)
    : opts_(options), attribution_(std::move(attribution)) {}

L7Stage::~L7Stage() = default;

std::string L7Stage::serviceOf(const Conn& c, Side side) {
    const auto& m = c.meta;
    const bool server_local = side == Side::Server;
    const util::Addr16& server = server_local ? m.local : m.remote;
    const std::uint16_t sport = server_local ? m.local_port : m.remote_port;
    std::string name;
    if (attribution_) {
        flow_key k{};
        const util::Addr16& client = server_local ? m.remote : m.local;
        std::memcpy(&k.src_ip, client.data(), 16);
        std::memcpy(&k.dst_ip, server.data(), 16);
        k.src_port = server_local ? m.remote_port : m.local_port;
        k.dst_port = sport;
        k.proto = 6;
        k.family = m.family;
        auto labels = attribution_->flow(k);
        if (!labels.dst_service.empty())
            name = labels.dst_namespace.empty() ? labels.dst_service : labels.dst_namespace + "/" + labels.dst_service;
        else if (!labels.dst_workload.empty())
            name = labels.dst_namespace.empty() ? labels.dst_workload : labels.dst_namespace + "/" + labels.dst_workload;
    }
    if (name.empty()) name = hostPort(server, sport);
    if (services_.contains(name)) return name;
    if (services_.size() < opts_.max_services) {
        services_.emplace(name, true);
        return name;
    }
    ++counters_.services_overflow;
    return "other";
}

void L7Stage::complete(Conn& c, Request&& r) {
    ++counters_.requests;
    r.service = serviceOf(c, r.side);
    const std::string sc = statusClass(r.status);
    auto& t = series_[SeriesKey{r.protocol, sideName(r.side), r.service, r.method, sc}];
    ++t.requests;
    t.duration_sum += r.duration_seconds;
    t.request_bytes += r.request_bytes;
    t.response_bytes += r.response_bytes;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i)
        if (r.duration_seconds <= kDurationBuckets[i]) {
            ++t.buckets[i];
            break;
        }

    std::string key = endpointKey(r, r.route);
    auto it = endpoints_.find(key);
    if (it == endpoints_.end()) {
        if (endpoints_.size() >= opts_.max_endpoints) {
            ++counters_.endpoints_overflow;
            key = endpointKey(r, "other");
            it = endpoints_.find(key);
        }
        if (it == endpoints_.end()) {
            auto e = std::make_unique<Endpoint>();
            e->protocol = r.protocol;
            e->side = sideName(r.side);
            e->service = r.service;
            e->method = r.method;
            e->route = endpoints_.size() >= opts_.max_endpoints ? "other" : r.route;
            it = endpoints_.emplace(key, std::move(e)).first;
        }
    }
    Endpoint& e = *it->second;
    const bool error = r.status >= 500;
    ++e.requests_total;
    e.errors_total += error;
    const auto slot_ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.window).count() / kSlots, 1);
    const std::int64_t id = static_cast<std::int64_t>(r.mono_ns) / slot_ns;
    auto& s = e.slots[static_cast<std::size_t>(id) % e.slots.size()];
    if (s.id != id) s = Endpoint::Slot{.id = id};
    ++s.requests;
    s.errors += error;
    s.client_errors += r.status >= 400 && r.status < 500;
    s.request_bytes += r.request_bytes;
    s.response_bytes += r.response_bytes;
    if (s.durations.size() < kSamplesPerSlot) {
        s.durations.push_back(static_cast<float>(r.duration_seconds));
    } else {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        const std::uint64_t j = rng_ % s.requests;  // s.requests counts this one
        if (j < kSamplesPerSlot) s.durations[j] = static_cast<float>(r.duration_seconds);
    }

    recent_.push_back(std::move(r));
    while (recent_.size() > opts_.recent_requests) recent_.pop_front();
}

void L7Stage::process(const ebpf::L7Message& m) {
    ++counters_.messages;
    auto it = conns_.find(m.sock);
    if (m.direction == NP_L7_CLOSED) {
        if (it == conns_.end()) return;
        Conn& c = *it->second;
        if (c.send) c.send->close();
        if (c.recv) c.recv->close();
        counters_.unanswered += c.pending.size();
        counters_.desyncs += (c.send ? c.send->desyncs() : 0) + (c.recv ? c.recv->desyncs() : 0);
        conns_.erase(it);
        return;
    }
    if (m.protocol != NP_L7_HTTP1) {
        ++counters_.other_protocol;
        return;
    }
    if (it != conns_.end() && (it->second->meta.local_port != m.local_port || it->second->meta.remote_port != m.remote_port)) {
        // The socket address was reused by another connection (its close was not seen).
        counters_.unanswered += it->second->pending.size();
        conns_.erase(it);
        it = conns_.end();
    }
    if (it == conns_.end()) {
        if (conns_.size() >= opts_.max_connections) {
            ++counters_.connections_dropped;
            return;
        }
        auto c = std::make_unique<Conn>();
        c->meta = m;
        c->meta.head.clear();
        c->meta.tail.clear();
        Conn* cp = c.get();
        auto make = [this, cp](bool sending) {
            auto on_head = [this, cp, sending](Http1Message& h) -> bool {
                const collector::Snapshot& snap = *current_;  // set by run() around process()
                Conn& cc = *cp;
                if (h.request) {
                    if (!cc.side) cc.side = sending ? Side::Client : Side::Server;
                    if (cc.pending.size() >= opts_.max_pending) {
                        cc.pending.pop_front();
                        ++counters_.unanswered;
                    }
                    std::string path = h.target.substr(0, h.target.find_first_of("?#"));
                    if (path.size() > 256) path.resize(256);
                    cc.pending.push_back({h.method, std::move(path), routeTemplate(h.target), h.start_ts_ns, h.head_bytes});
                    cc.request_open = true;
                    return false;
                }
                if (h.status < 200) return false;  // interim (100 Continue): the final response follows
                if (!cc.side) cc.side = sending ? Side::Server : Side::Client;
                if (cc.current) {  // the previous response's end was not seen
                    complete(cc, std::move(*cc.current));
                    cc.current.reset();
                }
                if (cc.pending.empty()) {
                    ++counters_.unmatched_responses;
                    return false;
                }
                auto p = std::move(cc.pending.front());
                cc.pending.pop_front();
                if (cc.pending.empty()) cc.request_open = false;
                Request r;
                r.time = snap.wallOf(p.ts_ns);
                r.mono_ns = p.ts_ns;
                r.duration_seconds = h.start_ts_ns > p.ts_ns ? static_cast<double>(h.start_ts_ns - p.ts_ns) / 1e9 : 0;
                r.protocol = "http";
                r.side = *cc.side;
                r.method = p.method;
                r.path = std::move(p.path);
                r.route = std::move(p.route);
                r.status = h.status;
                r.request_bytes = p.bytes;
                r.response_bytes = h.head_bytes;
                r.pid = cc.meta.pid;
                r.cgroup_id = cc.meta.cgroup_id;
                const bool server_local = r.side == Side::Server;
                r.server = server_local ? cc.meta.local : cc.meta.remote;
                r.client = server_local ? cc.meta.remote : cc.meta.local;
                r.server_port = server_local ? cc.meta.local_port : cc.meta.remote_port;
                r.client_port = server_local ? cc.meta.remote_port : cc.meta.local_port;
                r.sock = cc.meta.sock;
                const bool head_request = r.method == "HEAD";
                cc.current = std::move(r);
                return head_request;
            };
            auto on_end = [this, cp, sending](std::uint64_t bytes) {
                Conn& cc = *cp;
                // Which kind of message ended: requests travel client -> server.
                const bool is_request = cc.side && ((*cc.side == Side::Client) == sending);
                if (is_request) {
                    if (cc.request_open && !cc.pending.empty()) cc.pending.back().bytes = bytes;
                    cc.request_open = false;
                    return;
                }
                if (cc.current) {
                    cc.current->response_bytes = std::max(cc.current->response_bytes, bytes);
                    complete(cc, std::move(*cc.current));
                    cc.current.reset();
                }
            };
            return std::make_unique<Http1Stream>(on_head, on_end);
        };
        c->send = make(true);
        c->recv = make(false);
        it = conns_.emplace(m.sock, std::move(c)).first;
    }
    Conn& c = *it->second;
    c.last_ns = m.ts_ns;
    Chunk ch{m.head, m.len, m.tail, m.ts_ns};
    (m.direction == NP_L7_SEND ? c.send : c.recv)->feed(ch);
}

void L7Stage::run(const collector::Snapshot& snap, Views& views) {
    if (snap.l7) {
        current_ = &snap;  // the parsers' callbacks read it while process() runs
        for (const auto& m : snap.l7->messages) process(m);
        current_ = nullptr;
    }
    const std::uint64_t now_ns = snap.monoNs();
    const auto idle_ns = static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.idle_timeout).count());
    std::uint64_t desyncs_live = 0;
    for (auto it = conns_.begin(); it != conns_.end();) {
        Conn& c = *it->second;
        if (now_ns > c.last_ns + idle_ns) {
            counters_.unanswered += c.pending.size();
            counters_.desyncs += c.send->desyncs() + c.recv->desyncs();
            ++counters_.connections_expired;
            it = conns_.erase(it);
            continue;
        }
        desyncs_live += c.send->desyncs() + c.recv->desyncs();
        ++it;
    }

    auto view = std::make_shared<L7View>();
    view->series = series_;
    view->counters = counters_;
    view->counters.desyncs += desyncs_live;
    view->connections = conns_.size();
    view->window = opts_.window;
    view->recent.assign(recent_.begin(), recent_.end());

    const auto slot_ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.window).count() / kSlots, 1);
    const std::int64_t now_id = static_cast<std::int64_t>(now_ns) / slot_ns;
    const std::int64_t first_id = now_id - static_cast<std::int64_t>(kSlots) + 1;
    if (start_ns_ == 0) start_ns_ = now_ns;
    // The window's slots, or the time since the stage started when that is shorter.
    const double covered = std::min(static_cast<double>(static_cast<std::int64_t>(now_ns) - first_id * slot_ns),
                                    static_cast<double>(now_ns - start_ns_) + 1e9 * snap.interval_seconds) /
                           1e9;
    for (const auto& [key, ep] : endpoints_) {
        EndpointSummary s;
        s.protocol = ep->protocol;
        s.side = ep->side;
        s.service = ep->service;
        s.method = ep->method;
        s.route = ep->route;
        s.requests_total = ep->requests_total;
        s.errors_total = ep->errors_total;
        std::vector<float> d;
        for (const auto& sl : ep->slots) {
            if (sl.id < first_id || sl.id > now_id) continue;
            s.requests += sl.requests;
            s.errors += sl.errors;
            s.client_errors += sl.client_errors;
            s.request_bytes += sl.request_bytes;
            s.response_bytes += sl.response_bytes;
            d.insert(d.end(), sl.durations.begin(), sl.durations.end());
        }
        if (covered > 0) s.rate = static_cast<double>(s.requests) / covered;
        if (s.requests) {
            s.error_rate = static_cast<double>(s.errors) / static_cast<double>(s.requests);
            // Nearest rank over the kept durations (all of them up to kSamplesPerSlot a slot).
            auto quantile = [&](double q) -> double {
                if (d.empty()) return 0;
                auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(d.size())));
                rank = std::clamp<std::size_t>(rank, 1, d.size()) - 1;
                std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(rank), d.end());
                return d[rank];
            };
            s.p50 = quantile(0.5);
            s.p90 = quantile(0.9);
            s.p99 = quantile(0.99);
        }
        view->endpoints.push_back(std::move(s));
    }
    std::stable_sort(view->endpoints.begin(), view->endpoints.end(),
                     [](const EndpointSummary& a, const EndpointSummary& b) { return a.requests > b.requests; });
    views.l7 = std::move(view);
}

}  // namespace netprobe::analysis::l7
