#include "netprobe/analysis/flow_export.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include <netinet/in.h>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
#include <netprobe/analysis/l7/stage.hpp>
#include <netprobe/analysis/policy.hpp>
#include <netprobe/ebpf/types.hpp>

namespace netprobe::analysis {

namespace {

constexpr std::uint8_t kFin = 0x01, kRst = 0x04;

util::Addr16 addrOf(const np_addr& a) { return std::bit_cast<util::Addr16>(a); }

std::int64_t epochMs(const collector::Snapshot& s, std::uint64_t mono_ns) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(s.wallOf(mono_ns).time_since_epoch()).count();
}

}  // namespace

std::string_view toString(FlowEndReason r) {
    switch (r) {
        case FlowEndReason::IdleTimeout: return "idle_timeout";
        case FlowEndReason::ActiveTimeout: return "active_timeout";
        case FlowEndReason::EndOfFlow: return "end_of_flow";
        case FlowEndReason::ForcedEnd: return "forced_end";
        case FlowEndReason::LackOfResources: return "lack_of_resources";
    }
    return "unknown";
}

std::string_view toString(L7Side s) {
    switch (s) {
        case L7Side::None: return "";
        case L7Side::Server: return "server";
        case L7Side::Client: return "client";
    }
    return "";
}

std::string_view toString(FlowPolicyVerdict v) {
    switch (v) {
        case FlowPolicyVerdict::None: return "";
        case FlowPolicyVerdict::Allowed: return "allowed";
        case FlowPolicyVerdict::Denied: return "denied";
    }
    return "";
}

std::size_t FlowExport::TupleHash::operator()(const Tuple& t) const noexcept {
    std::uint64_t h = 1469598103934665603ull;  // FNV-1a
    auto mix = [&](const void* p, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    mix(t.a.data(), 16);
    mix(t.b.data(), 16);
    mix(&t.pa, 2);
    mix(&t.pb, 2);
    mix(&t.proto, 1);
    return static_cast<std::size_t>(h);
}

std::size_t FlowExport::KeyHash::operator()(const Key& k) const noexcept {
    // FNV-1a over the fields (no padding bytes read).
    std::uint64_t h = 1469598103934665603ull;
    auto mix = [&](const void* p, std::size_t n) {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 1099511628211ull;
    };
    mix(k.a.data(), 16);
    mix(k.b.data(), 16);
    mix(&k.pa, 2);
    mix(&k.pb, 2);
    mix(&k.proto, 1);
    mix(&k.encap, 1);
    mix(&k.ifindex, 4);
    return static_cast<std::size_t>(h);
}

FlowExport::FlowExport(std::shared_ptr<const Attribution> attribution, FlowExportOptions options)
    : attribution_(std::move(attribution)), options_(std::move(options)) {
    health_.capacity = options_.max_flows;
}

FlowExport::Key FlowExport::keyOf(const flow_key& k) {
    Key key;
    const auto s = addrOf(k.src_ip), d = addrOf(k.dst_ip);
    const bool swap = std::tie(d, k.dst_port) < std::tie(s, k.src_port);
    key.a = swap ? d : s;
    key.b = swap ? s : d;
    key.pa = swap ? k.dst_port : k.src_port;
    key.pb = swap ? k.src_port : k.dst_port;
    key.proto = k.proto;
    key.family = k.family;
    key.encap = k.encap;
    key.ifindex = k.ifindex;
    return key;
}

FlowExport::Tuple FlowExport::tupleOf(const Key& k) {
    return Tuple{k.a, k.b, k.pa, k.pb, k.proto, k.family};
}

void FlowExport::indexAdd(const Key& k) {
    if (l7_index_on_) l7_index_.emplace(tupleOf(k), Where{k.ifindex, k.encap});
}

void FlowExport::indexRemove(const Key& k) {
    if (!l7_index_on_) return;
    auto [lo, hi] = l7_index_.equal_range(tupleOf(k));
    for (auto it = lo; it != hi; ++it)
        if (it->second.ifindex == k.ifindex && it->second.encap == k.encap) {
            l7_index_.erase(it);
            return;
        }
}

void FlowExport::forget(std::unordered_map<Key, Entry, KeyHash>::iterator it) {
    indexRemove(it->first);
    cache_.erase(it);
}

bool FlowExport::attach(const L7Request& r) {
    Tuple t = r.tuple;
    for (const std::uint8_t proto : {std::uint8_t{IPPROTO_UDP}, std::uint8_t{IPPROTO_TCP}}) {
        if (proto == IPPROTO_UDP && !r.dns) continue;  // only DNS runs over UDP
        t.proto = proto;
        auto [lo, hi] = l7_index_.equal_range(t);
        if (lo == hi) continue;
        // Several interfaces carry the connection: the lowest ifindex (then the plain
        // flow before an inner flow of tunnel packets) gets the request.
        Where best = lo->second;
        for (auto it = std::next(lo); it != hi; ++it)
            if (std::tie(it->second.ifindex, it->second.encap) < std::tie(best.ifindex, best.encap)) best = it->second;
        auto e = cache_.find(Key{t.a, t.b, t.pa, t.pb, t.proto, t.family, best.encap, best.ifindex});
        if (e == cache_.end()) continue;  // the index follows the cache: not reached
        if (!e->second.l7) e->second.l7 = std::make_unique<L7State>();
        L7State& st = *e->second.l7;
        st.protocol = r.protocol;
        st.server_seen = st.server_seen || r.server;
        L7Figures& f = st.side[r.server ? 0 : 1];
        ++f.requests;
        f.errors += r.error || r.client_error;
        f.client_errors += r.client_error;
        f.latency_sum_us += r.latency_us;
        f.latency_max_us = std::max(f.latency_max_us, r.latency_us);
        return true;
    }
    return false;
}

void FlowExport::joinL7(const collector::Snapshot& s) {
    if (!s.l7 && l7_pending_.empty()) return;
    if (!l7_index_on_) {
        // The first snapshot with L7: from now on the stage keeps its open flows by
        // connection (one index entry per flow, added and removed with the flow).
        l7_index_on_ = true;
        l7_index_.reserve(cache_.size());
        for (const auto& [k, _] : cache_) indexAdd(k);
    }
    const std::uint64_t now = s.monoNs();
    const auto timeout = static_cast<std::uint64_t>(std::max<std::int64_t>(options_.l7_pending_timeout.count(), 0));
    // The waiting ones first (they are older): their flow may have opened in this collection.
    for (std::size_t n = l7_pending_.size(); n > 0; --n) {
        L7Request r = std::move(l7_pending_.front());
        l7_pending_.pop_front();
        if (attach(r))
            ++health_.l7_requests_matched;
        else if (now >= r.since_ns + timeout)
            ++health_.l7_requests_unmatched;
        else
            l7_pending_.push_back(std::move(r));
    }
    if (s.l7) {
        for (const auto& q : s.l7->requests) {
            L7Request r;
            const bool swap = std::tie(q.server, q.server_port) < std::tie(q.client, q.client_port);
            r.tuple.a = swap ? q.server : q.client;
            r.tuple.b = swap ? q.client : q.server;
            r.tuple.pa = swap ? q.server_port : q.client_port;
            r.tuple.pb = swap ? q.client_port : q.server_port;
            r.tuple.proto = IPPROTO_TCP;
            // An IPv6 socket's IPv4 peers have v4-mapped addresses, as the flow keys do.
            r.tuple.family = util::isV4Mapped(q.client) && util::isV4Mapped(q.server) ? 4 : 6;
            r.dns = q.protocol == "dns";
            r.server = q.side == netprobe::l7::Side::Server;
            r.error = l7::isError(q);
            r.client_error = l7::isClientError(q);
            const double us = q.duration_seconds * 1e6;
            r.latency_us = std::isfinite(us) && us > 0 ? (us >= 1.8e19 ? ~0ull : static_cast<std::uint64_t>(us + 0.5)) : 0;
            r.since_ns = now;
            r.protocol = q.protocol;
            if (attach(r)) {
                ++health_.l7_requests_matched;
                continue;
            }
            l7_pending_.push_back(std::move(r));
            while (l7_pending_.size() > options_.max_l7_pending) {
                l7_pending_.pop_front();
                ++health_.l7_requests_unmatched;
            }
        }
    }
}

void FlowExport::emit(const collector::Snapshot& s, const Views& views, Entry& e, FlowEndReason reason, bool final,
                      std::vector<FlowExportRecord>& out) {
    const bool packets = e.packets[0] != 0 || e.packets[1] != 0;
    const bool requests = e.l7 && (e.l7->side[0].requests != 0 || e.l7->side[1].requests != 0);
    if (!packets && !requests) return;  // nothing since the last record
    FlowExportRecord r;
    r.key = e.fwd;
    r.flow_id = e.flow_id;
    if (packets) {
        r.start_ms = epochMs(s, e.first_ns);
        r.end_ms = epochMs(s, std::max(e.last_ns, e.first_ns));
    } else {
        // Requests whose packets an earlier record carried: an instant at that record's end.
        r.start_ms = r.end_ms = epochMs(s, e.prev_end_ns ? e.prev_end_ns : std::max(e.last_ns, e.first_ns));
    }
    r.packets = e.packets[0];
    r.bytes = e.bytes[0];
    r.rev_packets = e.packets[1];
    r.rev_bytes = e.bytes[1];
    r.tcp_flags = e.flags[0];
    r.rev_tcp_flags = e.flags[1];
    r.reverse_seen = e.reverse_seen;
    r.initiator_known = e.initiator_known;
    r.reason = reason;
    r.final = final;
    if (auto it = link_header_.find(e.fwd.ifindex); it != link_header_.end()) r.link_header_bytes = it->second;
    if (e.fwd.encap != NP_ENCAP_NONE) r.link_header_bytes = 0;  // an inner flow counts its IP datagrams
    if (views.flows) r.interface = views.flows->interfaceName(e.fwd.ifindex);
    if (r.interface.empty()) r.interface = std::to_string(e.fwd.ifindex);
    if (attribution_) {
        r.labels = attribution_->flow(e.fwd);
        if (e.fwd.proto == IPPROTO_TCP && views.groups && !views.groups->connections.empty()) {
            const auto src = addrOf(e.fwd.src_ip), dst = addrOf(e.fwd.dst_ip);
            auto containerOf = [&](std::uint64_t cg) -> std::string {
                if (!cg) return {};
                auto c = attribution_->container(cg);
                return c ? c->container_id : std::string();
            };
            r.src_container = containerOf(views.groups->connections.cgroupOf(src, e.fwd.src_port, dst, e.fwd.dst_port));
            r.dst_container = containerOf(views.groups->connections.cgroupOf(dst, e.fwd.dst_port, src, e.fwd.src_port));
        }
    }
    if (e.l7) {
        L7State& st = *e.l7;
        const L7Figures& f = st.side[st.server_seen ? 0 : 1];
        r.l7.protocol = st.protocol;
        r.l7.side = st.server_seen ? L7Side::Server : L7Side::Client;
        r.l7.requests = f.requests;
        r.l7.errors = f.errors;
        r.l7.client_errors = f.client_errors;
        r.l7.latency_sum_us = f.latency_sum_us;
        r.l7.latency_max_us = f.latency_max_us;
        st.side[0] = st.side[1] = L7Figures{};  // the other side saw the same requests
    }
    if (views.policy && views.policy->verdicts && (e.fwd.src_port != 0 || e.fwd.dst_port != 0)) {
        // The conversation as the policy stage keys it: client -> server:port, oriented by
        // the topology (which may differ from the record's forward direction).
        const auto src = addrOf(e.fwd.src_ip), dst = addrOf(e.fwd.dst_ip);
        auto v = views.policy->verdicts->find({src, dst, e.fwd.dst_port, e.fwd.proto});
        if (!v) v = views.policy->verdicts->find({dst, src, e.fwd.src_port, e.fwd.proto});
        if (v) {
            switch (*v) {
                case ConversationVerdicts::Verdict::None: break;
                case ConversationVerdicts::Verdict::Allowed: r.policy = FlowPolicyVerdict::Allowed; break;
                case ConversationVerdicts::Verdict::Denied: r.policy = FlowPolicyVerdict::Denied; break;
            }
        }
    }
    ++health_.records_total[static_cast<std::size_t>(reason)];
    out.push_back(std::move(r));
    if (!packets) return;
    // The next record of this flow starts after this one.
    e.prev_end_ns = std::max(e.last_ns, e.first_ns);
    e.packets[0] = e.packets[1] = 0;
    e.bytes[0] = e.bytes[1] = 0;
}

void FlowExport::publish(const collector::Snapshot&, Views& views, std::vector<FlowExportRecord> records) {
    auto v = std::make_shared<FlowExportView>();
    v->records = std::move(records);
    health_.cached = cache_.size();
    health_.l7_requests_pending = l7_pending_.size();
    v->health = health_;
    views.exports = std::move(v);
}

void FlowExport::run(const collector::Snapshot& s, Views& views) {
    for (const auto& i : s.interfaces) link_header_[i.index] = i.layer3 ? 0 : 14;
    for (auto& [_, e] : cache_) e.touched = false;

    const std::uint64_t now = s.monoNs();
    std::vector<FlowExportRecord> out;
    // New biflows whose two directions both show up in this collection: the forward one
    // is the one seen first (then the one towards the lower port: the server's).
    for (const auto& smp : s.flows) {
        if (smp.packets == 0) continue;
        const Key key = keyOf(smp.key);
        auto [it, created] = cache_.try_emplace(key);
        Entry& e = it->second;
        if (created) {
            indexAdd(key);
            e.fwd = smp.key;
            e.flow_id = next_id_++;
            e.first_ns = smp.first_seen_ns;
            e.last_ns = smp.last_seen_ns;
            e.opened_ns = now;
        }
        const bool same = std::memcmp(&smp.key.src_ip, &e.fwd.src_ip, 16) == 0 && smp.key.src_port == e.fwd.src_port &&
                          std::memcmp(&smp.key.dst_ip, &e.fwd.dst_ip, 16) == 0 && smp.key.dst_port == e.fwd.dst_port;
        int dir = same ? 0 : 1;
        if (!same && !e.reverse_seen && e.packets[0] > 0 && e.prev_end_ns == 0 && e.opened_ns == now) {
            // Both directions are new in this collection: order them by first packet (a
            // kernel aggregate of attempts or refusals: its port-0 end initiated).
            const int agg = np_flow_aggregate_initiator(smp.key.proto, smp.key.src_port, smp.key.dst_port);
            const bool reverse_first = agg != 0 ? agg > 0
                                                : smp.first_seen_ns < e.first_ns ||
                                                      (smp.first_seen_ns == e.first_ns && smp.key.dst_port < e.fwd.dst_port);
            if (reverse_first) {
                std::swap(e.packets[0], e.packets[1]);
                std::swap(e.bytes[0], e.bytes[1]);
                std::swap(e.flags[0], e.flags[1]);
                e.fwd = smp.key;
                dir = 0;
            }
            e.initiator_known = smp.first_seen_ns != e.first_ns;
        } else if (!same && !e.reverse_seen) {
            e.initiator_known = true;  // the reverse direction began in a later collection
        }
        if (dir == 1 || e.packets[1] > 0) e.reverse_seen = true;
        if (e.packets[0] == 0 && e.packets[1] == 0) {
            // The record opens with this packet: it began after the previous record.
            e.first_ns = e.prev_end_ns ? std::max(smp.first_seen_ns, e.prev_end_ns) : smp.first_seen_ns;
        } else {
            e.first_ns = std::min(e.first_ns, std::max(smp.first_seen_ns, e.prev_end_ns));
        }
        e.packets[dir] += smp.packets;
        e.bytes[dir] += smp.bytes;
        e.flags[dir] |= smp.tcp_flags;
        e.last_ns = std::max(e.last_ns, smp.last_seen_ns);
        e.touched = true;
    }

    joinL7(s);

    const auto idle = static_cast<std::uint64_t>(options_.idle_timeout.count());
    const auto active = static_cast<std::uint64_t>(options_.active_timeout.count());
    for (auto it = cache_.begin(); it != cache_.end();) {
        Entry& e = it->second;
        const bool quiet_since_last = now > e.last_ns && now - e.last_ns >= idle;
        const bool tcp_done = e.fwd.proto == IPPROTO_TCP && ((e.flags[0] | e.flags[1]) & (kFin | kRst)) && !e.touched;
        if (quiet_since_last || tcp_done) {
            emit(s, views, e, tcp_done ? FlowEndReason::EndOfFlow : FlowEndReason::IdleTimeout, true, out);
            indexRemove(it->first);
            it = cache_.erase(it);
            continue;
        }
        if (now - e.opened_ns >= active) {
            emit(s, views, e, FlowEndReason::ActiveTimeout, false, out);
            e.opened_ns = now;
        }
        ++it;
    }
    if (cache_.size() > options_.max_flows) {
        // The least recently seen go first.
        std::vector<std::pair<std::uint64_t, Key>> order;
        order.reserve(cache_.size());
        for (const auto& [k, e] : cache_) order.emplace_back(e.last_ns, k);
        const std::size_t n = cache_.size() - options_.max_flows;
        std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(n), order.end(),
                         [](const auto& x, const auto& y) { return x.first < y.first; });
        for (std::size_t i = 0; i < n; ++i) {
            auto it = cache_.find(order[i].second);
            emit(s, views, it->second, FlowEndReason::LackOfResources, true, out);
            forget(it);
        }
    }
    publish(s, views, std::move(out));
}

void FlowExport::finish(const collector::Snapshot& s, Views& views) {
    std::vector<FlowExportRecord> out;
    // The last collection's requests were joined by its run(); those still waiting have
    // no flow to join any more.
    health_.l7_requests_unmatched += l7_pending_.size();
    l7_pending_.clear();
    for (auto& [_, e] : cache_) emit(s, views, e, FlowEndReason::ForcedEnd, true, out);
    cache_.clear();
    l7_index_.clear();
    publish(s, views, std::move(out));
}

}  // namespace netprobe::analysis
