// netprobe::ebpf::PacketTracer - packet path tracing (bpf/lib/trace.h): up to
// NP_TRACE_MAX "trace this flow" slots written into every object that takes part (the
// datapath's XDP/TC programs, the stack monitor's netfilter, kfree_skb and socket
// programs), and each slot's per-stage counts, drops by reason, devices and processes
// read back. With no slot in use each object's np_trace_on is 0 and the stack monitor's
// trace programs are detached: the hot programs pay one load and a branch.
//
//   PacketTracer t({datapathMaps, stackMaps}, [&](bool on) { return stack.setTraceHooks(on); });
//   t.arm(0, spec, now_ns + 10s);  ... t.read(0) ...  t.disarm(0);
// Not thread-safe: one owner (the trace source, on its collector's thread).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/fd.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::ebpf {

// One object's trace switch and maps (fds owned).
struct TraceMaps {
    util::UniqueFd on, specs, counts, drops, ifaces, procs, errors;
};

// What a slot matches, either direction; zero address/port/proto: any.
struct TraceSpec {
    util::Addr16 src{}, dst{};  // IPv4 stored IPv4-mapped
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t proto = 0;
    std::uint8_t family = 4;
};

struct TraceKeyCount {
    std::uint8_t dir = 0;    // 0: src -> dst as the spec says, 1: the reverse
    std::uint8_t stage = 0;  // enum np_trace_stage, or NP_TRACE_STAGE_BEFORE_NF_* (drops)
    std::uint32_t value = 0; // drops: enum skb_drop_reason; devices: ifindex
    std::uint64_t packets = 0;
};

struct TraceProcessCount {
    std::uint8_t dir = 0;  // the direction of the data it read (receive) or wrote (send)
    std::uint32_t pid = 0;
    std::string comm;
    std::uint64_t calls = 0, bytes = 0;
};

// One slot's counts, summed over the objects and CPUs.
struct TraceCounts {
    std::array<std::array<Counter, NP_TRACE_STAGE_MAX>, NP_TRACE_DIRS> stages{};
    std::vector<TraceKeyCount> drops;
    std::vector<TraceKeyCount> devices;
    std::vector<TraceProcessCount> processes;
};

class PacketTracer {
public:
    // hooks(true) attaches the programs that run only while a trace is active, hooks(false)
    // detaches them; null: none.
    PacketTracer(std::vector<TraceMaps> objects, std::function<Result<void>(bool)> hooks);
    ~PacketTracer();
    PacketTracer(const PacketTracer&) = delete;
    PacketTracer& operator=(const PacketTracer&) = delete;

    // Clears the slot's counts, writes its spec (matching until expires_ns, CLOCK_MONOTONIC)
    // into every object, and switches tracing on (attaching the hooks with the first slot).
    Result<void> arm(std::uint32_t slot, const TraceSpec& spec, std::uint64_t expires_ns);
    // Frees the slot; with none left, switches tracing off and detaches the hooks.
    Result<void> disarm(std::uint32_t slot);
    [[nodiscard]] Result<TraceCounts> read(std::uint32_t slot) const;
    // Records lost in the kernel since start (enum np_trace_error), summed over objects.
    [[nodiscard]] Result<std::array<std::uint64_t, NP_TRACE_ERR_MAX>> errors() const;
    [[nodiscard]] bool hooksAttached() const { return hooks_on_; }

private:
    Result<void> setOn(bool on);
    std::vector<TraceMaps> objects_;
    std::function<Result<void>(bool)> hooks_;
    std::array<bool, NP_TRACE_MAX> used_{};
    bool hooks_on_ = false;
};

// The trace maps of the datapath (a Manager's mapFd) as TraceMaps.
template <class MapFd>
Result<TraceMaps> datapathTraceMaps(const MapFd& mapFd) {
    TraceMaps m;
    struct {
        DatapathMap which;
        util::UniqueFd TraceMaps::*fd;
    } const parts[] = {{DatapathMap::TraceOn, &TraceMaps::on},         {DatapathMap::TraceSpecs, &TraceMaps::specs},
                       {DatapathMap::TraceCounts, &TraceMaps::counts}, {DatapathMap::TraceDrops, &TraceMaps::drops},
                       {DatapathMap::TraceIfaces, &TraceMaps::ifaces}, {DatapathMap::TraceProcs, &TraceMaps::procs},
                       {DatapathMap::TraceErrors, &TraceMaps::errors}};
    for (const auto& p : parts) {
        auto fd = mapFd(p.which);
        if (!fd) return std::unexpected(fd.error());
        m.*(p.fd) = std::move(*fd);
    }
    return m;
}

// Stage names ("xdp", "tc_ingress", "prerouting", ..., "socket").
[[nodiscard]] const char* traceStageName(int stage);

}  // namespace netprobe::ebpf
