#include "netprobe/ebpf/trace.hpp"

#include <bpf/bpf.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "netprobe/ebpf/map_io.hpp"

namespace netprobe::ebpf {

const char* traceStageName(int stage) {
    static constexpr const char* names[NP_TRACE_STAGE_MAX] = {"xdp",    "tc_ingress",  "prerouting", "input", "forward",
                                                              "output", "postrouting", "tc_egress",  "socket"};
    return stage >= 0 && stage < NP_TRACE_STAGE_MAX ? names[stage] : "unknown";
}

PacketTracer::PacketTracer(std::vector<TraceMaps> objects, std::function<Result<void>(bool)> hooks)
    : objects_(std::move(objects)), hooks_(std::move(hooks)) {}

// Nothing to undo: the maps go with their objects, the hooks' links with the stack
// monitor (which may be gone first).
PacketTracer::~PacketTracer() = default;

Result<void> PacketTracer::setOn(bool on) {
    if (on && hooks_ && !hooks_on_) {
        if (auto r = hooks_(true); !r) return r;
        hooks_on_ = true;
    }
    const std::uint32_t key = 0, value = on ? 1 : 0;
    for (const auto& o : objects_)
        if (bpf_map_update_elem(o.on.get(), &key, &value, BPF_ANY) != 0)
            return std::unexpected(errnoError(errno, "packet trace: switch"));
    if (!on && hooks_ && hooks_on_) {
        hooks_on_ = false;
        if (auto r = hooks_(false); !r) return r;
    }
    return {};
}

Result<void> PacketTracer::arm(std::uint32_t slot, const TraceSpec& spec, std::uint64_t expires_ns) {
    if (slot >= NP_TRACE_MAX) return std::unexpected(makeError("packet trace: no slot " + std::to_string(slot)));
    const auto ncpu = static_cast<std::size_t>(possibleCpus());
    std::vector<np_counter> zero(ncpu);
    for (const auto& o : objects_) {
        // the slot's counts start at zero: its array slots zeroed, its hash entries deleted
        for (std::uint32_t i = 0; i < NP_TRACE_DIRS * NP_TRACE_STAGE_MAX; ++i) {
            const std::uint32_t idx = slot * NP_TRACE_DIRS * NP_TRACE_STAGE_MAX + i;
            if (bpf_map_update_elem(o.counts.get(), &idx, zero.data(), BPF_ANY) != 0)
                return std::unexpected(errnoError(errno, "packet trace: clear counts"));
        }
        for (int fd : {o.drops.get(), o.ifaces.get()}) {
            std::vector<np_trace_key> stale;
            auto r = readPerCpuHash<np_trace_key, std::uint64_t>(fd, [&](const np_trace_key& k, std::span<const std::uint64_t>) {
                if (k.slot == slot) stale.push_back(k);
            });
            if (!r) return std::unexpected(r.error());
            for (const auto& k : stale) (void)bpf_map_delete_elem(fd, &k);
        }
        std::vector<np_trace_proc_key> stale;
        auto r = readHash<np_trace_proc_key, np_trace_proc>(o.procs.get(), [&](const np_trace_proc_key& k, const np_trace_proc&) {
            if (k.slot == slot) stale.push_back(k);
        });
        if (!r) return std::unexpected(r.error());
        for (const auto& k : stale) (void)bpf_map_delete_elem(o.procs.get(), &k);
    }
    np_trace_spec s{};
    std::memcpy(&s.saddr, spec.src.data(), 16);
    std::memcpy(&s.daddr, spec.dst.data(), 16);
    s.sport = spec.sport;
    s.dport = spec.dport;
    s.proto = spec.proto;
    s.family = spec.family;
    s.expires_ns = expires_ns;
    for (const auto& o : objects_)
        if (bpf_map_update_elem(o.specs.get(), &slot, &s, BPF_ANY) != 0)
            return std::unexpected(errnoError(errno, "packet trace: write the spec"));
    used_[slot] = true;
    if (auto r = setOn(true); !r) {
        (void)disarm(slot);
        return r;
    }
    return {};
}

Result<void> PacketTracer::disarm(std::uint32_t slot) {
    if (slot >= NP_TRACE_MAX) return std::unexpected(makeError("packet trace: no slot " + std::to_string(slot)));
    const np_trace_spec none{};
    Result<void> result;
    for (const auto& o : objects_)
        if (bpf_map_update_elem(o.specs.get(), &slot, &none, BPF_ANY) != 0 && result)
            result = std::unexpected(errnoError(errno, "packet trace: clear the spec"));
    used_[slot] = false;
    if (!std::ranges::any_of(used_, [](bool u) { return u; }))
        if (auto r = setOn(false); !r && result) result = r;
    return result;
}

Result<TraceCounts> PacketTracer::read(std::uint32_t slot) const {
    if (slot >= NP_TRACE_MAX) return std::unexpected(makeError("packet trace: no slot " + std::to_string(slot)));
    TraceCounts out;
    for (const auto& o : objects_) {
        auto r = readPerCpuArray<np_counter>(o.counts.get(), NP_TRACE_COUNT_SLOTS,
                                             [&](std::uint32_t i, std::span<const np_counter> v) {
                                                 const std::uint32_t per_slot = NP_TRACE_DIRS * NP_TRACE_STAGE_MAX;
                                                 if (i / per_slot != slot) return;
                                                 const auto dir = (i % per_slot) / NP_TRACE_STAGE_MAX;
                                                 const auto stage = i % NP_TRACE_STAGE_MAX;
                                                 const Counter c = sumCounters(v);
                                                 out.stages[dir][stage].packets += c.packets;
                                                 out.stages[dir][stage].bytes += c.bytes;
                                             });
        if (!r) return std::unexpected(r.error());
        for (auto [fd, to] : {std::pair{o.drops.get(), &out.drops}, std::pair{o.ifaces.get(), &out.devices}}) {
            auto h = readPerCpuHash<np_trace_key, std::uint64_t>(fd, [&](const np_trace_key& k, std::span<const std::uint64_t> v) {
                if (k.slot != slot) return;
                if (const auto n = sumValues(v)) to->push_back({k.dir, k.stage, k.value, n});
            });
            if (!h) return std::unexpected(h.error());
        }
        auto p = readHash<np_trace_proc_key, np_trace_proc>(o.procs.get(), [&](const np_trace_proc_key& k, const np_trace_proc& v) {
            if (k.slot != slot) return;
            out.processes.push_back({k.dir, k.tgid, std::string(v.comm, strnlen(v.comm, sizeof v.comm)), v.calls, v.bytes});
        });
        if (!p) return std::unexpected(p.error());
    }
    return out;
}

Result<std::array<std::uint64_t, NP_TRACE_ERR_MAX>> PacketTracer::errors() const {
    std::array<std::uint64_t, NP_TRACE_ERR_MAX> out{};
    for (const auto& o : objects_) {
        auto r = readPerCpuArray<std::uint64_t>(o.errors.get(), NP_TRACE_ERR_MAX,
                                                [&](std::uint32_t i, std::span<const std::uint64_t> v) { out[i] += sumValues(v); });
        if (!r) return std::unexpected(r.error());
    }
    return out;
}

}  // namespace netprobe::ebpf
