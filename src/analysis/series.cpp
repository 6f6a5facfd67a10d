#include <netprobe/analysis/series.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <tuple>
#include <unordered_map>

#include <netprobe/analysis/qos.hpp>
#include <netprobe/analysis/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {
namespace {

using ConvKey = std::tuple<util::Addr16, util::Addr16, std::uint16_t, std::uint8_t>;

// What a conversation did in an interval.
struct Acc {
    std::uint64_t bytes_out = 0, bytes_in = 0, packets_out = 0, packets_in = 0;
    std::uint64_t opened = 0, failed = 0, retransmits = 0, requests = 0, errors = 0;
    std::string l7_protocol;
    std::vector<double> rtt_ms;
};

struct SlotFigures {
    std::uint64_t bytes_out = 0, bytes_in = 0, packets_out = 0, packets_in = 0;
    std::uint64_t opened = 0, failed = 0, retransmits = 0, requests = 0, errors = 0;
};

SlotFigures figuresOf(const TopologySlot& s) {
    SlotFigures f{s.bytes_out, s.bytes_in, s.packets_out, s.packets_in, s.opened, s.failed, s.retransmits, 0, 0};
    // the server's end when it was captured (both ends on the node: the same requests twice)
    const TopologyL7* l = s.l7_server && s.l7_server->requests ? s.l7_server.get() : s.l7_client.get();
    if (l) {
        f.requests = l->requests;
        f.errors = l->errors;
    }
    return f;
}

void addDelta(Acc& a, const SlotFigures& now, const SlotFigures& before) {
    auto d = [](std::uint64_t x, std::uint64_t y) { return x > y ? x - y : 0; };
    a.bytes_out += d(now.bytes_out, before.bytes_out);
    a.bytes_in += d(now.bytes_in, before.bytes_in);
    a.packets_out += d(now.packets_out, before.packets_out);
    a.packets_in += d(now.packets_in, before.packets_in);
    a.opened += d(now.opened, before.opened);
    a.failed += d(now.failed, before.failed);
    a.retransmits += d(now.retransmits, before.retransmits);
    a.requests += d(now.requests, before.requests);
    a.errors += d(now.errors, before.errors);
}

double median(std::vector<double> v) { return quantileOf(v, 0.5); }

// 127.0.0.0/8 (IPv4-mapped) or ::1: the host talking to itself, every local process at
// once: not an entity with a behaviour of its own.
bool loopback(const util::Addr16& a) {
    if (util::isV4Mapped(a)) return a[12] == 127;
    static constexpr util::Addr16 kOne = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return a == kOne;
}

std::string transport(std::uint8_t p) { return p == 6 ? "tcp" : p == 17 ? "udp" : std::to_string(p); }

}  // namespace

struct Series::State {
    SeriesOptions opts;
    std::int64_t start = 0;     // the open interval's wall-clock start (unix s); 0: none yet
    double covered = 0;
    std::uint64_t intervals = 0;
    std::shared_ptr<const SeriesView> last;

    struct Iface {
        std::uint64_t rx_b = 0, tx_b = 0, rx_p = 0, tx_p = 0;
        std::uint64_t run = 0;  // (iface_prev) the last run whose snapshot listed the interface
    };
    // iface_prev: the interfaces of the latest snapshot (one gone from it is forgotten:
    // no more points, and no entry left behind by each interface created and deleted)
    std::map<std::string, Iface> iface_prev, iface_acc;
    std::map<std::string, std::uint64_t> netstat_prev, netstat_acc;
    double flow_table_usage = -1;
    double conntrack_usage = -1;

    // per conversation: its newest slot as last seen, and the run that saw it
    struct Seen {
        std::int64_t slot = 0;
        SlotFigures f;
        std::uint64_t run = 0;
    };
    std::map<ConvKey, Seen> seen;
    std::map<ConvKey, Acc> acc;
    std::map<ConvKey, std::pair<TopologyEnd, TopologyEnd>> ends;  // of the conversations in acc
    std::map<util::Addr16, std::set<std::string>> dns;            // names each client resolved
    std::uint64_t run = 0;

    std::shared_ptr<const SeriesView> close(const collector::Snapshot& snap);
};

Series::Series(SeriesOptions options) : s_(std::make_unique<State>()) {
    s_->opts = options;
    if (s_->opts.step.count() < 1) s_->opts.step = std::chrono::seconds(1);
    s_->last = std::make_shared<SeriesView>();
}

Series::~Series() = default;

void Series::run(const collector::Snapshot& snap, Views& views) {
    State& s = *s_;
    ++s.run;
    const std::int64_t step = s.opts.step.count();
    const std::int64_t now_unix =
        std::chrono::duration_cast<std::chrono::seconds>(snap.taken_at.time_since_epoch()).count();
    const std::int64_t start = now_unix - ((now_unix % step) + step) % step;
    if (s.start != 0 && start != s.start) s.last = s.close(snap);
    s.start = start;
    s.covered += snap.interval_seconds;

    // interfaces: deltas of the cumulative counters (a counter below its previous value
    // restarted: the interface was re-attached)
    for (const auto& i : snap.interfaces) {
        auto [it, fresh] = s.iface_prev.try_emplace(i.name);
        auto& p = it->second;
        if (!fresh) {
            auto& a = s.iface_acc[i.name];
            auto d = [](std::uint64_t x, std::uint64_t y) { return x >= y ? x - y : x; };
            a.rx_b += d(i.ingress_bytes, p.rx_b);
            a.tx_b += d(i.egress_bytes, p.tx_b);
            a.rx_p += d(i.ingress_packets, p.rx_p);
            a.tx_p += d(i.egress_packets, p.tx_p);
        }
        p = {i.ingress_bytes, i.egress_bytes, i.ingress_packets, i.egress_packets, s.run};
    }
    std::erase_if(s.iface_prev, [&](const auto& e) { return e.second.run != s.run; });
    if (snap.netstat) {
        for (const char* k : {"Tcp.RetransSegs", "Tcp.OutSegs", "TcpExt.ListenOverflows"}) {
            auto it = snap.netstat->find(k);
            if (it == snap.netstat->end()) continue;
            auto [pv, fresh] = s.netstat_prev.try_emplace(k, it->second);
            if (!fresh && it->second >= pv->second) s.netstat_acc[k] += it->second - pv->second;
            pv->second = it->second;
        }
    }
    if (snap.conntrack && snap.conntrack->available && snap.conntrack->max)
        s.conntrack_usage = static_cast<double>(snap.conntrack->count) / static_cast<double>(snap.conntrack->max);
    if (snap.kernel_flows.capacity)
        s.flow_table_usage =
            static_cast<double>(snap.kernel_flows.entries) / static_cast<double>(snap.kernel_flows.capacity);

    // conversations: what their slots gained since the previous run
    if (views.topology) {
        for (const auto& cp : views.topology->conversations) {
            const Conversation& c = *cp;
            if (c.slots.empty()) continue;
            const ConvKey k{c.client.ip, c.server.ip, c.port, c.ip_proto};
            auto [it, fresh] = s.seen.try_emplace(k);
            auto& seen = it->second;
            seen.run = s.run;
            Acc* a = nullptr;
            auto accOf = [&]() -> Acc& {
                if (!a) {
                    a = &s.acc[k];
                    s.ends[k] = {c.client, c.server};
                }
                return *a;
            };
            const SlotFigures zero{};
            // the slots since the one seen last (newest last; usually one or two)
            auto from = c.slots.end();
            while (from != c.slots.begin() && (fresh || std::prev(from)->id >= seen.slot)) --from;
            for (auto sl = from; sl != c.slots.end(); ++sl) {
                const SlotFigures f = figuresOf(*sl);
                const SlotFigures& before = !fresh && sl->id == seen.slot ? seen.f : zero;
                if (f.bytes_out == before.bytes_out && f.bytes_in == before.bytes_in && f.opened == before.opened &&
                    f.failed == before.failed && f.retransmits == before.retransmits && f.requests == before.requests)
                    continue;
                addDelta(accOf(), f, before);
                for (const TopologyL7* l : {sl->l7_server.get(), sl->l7_client.get()})
                    if (l && !l->protocol.empty()) accOf().l7_protocol = l->protocol;
            }
            seen.slot = c.slots.back().id;
            seen.f = figuresOf(c.slots.back());
        }
        std::erase_if(s.seen, [&](const auto& e) { return e.second.run != s.run; });
    }
    // handshake RTTs read this run
    if (views.qos) {
        const std::uint64_t now_ns = views.qos->now_ns;
        for (const auto& c : views.qos->conversations) {
            for (auto r = c->samples.rbegin(); r != c->samples.rend() && r->mono_ns == now_ns; ++r) {
                const ConvKey k{c->client, c->server, c->port, 6};
                s.acc[k].rtt_ms.push_back(r->rttUs() / 1000.0);
            }
        }
    }
    if (snap.l7)
        for (const auto& r : snap.l7->requests)
            if (r.protocol == "dns" && !r.path.empty()) {
                auto& names = s.dns[r.client];
                if (names.size() < 256) names.insert(r.path);
            }
    views.series = s.last;
}

std::shared_ptr<const SeriesView> Series::State::close(const collector::Snapshot&) {
    auto v = std::make_shared<SeriesView>();
    v->step = opts.step;
    v->intervals = ++intervals;
    v->start_unix = start;
    v->covered_seconds = covered;
    const double secs = covered > 0 ? covered : static_cast<double>(opts.step.count());
    auto& pts = v->points;
    for (const auto& [name, a] : iface_acc) {
        const std::string p = "iface/" + name + "/";
        pts.push_back({p + "rx_bytes_rate", static_cast<double>(a.rx_b) / secs});
        pts.push_back({p + "tx_bytes_rate", static_cast<double>(a.tx_b) / secs});
        pts.push_back({p + "rx_packets_rate", static_cast<double>(a.rx_p) / secs});
        pts.push_back({p + "tx_packets_rate", static_cast<double>(a.tx_p) / secs});
    }
    // interfaces that are there but were quiet: a zero is a value (a traffic stop is news);
    // an interface gone (deleted) has no more points once its last traffic is reported
    for (const auto& [name, _] : iface_prev)
        if (!iface_acc.contains(name))
            for (const char* f : {"rx_bytes_rate", "tx_bytes_rate", "rx_packets_rate", "tx_packets_rate"})
                pts.push_back({"iface/" + name + "/" + f, 0.0});
    if (netstat_acc.contains("Tcp.OutSegs") && netstat_acc["Tcp.OutSegs"] > 0)
        pts.push_back({"node/retransmit_ratio", static_cast<double>(netstat_acc["Tcp.RetransSegs"]) /
                                                     static_cast<double>(netstat_acc["Tcp.OutSegs"])});
    if (netstat_prev.contains("TcpExt.ListenOverflows"))
        pts.push_back({"node/listen_overflows_rate", static_cast<double>(netstat_acc["TcpExt.ListenOverflows"]) / secs});
    if (flow_table_usage >= 0) pts.push_back({"node/flow_table_usage", flow_table_usage});
    if (conntrack_usage >= 0) pts.push_back({"node/conntrack_usage", conntrack_usage});

    // edges and services, by node id
    struct EdgeAcc {
        Acc a;
        std::size_t conversations = 0;
    };
    std::map<std::string, EdgeAcc> edges;
    std::map<std::string, Acc> services;
    std::uint64_t failed = 0;
    struct Entity {
        anomaly::BehaviourSample b;
        std::set<std::uint32_t> served, used;
        std::set<std::string> peers;
        std::map<std::string, double> proto;
        double weight = 0;
    };
    std::map<std::string, Entity> entities;
    std::map<util::Addr16, std::string> entity_of_ip;
    for (auto& [k, a] : acc) {
        auto e = ends.find(k);
        std::string client, server;
        if (e != ends.end()) {
            client = qosNodeOf(e->second.first);
            server = qosNodeOf(e->second.second);
        } else {
            client = util::formatAddr(std::get<0>(k));
            server = util::formatAddr(std::get<1>(k));
        }
        entity_of_ip.emplace(std::get<0>(k), client);
        entity_of_ip.emplace(std::get<1>(k), server);
        const std::uint16_t port = std::get<2>(k);
        const std::string t = transport(std::get<3>(k));
        auto& ed = edges["edge/" + client + "->" + server + ":" + std::to_string(port) + "/" + t];
        ++ed.conversations;
        auto merge = [](Acc& to, const Acc& x) {
            to.bytes_out += x.bytes_out;
            to.bytes_in += x.bytes_in;
            to.packets_out += x.packets_out;
            to.packets_in += x.packets_in;
            to.opened += x.opened;
            to.failed += x.failed;
            to.retransmits += x.retransmits;
            to.requests += x.requests;
            to.errors += x.errors;
            if (to.l7_protocol.empty()) to.l7_protocol = x.l7_protocol;
            to.rtt_ms.insert(to.rtt_ms.end(), x.rtt_ms.begin(), x.rtt_ms.end());
        };
        merge(ed.a, a);
        if (a.requests) merge(services["service/" + server + ":" + std::to_string(port)], a);
        failed += a.failed;

        const double bytes = static_cast<double>(a.bytes_out + a.bytes_in);
        if (loopback(std::get<0>(k)) || loopback(std::get<1>(k))) continue;
        auto& ce = entities[client];
        if (a.opened || a.bytes_out || a.bytes_in) ce.used.insert(port);
        ce.peers.insert(server);
        ce.proto[t + "/" + std::to_string(port)] += bytes;
        if (!a.l7_protocol.empty()) ce.proto[a.l7_protocol] += bytes;
        ce.b.bytes_out += static_cast<double>(a.bytes_out);
        ce.b.bytes_in += static_cast<double>(a.bytes_in);
        ce.b.connections += a.opened;
        ce.b.failed_connections += a.failed;
        ce.weight += bytes;
        auto& se = entities[server];
        // a server port counts as served once it answered (bytes back, or a connection opened)
        if (a.bytes_in || (a.opened > a.failed)) se.served.insert(port);
        se.peers.insert(client);
        se.proto[t + "/" + std::to_string(port)] += bytes;
        if (!a.l7_protocol.empty()) se.proto[a.l7_protocol] += bytes;
        se.b.bytes_out += static_cast<double>(a.bytes_in);
        se.b.bytes_in += static_cast<double>(a.bytes_out);
        se.weight += bytes;
    }
    pts.push_back({"node/connections_failed_rate", static_cast<double>(failed) / secs});

    auto busiest = [](auto& m, std::size_t n) {
        using It = decltype(m.begin());
        std::vector<It> v;
        for (auto it = m.begin(); it != m.end(); ++it) v.push_back(it);
        std::sort(v.begin(), v.end(), [](It x, It y) {
            auto b = [](const auto& e) -> std::uint64_t {
                if constexpr (requires { e.second.a; })
                    return e.second.a.bytes_out + e.second.a.bytes_in;
                else
                    return e.second.requests;
            };
            if (b(*x) != b(*y)) return b(*x) > b(*y);
            return x->first < y->first;
        });
        if (v.size() > n) v.resize(n);
        return v;
    };
    for (auto it : busiest(edges, opts.max_edges)) {
        const Acc& a = it->second.a;
        const std::string& p = it->first;
        pts.push_back({p + "/bytes_rate", static_cast<double>(a.bytes_out + a.bytes_in) / secs});
        pts.push_back({p + "/failed_rate", static_cast<double>(a.failed) / secs});
        if (a.packets_out + a.packets_in)
            pts.push_back({p + "/loss_ratio", static_cast<double>(a.retransmits) /
                                                  static_cast<double>(a.packets_out + a.packets_in)});
        if (!a.rtt_ms.empty()) pts.push_back({p + "/rtt_ms", median(a.rtt_ms)});
    }
    for (auto it : busiest(services, opts.max_services)) {
        const Acc& a = it->second;
        pts.push_back({it->first + "/requests_rate", static_cast<double>(a.requests) / secs});
        pts.push_back({it->first + "/error_ratio", static_cast<double>(a.errors) / static_cast<double>(a.requests)});
    }
    std::sort(pts.begin(), pts.end(), [](const SeriesPoint& a, const SeriesPoint& b) { return a.key < b.key; });

    for (const auto& [ip, names] : dns) {
        auto e = entity_of_ip.find(ip);
        const std::string id = e != entity_of_ip.end() ? e->second : util::formatAddr(ip);
        auto& ent = entities[id];
        ent.b.dns_names.insert(ent.b.dns_names.end(), names.begin(), names.end());
    }
    std::vector<std::pair<double, std::string>> order;
    for (const auto& [id, e] : entities) order.emplace_back(-e.weight, id);
    std::sort(order.begin(), order.end());
    if (order.size() > opts.max_entities) order.resize(opts.max_entities);
    for (const auto& [_, id] : order) {
        auto& e = entities[id];
        e.b.ports_served.assign(e.served.begin(), e.served.end());
        e.b.ports_used.assign(e.used.begin(), e.used.end());
        e.b.peers.assign(e.peers.begin(), e.peers.end());
        e.b.protocol_bytes.assign(e.proto.begin(), e.proto.end());
        v->behaviour.push_back({id, std::move(e.b)});
    }
    std::sort(v->behaviour.begin(), v->behaviour.end(),
              [](const BehaviourInput& a, const BehaviourInput& b) { return a.entity < b.entity; });

    iface_acc.clear();
    netstat_acc.clear();
    acc.clear();
    ends.clear();
    dns.clear();
    covered = 0;
    return v;
}

}  // namespace netprobe::analysis
