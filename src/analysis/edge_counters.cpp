// The topology's edges as monotonic counters (see edge_counters.hpp).
#include <netprobe/analysis/edge_counters.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <tuple>

#include <netprobe/analysis/topology.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis {

void EdgeCounts::add(const EdgeCounts& o) {
    bytes_to_server += o.bytes_to_server;
    bytes_to_client += o.bytes_to_client;
    packets_to_server += o.packets_to_server;
    packets_to_client += o.packets_to_client;
    connections += o.connections;
    connections_failed += o.connections_failed;
    retransmits += o.retransmits;
    requests += o.requests;
    request_errors += o.request_errors;
}

bool EdgeCounts::empty() const {
    return bytes_to_server + bytes_to_client + packets_to_server + packets_to_client + connections +
               connections_failed + retransmits + requests + request_errors ==
           0;
}

namespace {

using ConvKey = std::tuple<util::Addr16, util::Addr16, std::uint16_t, std::uint8_t>;  // client, server, port, proto

EdgeCounts figures(const TopologySlot& sl) {
    EdgeCounts f;
    f.bytes_to_server = sl.bytes_out;
    f.bytes_to_client = sl.bytes_in;
    f.packets_to_server = sl.packets_out;
    f.packets_to_client = sl.packets_in;
    f.connections = sl.opened;
    f.connections_failed = sl.failed;
    f.retransmits = sl.retransmits;
    // the server's end when it was captured (both ends on the node: the same requests twice)
    const TopologyL7* l = sl.l7_server && sl.l7_server->requests ? sl.l7_server.get() : sl.l7_client.get();
    if (l) {
        f.requests = l->requests;
        f.request_errors = l->errors;
    }
    return f;
}

// a - b, field by field, never below zero
EdgeCounts minus(const EdgeCounts& a, const EdgeCounts& b) {
    auto d = [](std::uint64_t x, std::uint64_t y) { return x > y ? x - y : 0; };
    return {d(a.bytes_to_server, b.bytes_to_server), d(a.bytes_to_client, b.bytes_to_client),
            d(a.packets_to_server, b.packets_to_server), d(a.packets_to_client, b.packets_to_client),
            d(a.connections, b.connections), d(a.connections_failed, b.connections_failed),
            d(a.retransmits, b.retransmits), d(a.requests, b.requests), d(a.request_errors, b.request_errors)};
}

EdgeCounts swapped(EdgeCounts f) {
    std::swap(f.bytes_to_server, f.bytes_to_client);
    std::swap(f.packets_to_server, f.packets_to_client);
    return f;
}

}  // namespace

struct EdgeCounters::State {
    EdgeCounterOptions opts;
    // What was counted of each conversation: its newest slot then and that slot's figures.
    struct Counted {
        std::shared_ptr<const Conversation> seen;  // unchanged (copy-on-write): nothing new
        std::int64_t slot = std::numeric_limits<std::int64_t>::min();
        EdgeCounts at_slot;
    };
    std::map<ConvKey, Counted> convs;
    struct Edge {
        EdgeCounts own;      // counted while chosen
        EdgeCounts pending;  // grown before it was established (not exported)
        double score = 0;
        std::chrono::steady_clock::time_point first_growth{}, last_growth{};
        unsigned updates = 0;      // updates it grew in
        std::uint64_t bytes = 0;   // everything it carried
        bool established = false;
        bool chosen = false;
    };
    std::map<EdgeCounterKey, Edge> edges;
    EdgeCounts other;
    std::uint64_t untracked = 0;
    std::chrono::steady_clock::time_point last{};

    std::string nodeId(const TopologyEnd& e) const {
        if (opts.workloads && !e.workload.empty()) return e.ns + "/" + e.workload;
        return util::formatAddr(e.ip);
    }
};

EdgeCounters::EdgeCounters(EdgeCounterOptions options) : s_(std::make_unique<State>()) {
    s_->opts = options;
    if (s_->opts.half_life.count() <= 0) s_->opts.half_life = std::chrono::seconds(300);
    auto v = std::make_shared<EdgeCounterView>();
    v->grain = options.workloads ? "workload" : "host";
    published_ = std::move(v);
}

EdgeCounters::~EdgeCounters() = default;

std::shared_ptr<const EdgeCounterView> EdgeCounters::latest() const {
    std::lock_guard lock(mu_);
    return published_;
}

void EdgeCounters::update(const TopologyView& view, std::chrono::steady_clock::time_point now) {
    auto& s = *s_;
    // 1. each conversation's growth since the previous view, by edge
    std::map<ConvKey, State::Counted> next;
    std::vector<std::shared_ptr<const Conversation>> fresh;  // not counted before
    std::map<EdgeCounterKey, EdgeCounts> growth;
    auto count = [&](const std::shared_ptr<const Conversation>& cp, State::Counted from) {
        const Conversation& c = *cp;
        State::Counted to{cp, from.slot, from.at_slot};
        if (from.seen != cp && !c.slots.empty()) {
            EdgeCounts g;
            for (const auto& sl : c.slots) {
                if (sl.id > from.slot) g.add(figures(sl));
                else if (sl.id == from.slot) g.add(minus(figures(sl), from.at_slot));
            }
            to.slot = c.slots.back().id;
            to.at_slot = figures(c.slots.back());
            if (!g.empty()) {
                auto& e = growth[EdgeCounterKey{s.nodeId(c.client), s.nodeId(c.server), c.port, c.ip_proto}];
                e.add(g);
            }
        }
        next.emplace(ConvKey{c.client.ip, c.server.ip, c.port, c.ip_proto}, std::move(to));
    };
    for (const auto& cp : view.conversations) {
        auto it = s.convs.find(ConvKey{cp->client.ip, cp->server.ip, cp->port, cp->ip_proto});
        if (it == s.convs.end()) {
            fresh.push_back(cp);
            continue;
        }
        count(cp, std::move(it->second));
        s.convs.erase(it);
    }
    // What is left of the previous ones is gone: forgotten, or moved to the other
    // orientation (a socket or an L7 request corrected a guess). A new conversation with
    // the ends of a gone one swapped starts from what the gone one counted.
    std::multimap<std::tuple<util::Addr16, util::Addr16, std::uint8_t>, State::Counted*> gone;
    for (auto& [k, c] : s.convs) gone.emplace(std::tuple{std::get<1>(k), std::get<0>(k), std::get<3>(k)}, &c);
    for (const auto& cp : fresh) {
        auto it = gone.find(std::tuple{cp->client.ip, cp->server.ip, cp->ip_proto});
        State::Counted from;
        if (it != gone.end()) {
            from.slot = it->second->slot;
            from.at_slot = swapped(it->second->at_slot);
            gone.erase(it);
        }
        count(cp, from);
    }
    s.convs = std::move(next);

    // 2. ranking: decayed bytes
    const double dt = s.last == std::chrono::steady_clock::time_point{}
                          ? 0.0
                          : std::chrono::duration<double>(now - s.last).count();
    s.last = now;
    const double decay = std::pow(0.5, std::max(dt, 0.0) / static_cast<double>(s.opts.half_life.count()));
    for (auto& [_, e] : s.edges) e.score *= decay;
    std::vector<std::pair<State::Edge*, const EdgeCounts*>> grown;
    for (const auto& [k, g] : growth) {
        auto it = s.edges.find(k);
        if (it == s.edges.end()) {
            if (s.edges.size() >= s.opts.max_edges) {
                s.other.add(g);
                ++s.untracked;
                continue;
            }
            it = s.edges.emplace(k, State::Edge{}).first;
        }
        auto& e = it->second;
        const std::uint64_t bytes = g.bytes_to_server + g.bytes_to_client;
        e.score += static_cast<double>(bytes) + 1;  // +1: a packetless edge ranks too
        if (e.updates == 0) e.first_growth = now;
        e.last_growth = now;
        ++e.updates;
        e.bytes += bytes;
        if ((e.updates >= s.opts.min_updates && now - e.first_growth >= s.opts.min_span) || e.bytes >= s.opts.min_bytes)
            e.established = true;
        grown.emplace_back(&e, &g);
    }
    // forget quiet edges (what one that never got established carried: to other)
    std::erase_if(s.edges, [&](auto& kv) {
        if (now - kv.second.last_growth <= s.opts.forget_after) return false;
        s.other.add(kv.second.pending);
        return true;
    });
    // 3. choose the busiest established edges, then count this growth where it belongs
    std::vector<std::pair<const EdgeCounterKey*, State::Edge*>> order;
    order.reserve(s.edges.size());
    std::size_t pending = 0;
    for (auto& [k, e] : s.edges) {
        e.chosen = false;
        if (e.established) order.emplace_back(&k, &e);
        else ++pending;
    }
    const std::size_t n = std::min(order.size(), s.opts.series);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                      [](const auto& a, const auto& b) {
                          if (a.second->score != b.second->score) return a.second->score > b.second->score;
                          return *a.first < *b.first;
                      });
    for (std::size_t i = 0; i < n; ++i) order[i].second->chosen = true;
    for (auto [e, g] : grown) {
        if (e->chosen) {
            e->own.add(e->pending);
            e->pending = {};
            e->own.add(*g);
        } else if (!e->established) {
            e->pending.add(*g);
        } else {
            s.other.add(e->pending);  // established but not among the busiest
            e->pending = {};
            s.other.add(*g);
        }
    }

    auto v = std::make_shared<EdgeCounterView>();
    v->grain = s.opts.workloads ? "workload" : "host";
    for (const auto& [k, e] : s.edges)
        if (e.chosen && !e.own.empty()) v->edges.emplace_back(k, e.own);
    v->other = s.other;
    v->tracked = s.edges.size();
    v->pending = pending;
    v->untracked = s.untracked;
    std::lock_guard lock(mu_);
    published_ = std::move(v);
}

}  // namespace netprobe::analysis
