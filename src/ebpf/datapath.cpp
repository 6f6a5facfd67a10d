#include "ebpf/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <functional>
#include <map>
#include <optional>
#include <tuple>
#include <utility>

#include "datapath.skel.h"

namespace netprobe::ebpf {

int possibleCpus() {
    static const int n = [] {
        int v = libbpf_num_possible_cpus();
        return v > 0 ? v : 1;
    }();
    return n;
}

np_flow_stats mergeFlowStats(const np_flow_stats* per_cpu, int ncpu) {
    np_flow_stats m{};
    for (int c = 0; c < ncpu; ++c) {
        const auto& s = per_cpu[c];
        if (s.packets == 0) continue;
        m.packets += s.packets;
        m.bytes += s.bytes;
        if (m.first_seen_ns == 0 || (s.first_seen_ns != 0 && s.first_seen_ns < m.first_seen_ns))
            m.first_seen_ns = s.first_seen_ns;
        m.last_seen_ns = std::max<__u64>(m.last_seen_ns, s.last_seen_ns);
        m.tcp_flags |= s.tcp_flags;
    }
    return m;
}

Result<Datapath> Datapath::load(const DatapathConfig& cfg) {
    datapath_bpf* skel = datapath_bpf__open();
    if (!skel) return std::unexpected(errnoError(errno, "open datapath BPF object"));
    skel->rodata->np_enable_flows = cfg.enable_flows ? 1 : 0;
    skel->rodata->np_enable_security = cfg.enable_security ? 1 : 0;
    skel->rodata->np_mitigate = static_cast<__u32>(cfg.mitigate);
    int err = bpf_map__set_max_entries(skel->maps.flow_stats, std::max<std::uint32_t>(cfg.flow_table_size, 1));
    if (!err) err = datapath_bpf__load(skel);
    if (err) {
        datapath_bpf__destroy(skel);
        int e = -err;
        std::string ctx = "load datapath BPF programs";
        if (e == EPERM || e == EACCES) ctx += " (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, or root)";
        return std::unexpected(errnoError(e, ctx));
    }
    Datapath d;
    d.skel_ = skel;
    d.flow_capacity_ = bpf_map__max_entries(skel->maps.flow_stats);
    return d;
}

Datapath::Datapath(Datapath&& o) noexcept
    : skel_(std::exchange(o.skel_, nullptr)), flow_capacity_(o.flow_capacity_) {}

Datapath& Datapath::operator=(Datapath&& o) noexcept {
    if (this != &o) {
        if (skel_) datapath_bpf__destroy(skel_);
        skel_ = std::exchange(o.skel_, nullptr);
        flow_capacity_ = o.flow_capacity_;
    }
    return *this;
}

Datapath::~Datapath() {
    if (skel_) datapath_bpf__destroy(skel_);
}

int Datapath::xdpProg() const { return bpf_program__fd(skel_->progs.netprobe_xdp); }
int Datapath::tcIngressProg() const { return bpf_program__fd(skel_->progs.netprobe_tc_in); }
int Datapath::tcEgressProg() const { return bpf_program__fd(skel_->progs.netprobe_tc_eg); }
int Datapath::flowMap() const { return bpf_map__fd(skel_->maps.flow_stats); }
SecurityMaps Datapath::securityMaps() const {
    return SecurityMaps{bpf_map__fd(skel_->maps.sec_events), bpf_map__fd(skel_->maps.host_stats),
                        bpf_map__fd(skel_->maps.blocklist), bpf_map__fd(skel_->maps.block_stats)};
}

namespace {

template <class V>
Result<void> readPerCpuArray(int fd, std::uint32_t n, const std::function<void(std::uint32_t, const V*)>& fn) {
    const int ncpu = possibleCpus();
    std::vector<V> vals(static_cast<std::size_t>(ncpu));
    for (std::uint32_t i = 0; i < n; ++i) {
        if (bpf_map_lookup_elem(fd, &i, vals.data()) != 0)
            return std::unexpected(errnoError(errno, "read per-CPU array"));
        fn(i, vals.data());
    }
    return {};
}

// Reads a whole per-CPU array with BPF_MAP_LOOKUP_BATCH (one syscall per 1024 slots).
template <class V>
Result<void> readPerCpuArrayBatch(int fd, std::uint32_t n, const std::function<void(std::uint32_t, const V*)>& fn) {
    const auto ncpu = static_cast<std::size_t>(possibleCpus());
    constexpr std::uint32_t kChunk = 1024;
    std::vector<std::uint32_t> keys(kChunk);
    std::vector<V> vals(kChunk * ncpu);
    std::uint32_t in_tok = 0, out_tok = 0;
    bool first = true;
    std::uint32_t seen = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    while (seen < n) {
        __u32 count = kChunk;
        int err = bpf_map_lookup_batch(fd, first ? nullptr : &in_tok, &out_tok, keys.data(), vals.data(), &count,
                                       &opts);
        if (err && errno != ENOENT) return std::unexpected(errnoError(errno, "batch read per-CPU array"));
        for (__u32 i = 0; i < count; ++i) fn(keys[i], &vals[i * ncpu]);
        seen += count;
        if (err || count == 0) break;
        in_tok = out_tok;
        first = false;
    }
    return {};
}

Counter sumCounters(const np_counter* v, int ncpu) {
    Counter c;
    for (int i = 0; i < ncpu; ++i) {
        c.packets += v[i].packets;
        c.bytes += v[i].bytes;
    }
    return c;
}

// Iterates a hash map's entries with get_next_key + lookup.
template <class K, class V, class Fn>
Result<void> forEachEntry(int fd, std::size_t values_per_key, Fn&& fn) {
    K key{}, next{};
    std::vector<V> vals(values_per_key);
    const K* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
        if (bpf_map_lookup_elem(fd, &next, vals.data()) == 0) fn(next, vals.data());
        key = next;
        prev = &key;
    }
    if (errno != ENOENT) return std::unexpected(errnoError(errno, "iterate map"));
    return {};
}

}  // namespace

Result<NetworkStats> Datapath::readStats() const {
    NetworkStats s;
    s.taken_at = std::chrono::steady_clock::now();
    const int ncpu = possibleCpus();
    std::map<std::uint32_t, DeviceCounters> devs;
    auto dev = [&](std::uint32_t ifindex) -> DeviceCounters& {
        auto& d = devs[ifindex];
        d.ifindex = ifindex;
        return d;
    };

    // Array slots (ifindex < NP_DEV_SLOTS): one batch read each; empty slots skipped.
    auto r = readPerCpuArrayBatch<np_counter>(
        bpf_map__fd(skel_->maps.tc_device_stats), NP_DEV_SLOTS * NP_DIR_MAX,
        [&](std::uint32_t i, const np_counter* v) {
            Counter c = sumCounters(v, ncpu);
            if (c.packets == 0) return;
            auto& d = dev(i / NP_DIR_MAX);
            (i % NP_DIR_MAX == NP_DIR_INGRESS ? d.ingress : d.egress) = c;
        });
    if (!r) return std::unexpected(r.error());
    r = readPerCpuArrayBatch<np_counter>(bpf_map__fd(skel_->maps.xdp_device_stats), NP_DEV_SLOTS,
                                         [&](std::uint32_t i, const np_counter* v) {
                                             Counter c = sumCounters(v, ncpu);
                                             if (c.packets) dev(i).xdp = c;
                                         });
    if (!r) return std::unexpected(r.error());
    // Fallback hashes (ifindex >= NP_DEV_SLOTS).
    r = forEachEntry<tc_device_key, np_counter>(
        bpf_map__fd(skel_->maps.tc_device_stats_hi), static_cast<std::size_t>(ncpu),
        [&](const tc_device_key& k, const np_counter* v) {
            auto& d = dev(k.ifindex);
            (k.direction == NP_DIR_INGRESS ? d.ingress : d.egress) = sumCounters(v, ncpu);
        });
    if (!r) return std::unexpected(r.error());
    r = forEachEntry<tc_device_key, np_counter>(bpf_map__fd(skel_->maps.xdp_device_stats_hi),
                                                static_cast<std::size_t>(ncpu),
                                                [&](const tc_device_key& k, const np_counter* v) {
                                                    dev(k.ifindex).xdp = sumCounters(v, ncpu);
                                                });
    if (!r) return std::unexpected(r.error());
    s.devices.reserve(devs.size());
    for (auto& [_, d] : devs) s.devices.push_back(d);

    r = readPerCpuArray<np_counter>(bpf_map__fd(skel_->maps.packet_stats),
                                    static_cast<std::uint32_t>(NP_DIR_MAX) * NP_PROTO_MAX,
                                    [&](std::uint32_t i, const np_counter* v) {
                                        s.protocols[i / NP_PROTO_MAX][i % NP_PROTO_MAX] = sumCounters(v, ncpu);
                                    });
    if (!r) return std::unexpected(r.error());
    r = readPerCpuArray<std::uint64_t>(bpf_map__fd(skel_->maps.malformed_stats),
                                       static_cast<std::uint32_t>(NP_DIR_MAX) * NP_MAL_REASON_MAX,
                                       [&](std::uint32_t i, const std::uint64_t* v) {
                                           std::uint64_t t = 0;
                                           for (int c = 0; c < ncpu; ++c) t += v[c];
                                           s.malformed[i / NP_MAL_REASON_MAX][i % NP_MAL_REASON_MAX] = t;
                                       });
    if (!r) return std::unexpected(r.error());
    r = forEachEntry<np_icmp_key, np_counter>(bpf_map__fd(skel_->maps.icmp_stats), static_cast<std::size_t>(ncpu),
                                              [&](const np_icmp_key& k, const np_counter* v) {
                                                  s.icmp.push_back({k, sumCounters(v, ncpu)});
                                              });
    if (!r) return std::unexpected(r.error());
    std::sort(s.icmp.begin(), s.icmp.end(), [](const IcmpCount& a, const IcmpCount& b) {
        return std::tie(a.key.direction, a.key.family, a.key.type, a.key.code) <
               std::tie(b.key.direction, b.key.family, b.key.type, b.key.code);
    });
    r = readPerCpuArray<std::uint64_t>(bpf_map__fd(skel_->maps.map_errors), NP_MAP_ID_MAX,
                                       [&](std::uint32_t i, const std::uint64_t* v) {
                                           std::uint64_t t = 0;
                                           for (int c = 0; c < ncpu; ++c) t += v[c];
                                           s.map_errors[i] = t;
                                       });
    if (!r) return std::unexpected(r.error());
    return s;
}

void Datapath::forgetDevice(std::uint32_t ifindex) const {
    const std::vector<np_counter> zero(static_cast<std::size_t>(possibleCpus()));
    if (ifindex < NP_DEV_SLOTS) {
        for (std::uint32_t dir = 0; dir < NP_DIR_MAX; ++dir) {
            std::uint32_t idx = ifindex * NP_DIR_MAX + dir;
            bpf_map_update_elem(bpf_map__fd(skel_->maps.tc_device_stats), &idx, zero.data(), BPF_ANY);
        }
        bpf_map_update_elem(bpf_map__fd(skel_->maps.xdp_device_stats), &ifindex, zero.data(), BPF_ANY);
        return;
    }
    for (std::uint32_t dir = 0; dir < NP_DIR_MAX; ++dir) {
        tc_device_key k{ifindex, dir};
        bpf_map_delete_elem(bpf_map__fd(skel_->maps.tc_device_stats_hi), &k);
    }
    tc_device_key x{ifindex, NP_DIR_INGRESS};
    bpf_map_delete_elem(bpf_map__fd(skel_->maps.xdp_device_stats_hi), &x);
}

Result<std::size_t> Datapath::readFlows(std::vector<FlowDelta>& out, MapReadMode mode) const {
    return readFlowMap(flowMap(), out, mode);
}

std::optional<np_flow_stats> Datapath::removeFlow(const flow_key& key) const {
    std::vector<np_flow_stats> vals(static_cast<std::size_t>(possibleCpus()));
    if (bpf_map_lookup_and_delete_elem(flowMap(), &key, vals.data()) != 0) return std::nullopt;
    return mergeFlowStats(vals.data(), possibleCpus());
}

Result<std::size_t> Datapath::drainFlows(std::vector<FlowDelta>& out, MapReadMode mode) const {
    return drainFlowMap(flowMap(), out, mode);
}

namespace {

Result<std::size_t> batchFlows(int fd, std::vector<FlowDelta>& out, bool del) {
    const int ncpu = possibleCpus();
    std::size_t chunk = 4096;
    std::vector<flow_key> keys;
    std::vector<np_flow_stats> vals;
    std::uint64_t in_tok = 0, out_tok = 0;
    bool first = true;
    std::size_t total = 0;
    LIBBPF_OPTS(bpf_map_batch_opts, opts);
    for (;;) {
        keys.resize(chunk);
        vals.resize(chunk * static_cast<std::size_t>(ncpu));
        __u32 count = static_cast<__u32>(chunk);
        int err = del ? bpf_map_lookup_and_delete_batch(fd, first ? nullptr : &in_tok, &out_tok, keys.data(),
                                                        vals.data(), &count, &opts)
                      : bpf_map_lookup_batch(fd, first ? nullptr : &in_tok, &out_tok, keys.data(), vals.data(),
                                             &count, &opts);
        int e = err ? errno : 0;
        if (err && e == ENOSPC && count == 0) {  // one bucket holds more than the buffer
            chunk *= 2;
            continue;
        }
        if (err && e != ENOENT) return std::unexpected(errnoError(e, "batch read flow_stats"));
        for (__u32 i = 0; i < count; ++i) {
            FlowDelta d;
            d.key = keys[i];
            d.stats = mergeFlowStats(&vals[static_cast<std::size_t>(i) * static_cast<std::size_t>(ncpu)], ncpu);
            if (d.stats.packets) out.push_back(d);
        }
        total += count;
        if (err) break;  // ENOENT: done
        in_tok = out_tok;
        first = false;
    }
    return total;
}

Result<std::size_t> perKeyFlows(int fd, std::vector<FlowDelta>& out, bool del) {
    const int ncpu = possibleCpus();
    std::vector<np_flow_stats> vals(static_cast<std::size_t>(ncpu));
    std::vector<flow_key> seen;
    auto r = forEachEntry<flow_key, np_flow_stats>(fd, static_cast<std::size_t>(ncpu),
                                                   [&](const flow_key& k, const np_flow_stats* v) {
                                                       FlowDelta d;
                                                       d.key = k;
                                                       d.stats = mergeFlowStats(v, ncpu);
                                                       if (d.stats.packets) out.push_back(d);
                                                       if (del) seen.push_back(k);
                                                   });
    if (!r) return std::unexpected(r.error());
    // Delete after iterating: deleting during get_next_key iteration restarts it.
    // Packets counted between the lookup and the delete are lost (the batch mode
    // has no such window per bucket), which is why Batch is the default.
    for (const auto& k : seen) bpf_map_delete_elem(fd, &k);
    return del ? seen.size() : out.size();
}

}  // namespace

Result<std::size_t> drainFlowMap(int map_fd, std::vector<FlowDelta>& out, MapReadMode mode) {
    return mode == MapReadMode::Batch ? batchFlows(map_fd, out, true) : perKeyFlows(map_fd, out, true);
}

Result<std::size_t> readFlowMap(int map_fd, std::vector<FlowDelta>& out, MapReadMode mode) {
    return mode == MapReadMode::Batch ? batchFlows(map_fd, out, false) : perKeyFlows(map_fd, out, false);
}

}  // namespace netprobe::ebpf
