#include "netprobe/analysis/talkers.hpp"

#include <netinet/in.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/util/hash.hpp>

namespace netprobe::analysis {

namespace {

using util::hashAddr;

bool hasPorts(const flow_key& k) {
    return (k.proto == IPPROTO_TCP || k.proto == IPPROTO_UDP) && (k.src_port != 0 || k.dst_port != 0);
}

}  // namespace

const char* toString(ServerSide s) {
    switch (s) {
        case ServerSide::Local: return "local";
        case ServerSide::Peer: return "peer";
        case ServerSide::None: break;
    }
    return "";
}

std::size_t TalkerKeyHash::operator()(const TalkerKey& k) const noexcept {
    std::size_t h = hashAddr(hashAddr(0, k.local), k.peer);
    return util::mix64(h, (std::uint64_t{k.ifindex} << 32) | (std::uint64_t{k.server_port} << 16) |
                      (std::uint64_t{k.direction} << 12) | (std::uint64_t{static_cast<std::uint8_t>(k.server)} << 8) |
                      k.proto);
}

std::size_t ServerEndpoints::EndpointHash::operator()(const Endpoint& e) const noexcept {
    return util::mix64(hashAddr(0, e.addr), (std::uint64_t{e.port} << 8) | e.proto);
}

void ServerEndpoints::learn(std::span<const ebpf::Connection> connections, std::uint64_t now_ns) {
    if (max_learned_ == 0) return;
    for (const auto& c : connections) {
        Endpoint e;
        e.proto = IPPROTO_TCP;
        if (c.origin == NP_CONN_ACTIVE) {  // connect(): the remote end serves
            e.addr = c.dst_ip;
            e.port = c.dst_port;
        } else if (c.origin == NP_CONN_PASSIVE) {  // accepted: the local end is a listening socket's
            e.addr = c.src_ip;
            e.port = c.src_port;
        } else {
            continue;
        }
        if (e.port == 0) continue;
        learned_[e] = now_ns;
    }
    if (learned_.size() <= max_learned_) return;
    // Over the bound: forget the least recently confirmed, down to 3/4 of it (so the
    // sort runs once per max/4 new endpoints, not at every one).
    std::vector<std::pair<std::uint64_t, Endpoint>> by_age;
    by_age.reserve(learned_.size());
    for (const auto& [e, t] : learned_) by_age.emplace_back(t, e);
    const std::size_t keep = max_learned_ - max_learned_ / 4;
    std::nth_element(by_age.begin(), by_age.begin() + static_cast<std::ptrdiff_t>(by_age.size() - keep), by_age.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    for (std::size_t i = 0; i < by_age.size() - keep; ++i) learned_.erase(by_age[i].second);
}

bool ServerEndpoints::isServer(const util::Addr16& addr, std::uint16_t port, std::uint8_t proto) const {
    if (learned_.empty()) return false;
    return learned_.contains(Endpoint{addr, port, proto});
}

TalkerKey ServerEndpoints::talkerOf(const flow_key& k) const {
    TalkerKey t;
    const auto src = std::bit_cast<util::Addr16>(k.src_ip);
    const auto dst = std::bit_cast<util::Addr16>(k.dst_ip);
    const bool egress = k.direction == NP_DIR_EGRESS;
    t.local = egress ? src : dst;
    t.peer = egress ? dst : src;
    t.ifindex = k.ifindex;
    t.direction = k.direction;
    t.proto = k.proto;
    if (!hasPorts(k)) return t;  // ICMP, GRE, ...: no server port
    const std::uint16_t local_port = egress ? k.src_port : k.dst_port;
    const std::uint16_t peer_port = egress ? k.dst_port : k.src_port;
    const bool local_serves = isServer(t.local, local_port, k.proto);
    const bool peer_serves = isServer(t.peer, peer_port, k.proto);
    bool local_is_server;
    // a kernel aggregate of connection attempts or refusals: the end with port 0 initiated
    const int aggregate = np_flow_aggregate_initiator(k.proto, k.src_port, k.dst_port);
    if (aggregate != 0) local_is_server = (aggregate > 0) != egress;
    else if (local_serves != peer_serves) local_is_server = local_serves;
    else if (local_port != peer_port) local_is_server = local_port < peer_port;
    else local_is_server = t.local <= t.peer;
    t.server = local_is_server ? ServerSide::Local : ServerSide::Peer;
    t.server_port = local_is_server ? local_port : peer_port;
    return t;
}

std::vector<TalkerTraffic> talkerTraffic(std::span<const collector::FlowSample> samples,
                                         const ServerEndpoints& servers) {
    // Open addressing over the output (one slot array of indices, load <= 1/2): a
    // scan from as many addresses as there are flows makes as many talkers, and
    // node-based maps would cost twice the memory of the talkers themselves.
    std::vector<TalkerTraffic> out;
    std::vector<std::uint32_t> slots(64, 0);  // index + 1; 0 = empty
    TalkerKeyHash hash;
    auto place = [&slots, &hash](const TalkerKey& k) {
        const std::size_t mask = slots.size() - 1;
        for (std::size_t i = hash(k) & mask;; i = (i + 1) & mask)
            if (slots[i] == 0) return i;
    };
    for (const auto& s : samples) {
        if (s.packets == 0) continue;
        const TalkerKey k = servers.talkerOf(s.key);
        const std::size_t mask = slots.size() - 1;
        std::size_t i = hash(k) & mask;
        while (slots[i] != 0 && out[slots[i] - 1].key != k) i = (i + 1) & mask;
        std::size_t at;
        if (slots[i] != 0) {
            at = slots[i] - 1;
        } else {
            at = out.size();
            out.push_back({k, 0, 0});
            slots[i] = static_cast<std::uint32_t>(at + 1);
            if (out.size() * 2 > slots.size()) {  // grow: rehash every talker
                std::vector<std::uint32_t>(slots.size() * 2, 0).swap(slots);
                for (std::size_t n = 0; n < out.size(); ++n) slots[place(out[n].key)] = static_cast<std::uint32_t>(n + 1);
            }
        }
        out[at].packets += s.packets;
        out[at].bytes += s.bytes;
    }
    return out;
}

TalkerSelection TalkerSelector::update(std::span<const TalkerTraffic> traffic, std::chrono::nanoseconds now,
                                       double seconds) {
    TalkerSelection sel;
    sel.talkers = traffic.size();
    std::uint64_t total_p = 0, total_b = 0;
    for (const auto& t : traffic) {
        total_p += t.packets;
        total_b += t.bytes;
    }
    // The first collection covers no known time (seconds 0): its talkers get no rate,
    // their average starts with the next interval.
    const bool timed = seconds > 0;
    auto rate = [seconds](std::uint64_t bytes) { return static_cast<double>(bytes) / seconds; };
    // Weight of this interval in the members' averages (time constant: the hold).
    const double tau = std::chrono::duration<double>(o_.hold).count();
    const double alpha = tau > 0 && timed ? 1.0 - std::exp(-seconds / tau) : 1.0;

    if (o_.k == 0) {
        members_.clear();
        sel.other_packets = total_p;
        sel.other_bytes = total_b;
        return sel;
    }

    // The members' traffic this interval (an index of the members only: there may be
    // as many talkers as flows).
    std::unordered_map<TalkerKey, std::size_t, TalkerKeyHash> index;
    index.reserve(members_.size());
    for (std::size_t i = 0; i < members_.size(); ++i) {
        auto& m = members_[i];
        m.packets = m.bytes = 0;
        index.emplace(m.key, i);
    }
    std::vector<bool> taken(traffic.size(), false);
    for (std::size_t i = 0; i < traffic.size() && !index.empty(); ++i) {
        auto it = index.find(traffic[i].key);
        if (it == index.end()) continue;
        taken[i] = true;
        auto& m = members_[it->second];
        m.packets += traffic[i].packets;
        m.bytes += traffic[i].bytes;
    }
    for (auto& m : members_) {
        if (m.packets > 0) m.last_active = now;
        if (!timed) continue;
        m.avg_rate = m.rated ? m.avg_rate + alpha * (rate(m.bytes) - m.avg_rate) : rate(m.bytes);
        m.rated = true;
    }
    auto held = [&](const Member& m) { return now - m.since < o_.hold; };
    // Past their hold and idle for a hold: dropped (the series ends).
    std::erase_if(members_,
                  [&](const Member& m) { return !held(m) && m.packets == 0 && now - m.last_active >= o_.hold; });
    if (members_.size() > o_.k) {  // k shrank (not in the agent, where k is fixed): keep the heaviest
        std::stable_sort(members_.begin(), members_.end(),
                         [](const Member& a, const Member& b) { return a.avg_rate > b.avg_rate; });
        members_.resize(o_.k);
    }

    // Challengers, heaviest first (then by key: deterministic); only the k heaviest can
    // take a place (free slots + evictable members <= k).
    std::vector<std::uint32_t> challengers;
    for (std::size_t i = 0; i < traffic.size(); ++i)
        if (!taken[i] && traffic[i].packets > 0) challengers.push_back(static_cast<std::uint32_t>(i));
    const auto heavier = [&](std::uint32_t a, std::uint32_t b) {
        if (traffic[a].bytes != traffic[b].bytes) return traffic[a].bytes > traffic[b].bytes;
        return traffic[a].key < traffic[b].key;
    };
    const std::size_t wanted = std::min(challengers.size(), o_.k);
    std::partial_sort(challengers.begin(), challengers.begin() + static_cast<std::ptrdiff_t>(wanted), challengers.end(),
                      heavier);
    challengers.resize(wanted);
    std::size_t next = 0;
    auto enter = [&](const TalkerTraffic& t) {
        ++sel.entered;
        return Member{t.key, now, now, timed ? rate(t.bytes) : 0.0, timed, t.packets, t.bytes};
    };
    // Members past their hold, weakest average first.
    std::vector<std::size_t> evictable;
    for (std::size_t i = 0; i < members_.size(); ++i)
        if (!held(members_[i])) evictable.push_back(i);
    std::sort(evictable.begin(), evictable.end(), [&](std::size_t a, std::size_t b) {
        const auto &x = members_[a], &y = members_[b];
        if (x.avg_rate != y.avg_rate) return x.avg_rate < y.avg_rate;
        if (x.since != y.since) return x.since < y.since;
        return x.key < y.key;
    });
    // Free slots first (heaviest challengers first): a challenger that fits without
    // replacing anyone takes no member's place. Then the next challengers against the
    // evictable members.
    while (members_.size() < o_.k && next < challengers.size()) members_.push_back(enter(traffic[challengers[next++]]));
    for (std::size_t e : evictable) {
        if (next >= challengers.size()) break;
        const auto& c = traffic[challengers[next]];
        // The heaviest challenger left cannot beat the weakest member left: none can.
        if (!timed || !(rate(c.bytes) > o_.margin * members_[e].avg_rate)) break;
        members_[e] = enter(c);
        ++next;
    }
    entered_total_ += sel.entered;

    std::uint64_t top_p = 0, top_b = 0;
    sel.top.reserve(members_.size());
    for (const auto& m : members_) {
        sel.top.push_back({m.key, m.packets, m.bytes});
        top_p += m.packets;
        top_b += m.bytes;
    }
    std::sort(sel.top.begin(), sel.top.end(), [](const TalkerTraffic& a, const TalkerTraffic& b) {
        if (a.bytes != b.bytes) return a.bytes > b.bytes;
        return a.key < b.key;
    });
    sel.other_packets = total_p - top_p;
    sel.other_bytes = total_b - top_b;
    return sel;
}

void TopTalkers::run(const collector::Snapshot& s, Views& views) {
    const std::uint64_t now_ns = s.monoNs();
    if (s.stack) servers_.learn(s.stack->connections, now_ns);
    const auto traffic = talkerTraffic(s.flows, servers_);
    auto sel = selector_.update(traffic, std::chrono::nanoseconds(now_ns), s.interval_seconds);

    auto v = std::make_shared<TalkerView>();
    v->other_packets = sel.other_packets;
    v->other_bytes = sel.other_bytes;
    v->talkers = sel.talkers;
    v->entered_total = selector_.enteredTotal();
    v->k = options_.selector.k;
    v->hold = options_.selector.hold;
    v->top.reserve(sel.top.size());
    for (const auto& t : sel.top) {
        std::string name;
        if (views.flows) {
            name = views.flows->interfaceName(t.key.ifindex);
        } else {
            auto it = std::find_if(s.interfaces.begin(), s.interfaces.end(),
                                   [&](const auto& i) { return i.index == t.key.ifindex; });
            name = it != s.interfaces.end() ? it->name : std::to_string(t.key.ifindex);
        }
        v->top.push_back({t, std::move(name)});
    }
    views.talkers = std::move(v);
}

}  // namespace netprobe::analysis
