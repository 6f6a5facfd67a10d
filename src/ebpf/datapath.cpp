#include "ebpf/datapath.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <cerrno>
#include <map>
#include <tuple>

#include <spdlog/spdlog.h>

#include <chrono>

#include "datapath.skel.h"
#include "ebpf/clock.hpp"
#include "datapath_l3.skel.h"
#include "netprobe/ebpf/map_io.hpp"

namespace netprobe::ebpf {

void Datapath::SkelDeleter::operator()(datapath_bpf* s) const noexcept { datapath_bpf__destroy(s); }

namespace {

// sec_flow_seen's slots: one per flow the table holds (at least 16k, a power of two: the
// programs mask the tag), so an announcement outlives the idle removal of its entry.
std::uint32_t seenSlotCount(const DatapathConfig& cfg) {
    if (!cfg.enable_security) return 1;
    return std::bit_ceil(std::clamp<std::uint32_t>(cfg.flow_table_size, 16384, 1u << 30));
}

// The load-time constants, the same in both objects (the layer-3 object's verification
// depends on them as the first's does).
template <class Skel>
void setConstants(Skel& s, const DatapathConfig& cfg) {
    s.rodata->np_enable_flows = cfg.enable_flows ? 1 : 0;
    s.rodata->np_enable_security = cfg.enable_security ? 1 : 0;
    s.rodata->np_mitigate = static_cast<__u32>(cfg.mitigate);
    s.rodata->np_enable_intel = cfg.enable_intel ? 1 : 0;
    s.rodata->np_enable_names = cfg.enable_names ? 1 : 0;
    s.rodata->np_enable_decap = cfg.enable_decap ? 1 : 0;
    s.rodata->np_enable_handshakes = cfg.enable_handshakes && cfg.enable_flows ? 1 : 0;
    s.rodata->np_enable_udp_timing = cfg.enable_udp_timing && cfg.enable_flows ? 1 : 0;
    s.rodata->np_seen_mask = seenSlotCount(cfg) - 1;
}

bool isRodata(const bpf_map* m) {
    const std::string_view name = bpf_map__name(m);
    return bpf_map__is_internal(m) && name.ends_with(".rodata");
}

}  // namespace

Result<void> shareMaps(const bpf_object* owner, bpf_object* opened) {
    bpf_map* m = nullptr;
    bpf_object__for_each_map(m, opened) {
        if (isRodata(m)) continue;  // constants: set, not shared (the owner's is frozen)
        const char* name = bpf_map__name(m);
        const bpf_map* theirs = bpf_object__find_map_by_name(owner, name);
        if (!theirs)
            return std::unexpected(makeError(std::string("share maps: no map \"") + name + "\" in " +
                                             bpf_object__name(owner)));
        if (bpf_map__type(theirs) != bpf_map__type(m) || bpf_map__key_size(theirs) != bpf_map__key_size(m) ||
            bpf_map__value_size(theirs) != bpf_map__value_size(m))
            return std::unexpected(makeError(std::string("share maps: map \"") + name + "\" differs between " +
                                             bpf_object__name(owner) + " and " + bpf_object__name(opened)));
        if (int err = bpf_map__reuse_fd(m, bpf_map__fd(theirs)); err)
            return std::unexpected(errnoError(-err, std::string("share maps: reuse \"") + name + "\""));
    }
    return {};
}

Result<Datapath> Datapath::load(const DatapathConfig& cfg) {
    auto skel = loadSkeleton<datapath_bpf, datapath_bpf__open, datapath_bpf__load, datapath_bpf__destroy>(
        "datapath", [&](datapath_bpf& s) -> Result<void> {
            setConstants(s, cfg);
            if (!(cfg.enable_handshakes && cfg.enable_flows))
                if (int err = bpf_map__set_max_entries(s.maps.handshake_events, 4096); err)
                    return std::unexpected(errnoError(-err, "datapath: size handshake_events"));
            if (!(cfg.enable_udp_timing && cfg.enable_flows))
                if (int err = bpf_map__set_max_entries(s.maps.udp_timing, 1); err)
                    return std::unexpected(errnoError(-err, "datapath: size udp_timing"));
            // the ring holds nothing without name capture: one page
            if (!cfg.enable_names)
                if (int err = bpf_map__set_max_entries(s.maps.name_events, 4096); err)
                    return std::unexpected(errnoError(-err, "datapath: size name_events"));
            // The blocking TC programs are for interfaces without XDP when there is a
            // blocklist to enforce (or count, in dry-run); not loaded otherwise.
            const bool block = cfg.mitigate != NP_MITIGATE_OFF;
            bpf_program__set_autoload(s.progs.netprobe_tc_in_block, block);
            const std::uint32_t flows = std::max<std::uint32_t>(cfg.flow_table_size, 1);
            if (int err = bpf_map__set_max_entries(s.maps.flow_stats, flows); err)
                return std::unexpected(errnoError(-err, "datapath: size flow_stats"));
            if (int err = bpf_map__set_max_entries(s.maps.sec_flow_seen, seenSlotCount(cfg)); err)
                return std::unexpected(errnoError(-err, "datapath: size sec_flow_seen"));
            return {};
        });
    if (!skel) return std::unexpected(skel.error());
    // flow times from jiffies (bpf/lib/clock.h); without, from the coarse clock's helper
    if (int err = calibrateClock(**skel); err)
        spdlog::warn("datapath: flow times read the coarse clock per packet (jiffies clock not calibrated: {})",
                     std::strerror(-err));
    Datapath d;
    d.cfg_ = cfg;
    d.flow_capacity_ = bpf_map__max_entries((*skel)->maps.flow_stats);
    d.mitigate_ = cfg.mitigate;
    d.udp_timing_ = cfg.enable_udp_timing && cfg.enable_flows;
    d.security_ = cfg.enable_security;
    d.skel_.reset(skel->release());
    if (cfg.enable_handshakes && cfg.enable_flows) {
        d.hs_sink_ = std::make_unique<HandshakeSink>();
        ring_buffer* rb = ring_buffer__new(
            bpf_map__fd(d.skel_->maps.handshake_events),
            [](void* ctx, void* data, size_t size) -> int {
                auto* sink = static_cast<HandshakeSink*>(ctx);
                if (size < sizeof(np_hs_event) || !sink->out) return 0;
                np_hs_event e;
                std::memcpy(&e, data, sizeof(e));
                sink->out->push_back({e.key, e.server_ns, e.client_ns});
                ++sink->n;
                return 0;
            },
            d.hs_sink_.get(), nullptr);
        if (!rb) return std::unexpected(errnoError(errno, "datapath: open the handshake ring"));
        d.hs_ring_.reset(rb);
    }
    return d;
}

void Datapath::L3Deleter::operator()(datapath_l3_bpf* s) const noexcept { datapath_l3_bpf__destroy(s); }

Result<void> Datapath::loadLayer3() {
    if (l3_) return {};
    const auto t0 = std::chrono::steady_clock::now();
    auto skel = loadSkeleton<datapath_l3_bpf, datapath_l3_bpf__open, datapath_l3_bpf__load, datapath_l3_bpf__destroy>(
        "datapath (layer-3 programs)", [&](datapath_l3_bpf& s) -> Result<void> {
            setConstants(s, cfg_);
            bpf_program__set_autoload(s.progs.netprobe_tc_in_l3_block, cfg_.mitigate != NP_MITIGATE_OFF);
            return shareMaps(skel_->obj, s.obj);
        });
    if (!skel) return std::unexpected(skel.error());
    l3_.reset(skel->release());
    spdlog::info("layer-3 device programs loaded ({} ms)",
                 std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count());
    return {};
}

void Datapath::RingDeleter::operator()(ring_buffer* r) const noexcept { ring_buffer__free(r); }

Datapath::~Datapath() = default;

Result<std::size_t> Datapath::drainHandshakes(std::vector<HandshakeSample>& out) {
    if (!hs_ring_) return 0;
    hs_sink_->out = &out;
    hs_sink_->n = 0;
    // Bounded: at most what the ring held when called plus what arrives meanwhile.
    const int r = ring_buffer__consume(hs_ring_.get());
    hs_sink_->out = nullptr;
    if (r < 0) return std::unexpected(errnoError(-r, "datapath: read the handshake ring"));
    return hs_sink_->n;
}

Result<std::size_t> Datapath::readUdpTimings(std::vector<UdpTimingSample>& out, std::uint64_t since_ns) const {
    if (!udp_timing_) return 0;
    std::size_t n = 0;
    auto r = forEachHashEntry(bpf_map__fd(skel_->maps.udp_timing), sizeof(flow_key), sizeof(np_udp_timing),
                              [&](const void* k, const void* v) {
                                  UdpTimingSample s;
                                  std::memcpy(&s.key, k, sizeof s.key);
                                  std::memcpy(&s.timing, v, sizeof s.timing);
                                  if (s.timing.last_ns < since_ns) return;
                                  out.push_back(s);
                                  ++n;
                              });
    if (!r) return std::unexpected(Error{r.error().code, "datapath: read udp_timing: " + r.error().message});
    return n;
}

int Datapath::xdpProg() const { return bpf_program__fd(skel_->progs.netprobe_xdp); }
int Datapath::tcIngressProg(bool l3, bool block) const {
    if (l3 && !l3_) return -EBADF;
    if (block && mitigate_ != NP_MITIGATE_OFF)
        return bpf_program__fd(l3 ? l3_->progs.netprobe_tc_in_l3_block : skel_->progs.netprobe_tc_in_block);
    return bpf_program__fd(l3 ? l3_->progs.netprobe_tc_in_l3 : skel_->progs.netprobe_tc_in);
}
int Datapath::tcEgressProg(bool l3) const {
    if (l3 && !l3_) return -EBADF;
    return bpf_program__fd(l3 ? l3_->progs.netprobe_tc_eg_l3 : skel_->progs.netprobe_tc_eg);
}
int Datapath::flowMap() const { return bpf_map__fd(skel_->maps.flow_stats); }

Result<UniqueFd> Datapath::mapFd(DatapathMap which) const {
    const bpf_map* m = nullptr;
    switch (which) {
        case DatapathMap::SecurityEvents: m = skel_->maps.sec_events; break;
        case DatapathMap::HostStats: m = skel_->maps.host_stats; break;
        case DatapathMap::HostDirty: m = skel_->maps.data_hostdirty; break;
        case DatapathMap::Blocklist: m = skel_->maps.blocklist; break;
        case DatapathMap::BlockStats: m = skel_->maps.block_stats; break;
        case DatapathMap::IntelIps: m = skel_->maps.intel_ips; break;
        case DatapathMap::IntelState: m = skel_->maps.intel_state; break;
        case DatapathMap::IntelStats: m = skel_->maps.intel_stats; break;
        case DatapathMap::IntelResolved: m = skel_->maps.intel_resolved; break;
        case DatapathMap::NameEvents: m = skel_->maps.name_events; break;
        case DatapathMap::TraceOn: m = skel_->maps.data_trace; break;
        case DatapathMap::TraceSpecs: m = skel_->maps.trace_specs; break;
        case DatapathMap::TraceCounts: m = skel_->maps.trace_counts; break;
        case DatapathMap::TraceDrops: m = skel_->maps.trace_drops; break;
        case DatapathMap::TraceIfaces: m = skel_->maps.trace_ifaces; break;
        case DatapathMap::TraceProcs: m = skel_->maps.trace_procs; break;
        case DatapathMap::TraceErrors: m = skel_->maps.trace_errors; break;
    }
    UniqueFd fd(::fcntl(bpf_map__fd(m), F_DUPFD_CLOEXEC, 0));
    if (!fd) return std::unexpected(errnoError(errno, std::string("duplicate the fd of map ") + bpf_map__name(m)));
    return fd;
}

Result<NetworkStats> Datapath::readStats() const {
    NetworkStats s;
    s.taken_at = std::chrono::steady_clock::now();
    std::map<std::uint32_t, DeviceCounters> devs;
    auto dev = [&](std::uint32_t ifindex) -> DeviceCounters& {
        auto& d = devs[ifindex];
        d.ifindex = ifindex;
        return d;
    };
    auto& maps = skel_->maps;

    // Array slots (ifindex < NP_DEV_SLOTS), empty slots skipped; then the hashes above.
    auto r = readPerCpuArray<np_counter>(bpf_map__fd(maps.tc_device_stats), NP_DEV_SLOTS * NP_DIR_MAX,
                                         [&](std::uint32_t i, std::span<const np_counter> v) {
                                             Counter c = sumCounters(v);
                                             if (c.packets == 0) return;
                                             auto& d = dev(i / NP_DIR_MAX);
                                             (i % NP_DIR_MAX == NP_DIR_INGRESS ? d.ingress : d.egress) = c;
                                         });
    if (!r) return std::unexpected(r.error());
    r = readPerCpuArray<np_counter>(bpf_map__fd(maps.xdp_device_stats), NP_DEV_SLOTS,
                                    [&](std::uint32_t i, std::span<const np_counter> v) {
                                        Counter c = sumCounters(v);
                                        if (c.packets) dev(i).xdp = c;
                                    });
    if (!r) return std::unexpected(r.error());
    auto h = readPerCpuHash<tc_device_key, np_counter>(bpf_map__fd(maps.tc_device_stats_hi),
                                                       [&](const tc_device_key& k, std::span<const np_counter> v) {
                                                           auto& d = dev(k.ifindex);
                                                           (k.direction == NP_DIR_INGRESS ? d.ingress : d.egress) =
                                                               sumCounters(v);
                                                       });
    if (!h) return std::unexpected(h.error());
    h = readPerCpuHash<tc_device_key, np_counter>(
        bpf_map__fd(maps.xdp_device_stats_hi),
        [&](const tc_device_key& k, std::span<const np_counter> v) { dev(k.ifindex).xdp = sumCounters(v); });
    if (!h) return std::unexpected(h.error());
    s.devices.reserve(devs.size());
    for (auto& [_, d] : devs) s.devices.push_back(d);

    r = readPerCpuArray<np_counter>(bpf_map__fd(maps.packet_stats), static_cast<std::uint32_t>(NP_DIR_MAX) * NP_PROTO_MAX,
                                    [&](std::uint32_t i, std::span<const np_counter> v) {
                                        s.protocols[i / NP_PROTO_MAX][i % NP_PROTO_MAX] = sumCounters(v);
                                    });
    if (!r) return std::unexpected(r.error());
    r = readPerCpuArray<std::uint64_t>(bpf_map__fd(maps.malformed_stats),
                                       static_cast<std::uint32_t>(NP_DIR_MAX) * NP_MAL_REASON_MAX,
                                       [&](std::uint32_t i, std::span<const std::uint64_t> v) {
                                           s.malformed[i / NP_MAL_REASON_MAX][i % NP_MAL_REASON_MAX] = sumValues(v);
                                       });
    if (!r) return std::unexpected(r.error());
    h = readPerCpuHash<np_icmp_key, np_counter>(bpf_map__fd(maps.icmp_stats),
                                                [&](const np_icmp_key& k, std::span<const np_counter> v) {
                                                    s.icmp.push_back({k, sumCounters(v)});
                                                });
    if (!h) return std::unexpected(h.error());
    std::sort(s.icmp.begin(), s.icmp.end(), [](const IcmpCount& a, const IcmpCount& b) {
        return std::tie(a.key.direction, a.key.family, a.key.type, a.key.code) <
               std::tie(b.key.direction, b.key.family, b.key.type, b.key.code);
    });
    r = readPerCpuArray<np_overlay_counter>(
        bpf_map__fd(maps.overlay_stats), static_cast<std::uint32_t>(NP_DIR_MAX) * NP_ENCAP_MAX,
        [&](std::uint32_t i, std::span<const np_overlay_counter> v) {
            OverlayCounter& o = s.overlay[i / NP_ENCAP_MAX][i % NP_ENCAP_MAX];
            for (const auto& c : v) {
                o.packets += c.packets;
                o.bytes += c.bytes;
                o.inner_bytes += c.inner_bytes;
                o.undecoded += c.errors;
            }
        });
    if (!r) return std::unexpected(r.error());
    r = readPerCpuArray<std::uint64_t>(bpf_map__fd(maps.map_errors), NP_MAP_ID_MAX,
                                       [&](std::uint32_t i, std::span<const std::uint64_t> v) {
                                           s.map_errors[i] = sumValues(v);
                                       });
    if (!r) return std::unexpected(r.error());
    return s;
}

Result<void> Datapath::forgetDevice(std::uint32_t ifindex) const {
    auto& maps = skel_->maps;
    const std::vector<np_counter> zero(static_cast<std::size_t>(possibleCpus()));
    auto fail = [&](const char* what) { return std::unexpected(errnoError(errno, what + std::to_string(ifindex))); };
    if (ifindex < NP_DEV_SLOTS) {
        for (std::uint32_t dir = 0; dir < NP_DIR_MAX; ++dir) {
            std::uint32_t idx = ifindex * NP_DIR_MAX + dir;
            if (bpf_map_update_elem(bpf_map__fd(maps.tc_device_stats), &idx, zero.data(), BPF_ANY) != 0)
                return fail("zero tc_device_stats of ifindex ");
        }
        if (bpf_map_update_elem(bpf_map__fd(maps.xdp_device_stats), &ifindex, zero.data(), BPF_ANY) != 0)
            return fail("zero xdp_device_stats of ifindex ");
        return {};
    }
    for (std::uint32_t dir = 0; dir < NP_DIR_MAX; ++dir) {
        tc_device_key k{ifindex, dir};
        if (bpf_map_delete_elem(bpf_map__fd(maps.tc_device_stats_hi), &k) != 0 && errno != ENOENT)
            return fail("delete tc_device_stats_hi of ifindex ");
    }
    tc_device_key x{ifindex, NP_DIR_INGRESS};
    if (bpf_map_delete_elem(bpf_map__fd(maps.xdp_device_stats_hi), &x) != 0 && errno != ENOENT)
        return fail("delete xdp_device_stats_hi of ifindex ");
    return {};
}

Result<std::size_t> Datapath::readFlows(std::vector<FlowEntry>& out) const { return readFlowMap(flowMap(), out); }

Result<RemovedFlow> removeIdleFlow(int flow_stats_fd, SeenSlots seen, const flow_key& key) {
    std::vector<np_flow_stats> vals(static_cast<std::size_t>(possibleCpus()));
    if (bpf_map_lookup_and_delete_elem(flow_stats_fd, &key, vals.data()) != 0)
        return std::unexpected(errnoError(errno, "remove an idle flow from flow_stats"));
    RemovedFlow r{mergeFlowStats(vals)};
    // Remember it as announced (np_sec_new_flow) when its next packet could continue it:
    // not a TCP flow that ended with a RST or never acknowledged anything (a SYN, a
    // scan's probe). Their next packets open again and are announced anyway; under a
    // SYN flood such flows are every removal, and the write was a syscall each. A
    // packet in the microseconds between the removal and the write is announced again,
    // and so is a flow whose write failed (counted by the caller: the values count).
    if (seen.fd >= 0 && idleFlowMayContinue(key, r.last)) {
        const __u64 tag = np_seen_tag(&key);
        const __u32 slot = np_seen_slot(tag, seen.mask);
        r.remember_failed = bpf_map_update_elem(seen.fd, &slot, &tag, BPF_ANY) != 0;
    }
    return r;
}

void Datapath::setFlowPressure(bool on) const {
    if (skel_ && skel_->data_pressure) skel_->data_pressure->np_flow_pressure = on ? 1 : 0;
}

Result<RemovedFlow> Datapath::removeFlow(const flow_key& key) const {
    return removeIdleFlow(flowMap(), security_ ? seenSlots(skel_->maps.sec_flow_seen) : SeenSlots{}, key);
}

}  // namespace netprobe::ebpf
