#include "netprobe/analysis/flow_export.hpp"

#include <algorithm>
#include <bit>
#include <chrono>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>

#include <netinet/in.h>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/grouping.hpp>
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

void FlowExport::emit(const collector::Snapshot& s, const Views& views, Entry& e, FlowEndReason reason, bool final,
                      std::vector<FlowExportRecord>& out) {
    if (e.packets[0] == 0 && e.packets[1] == 0) return;  // nothing since the last record
    FlowExportRecord r;
    r.key = e.fwd;
    r.flow_id = e.flow_id;
    r.start_ms = epochMs(s, e.first_ns);
    r.end_ms = epochMs(s, std::max(e.last_ns, e.first_ns));
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
    ++health_.records_total[static_cast<std::size_t>(reason)];
    out.push_back(std::move(r));
    // The next record of this flow starts after this one.
    e.prev_end_ns = std::max(e.last_ns, e.first_ns);
    e.packets[0] = e.packets[1] = 0;
    e.bytes[0] = e.bytes[1] = 0;
}

void FlowExport::publish(const collector::Snapshot&, Views& views, std::vector<FlowExportRecord> records) {
    auto v = std::make_shared<FlowExportView>();
    v->records = std::move(records);
    health_.cached = cache_.size();
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
            // Both directions are new in this collection: order them by first packet.
            const bool reverse_first = smp.first_seen_ns < e.first_ns ||
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

    const auto idle = static_cast<std::uint64_t>(options_.idle_timeout.count());
    const auto active = static_cast<std::uint64_t>(options_.active_timeout.count());
    for (auto it = cache_.begin(); it != cache_.end();) {
        Entry& e = it->second;
        const bool quiet_since_last = now > e.last_ns && now - e.last_ns >= idle;
        const bool tcp_done = e.fwd.proto == IPPROTO_TCP && ((e.flags[0] | e.flags[1]) & (kFin | kRst)) && !e.touched;
        if (quiet_since_last || tcp_done) {
            emit(s, views, e, tcp_done ? FlowEndReason::EndOfFlow : FlowEndReason::IdleTimeout, true, out);
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
            cache_.erase(it);
        }
    }
    publish(s, views, std::move(out));
}

void FlowExport::finish(const collector::Snapshot& s, Views& views) {
    std::vector<FlowExportRecord> out;
    for (auto& [_, e] : cache_) emit(s, views, e, FlowEndReason::ForcedEnd, true, out);
    cache_.clear();
    publish(s, views, std::move(out));
}

}  // namespace netprobe::analysis
