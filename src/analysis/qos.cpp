#include <netprobe/analysis/qos.hpp>

#include <netprobe/analysis/topology.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <tuple>
#include <unordered_map>

namespace netprobe::analysis {
namespace {

struct Key {
    util::Addr16 client{}, server{};
    std::uint16_t port = 0;
    auto operator<=>(const Key&) const = default;
};

util::Addr16 addrOf(const np_addr& a) {
    util::Addr16 out{};
    std::memcpy(out.data(), &a, 16);
    return out;
}

std::uint32_t toUs(std::uint64_t ns) {
    const std::uint64_t us = (ns + 500) / 1000;
    return us > 0xfffffffeull ? 0xfffffffeu : static_cast<std::uint32_t>(us);
}

}  // namespace

struct Qos::State {
    QosOptions opts;
    std::map<Key, std::shared_ptr<QosConversation>> convs;
    std::map<QosEdgeKey, QosEdgeSeries> edges;  // with their own series, and kOtherEdge
    std::uint64_t total = 0, duplicate = 0, overflow = 0;

    // The metric edge of a new conversation: its ends as the topology knows them (the
    // handshake's packets were counted in this run's flow samples, so the conversation is
    // there unless the topology's budget was spent), else by address.
    QosEdgeKey edgeOf(const Key& k, const std::map<TcpConversationKey, const Conversation*>& topo) const {
        QosEdgeKey e;
        auto t = topo.find(TcpConversationKey{k.client, k.server, k.port});
        if (t != topo.end()) {
            e.client = qosNodeOf(t->second->client);
            e.server = qosNodeOf(t->second->server);
        } else {
            e.client = util::formatAddr(k.client);
            e.server = util::formatAddr(k.server);
        }
        e.port = k.port;
        return admit(std::move(e));
    }
    // The edge itself when it has a series or the budget has room, else kOtherEdge.
    QosEdgeKey admit(QosEdgeKey e) const {
        if (edges.contains(e)) return e;
        const std::size_t own = edges.size() - (edges.contains(kOtherEdge) ? 1 : 0);
        return own < opts.max_edges ? e : kOtherEdge;
    }
};

std::string qosNodeOf(const TopologyEnd& e) {
    if (!e.workload.empty()) return e.ns + "/" + e.workload;
    if (!e.pod.empty()) return e.ns + "/" + e.pod;
    return util::formatAddr(e.ip);
}

Qos::Qos(QosOptions options) : s_(std::make_unique<State>()) {
    s_->opts = options;
    if (s_->opts.max_samples == 0) s_->opts.max_samples = 1;
}

Qos::~Qos() = default;

void Qos::run(const collector::Snapshot& snap, Views& views) {
    State& s = *s_;
    const std::uint64_t now_ns = snap.monoNs();

    // One sample per connection (5-tuple): the largest round trip among the interfaces
    // that timed it, in the order the ring delivered them.
    struct Pick {
        const ebpf::HandshakeSample* h;
        std::size_t order;
    };
    std::map<std::tuple<util::Addr16, util::Addr16, std::uint16_t, std::uint16_t>, Pick> picked;
    for (std::size_t i = 0; i < snap.handshakes.size(); ++i) {
        const auto& h = snap.handshakes[i];
        auto k = std::tuple{addrOf(h.key.src_ip), addrOf(h.key.dst_ip), h.key.src_port, h.key.dst_port};
        auto [it, fresh] = picked.try_emplace(k, Pick{&h, i});
        if (fresh) continue;
        ++s.duplicate;
        if (h.server_ns + h.client_ns > it->second.h->server_ns + it->second.h->client_ns) it->second.h = &h;
    }
    std::vector<Pick> ordered;
    ordered.reserve(picked.size());
    for (const auto& [_, p] : picked) ordered.push_back(p);
    std::sort(ordered.begin(), ordered.end(), [](const Pick& a, const Pick& b) { return a.order < b.order; });

    // The topology's TCP conversations by key, built only when a new conversation needs
    // its edge.
    std::map<TcpConversationKey, const Conversation*> topo;
    bool topo_built = false;
    auto topology = [&]() -> const std::map<TcpConversationKey, const Conversation*>& {
        if (!topo_built && views.topology) topo = tcpConversations(*views.topology);
        topo_built = true;
        return topo;
    };

    for (const auto& p : ordered) {
        const auto& h = *p.h;
        ++s.total;
        Key k{addrOf(h.key.src_ip), addrOf(h.key.dst_ip), h.key.dst_port};
        auto it = s.convs.find(k);
        if (it == s.convs.end()) {
            if (s.convs.size() >= s.opts.max_conversations) {
                ++s.overflow;
                continue;
            }
            auto c = std::make_shared<QosConversation>();
            c->client = k.client;
            c->server = k.server;
            c->port = k.port;
            c->family = h.key.family;
            c->edge = s.edgeOf(k, topology());
            it = s.convs.emplace(k, std::move(c)).first;
        } else if (it->second.use_count() > 1) {  // published: copy on write
            it->second = std::make_shared<QosConversation>(*it->second);
        }
        QosConversation& c = *it->second;
        RttSample r;
        r.mono_ns = now_ns;
        r.server_us = toUs(h.server_ns);
        r.client_us = toUs(h.client_ns);
        if (c.samples.empty()) {
            r.delta_us = RttSample::kNoDelta;
        } else {
            const auto prev = static_cast<std::int64_t>(c.samples.back().rttUs());
            const auto cur = static_cast<std::int64_t>(r.rttUs());
            r.delta_us = static_cast<std::uint32_t>(std::min<std::int64_t>(std::llabs(cur - prev), 0xfffffffe));
        }
        if (c.samples.size() >= s.opts.max_samples) c.samples.erase(c.samples.begin());
        c.samples.push_back(r);

        if (!s.edges.contains(c.edge)) c.edge = s.admit(c.edge);  // its series had ended
        auto& e = s.edges[c.edge];
        e.key = c.edge;
        const double secs = static_cast<double>(r.rttUs()) / 1e6;
        std::size_t b = 0;
        while (b < kRttBuckets.size() && secs > kRttBuckets[b]) ++b;
        ++e.buckets[b];
        ++e.count;
        e.sum_seconds += secs;
        e.last_ns = now_ns;
    }

    // Samples older than the window leave; conversations without any are forgotten.
    const std::uint64_t window_ns = static_cast<std::uint64_t>(s.opts.window.count()) * 1'000'000'000ull;
    const std::uint64_t oldest = now_ns > window_ns ? now_ns - window_ns : 0;
    for (auto it = s.convs.begin(); it != s.convs.end();) {
        const auto& samples = it->second->samples;
        if (samples.empty() || samples.back().mono_ns < oldest) {
            it = s.convs.erase(it);
            continue;
        }
        if (samples.front().mono_ns < oldest) {
            if (it->second.use_count() > 1) it->second = std::make_shared<QosConversation>(*it->second);
            auto& v = it->second->samples;
            v.erase(v.begin(), std::find_if(v.begin(), v.end(), [&](const RttSample& r) { return r.mono_ns >= oldest; }));
        }
        ++it;
    }

    std::erase_if(s.edges, [&](const auto& e) { return e.second.last_ns < oldest; });

    auto v = std::make_shared<QosView>();
    v->window = s.opts.window;
    v->now_ns = now_ns;
    v->handshakes_total = s.total;
    v->handshakes_duplicate = s.duplicate;
    v->overflow = s.overflow;
    v->conversations.reserve(s.convs.size());
    for (const auto& [_, c] : s.convs) v->conversations.push_back(c);
    v->edges.reserve(s.edges.size());
    for (const auto& [k, e] : s.edges)
        if (k != kOtherEdge) v->edges.push_back(e);
    if (auto o = s.edges.find(kOtherEdge); o != s.edges.end()) v->edges.push_back(o->second);

    if (snap.stack)
        for (const auto& d : snap.stack->drops) v->drop_reason_names[d.reason] = d.name;
    // UDP flows' jitter as the kernel keeps it (the last reading is the figure).
    v->udp_flows.reserve(snap.udp_timings.size());
    for (const auto& u : snap.udp_timings) {
        const auto& t = u.timing;
        if (t.samples < 2) continue;
        UdpFlowJitter j;
        j.key = u.key;
        j.jitter_seconds = static_cast<double>(t.jitter16_ns) / 16 / 1e9;
        j.mean_deviation_seconds = static_cast<double>(t.dev_sum_ns) / t.samples / 1e9;
        j.interarrival_seconds = t.intervals ? static_cast<double>(t.last_ns - t.first_ns) / t.intervals / 1e9 : 0;
        j.samples = t.samples;
        j.last_ns = t.last_ns;
        v->udp_flows.push_back(j);
    }
    std::sort(v->udp_flows.begin(), v->udp_flows.end(),
              [](const UdpFlowJitter& a, const UdpFlowJitter& b) { return flowKeyLess(a.key, b.key); });
    views.qos = std::move(v);
}

bool flowKeyLess(const flow_key& a, const flow_key& b) { return std::memcmp(&a, &b, sizeof a) < 0; }

const UdpFlowJitter* QosView::udpJitter(const flow_key& key) const {
    auto it = std::lower_bound(udp_flows.begin(), udp_flows.end(), key,
                               [](const UdpFlowJitter& j, const flow_key& k) { return flowKeyLess(j.key, k); });
    return it != udp_flows.end() && std::memcmp(&it->key, &key, sizeof key) == 0 ? &*it : nullptr;
}

double quantileOf(std::vector<double>& values, double q) {
    if (values.empty()) return 0;
    std::sort(values.begin(), values.end());
    const double pos = std::clamp(q, 0.0, 1.0) * static_cast<double>(values.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const auto hi = std::min(lo + 1, values.size() - 1);
    return values[lo] + (values[hi] - values[lo]) * (pos - static_cast<double>(lo));
}

}  // namespace netprobe::analysis
