// Internal: the datapath skeleton (XDP + TC programs and their maps) and its readers.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include <bpf/libbpf.h>

#include "netprobe/ebpf/map_io.hpp"
#include "netprobe/ebpf/types.hpp"
#include "netprobe/util/error.hpp"

struct datapath_bpf;
struct datapath_l3_bpf;
struct ring_buffer;
struct bpf_object;

namespace netprobe::ebpf {

struct DatapathConfig {
    std::uint32_t flow_table_size = 65536;
    bool enable_flows = true;
    bool enable_security = true;
    np_mitigate_mode mitigate = NP_MITIGATE_OFF;
    bool enable_intel = false;  // threat-intel indicator checks (bpf/lib/intel.h)
    bool enable_names = false;  // DNS answers and TLS ClientHello heads on name_events (bpf/lib/names.h)
    bool enable_decap = true;   // overlay decapsulation: inner flows of tunnel packets (bpf/lib/decap.h)
    bool enable_handshakes = true;  // TCP handshake timing on handshake_events (bpf/lib/handshake.h)
    bool enable_udp_timing = false; // UDP inter-arrival timing in udp_timing (bpf/lib/udp_timing.h)
};

// Before `opened` is loaded: every map of it (constants aside) becomes the same-named map
// of the loaded `owner`, so programs of both objects count into one set of maps. An
// error if a map is missing from owner or differs in type, key or value size.
[[nodiscard]] Result<void> shareMaps(const bpf_object* owner, bpf_object* opened);

class Datapath {
public:
    [[nodiscard]] static Result<Datapath> load(const DatapathConfig& cfg);
    Datapath() = default;
    Datapath(Datapath&&) noexcept = default;
    Datapath& operator=(Datapath&&) noexcept = default;
    ~Datapath();

    [[nodiscard]] int xdpProg() const;
    // The programs of layer-3 devices (a second object sharing these maps): loaded on
    // the first call (~0.8 s of verification; most nodes never need them).
    [[nodiscard]] Result<void> loadLayer3();
    // l3: the programs for devices without a link-layer header (tun, WireGuard, ipip...),
    // -EBADF before loadLayer3().
    // block: the interface has no XDP program, so TC ingress enforces the blocklist
    // (the same program as without block when mitigation is off).
    [[nodiscard]] int tcIngressProg(bool l3 = false, bool block = false) const;
    [[nodiscard]] int tcEgressProg(bool l3 = false) const;
    [[nodiscard]] int flowMap() const;
    // A duplicate of one of the maps' fds, owned by the caller.
    [[nodiscard]] Result<UniqueFd> mapFd(DatapathMap which) const;
    [[nodiscard]] std::uint32_t flowCapacity() const { return flow_capacity_; }

    [[nodiscard]] Result<NetworkStats> readStats() const;
    // Every kernel flow entry (cumulative values), appended to out.
    Result<std::size_t> readFlows(std::vector<FlowEntry>& out) const;
    // Deletes one flow, returning its final values; an error if it could not (it is
    // still there, or ENOENT: it was not).
    Result<RemovedFlow> removeFlow(const flow_key& key) const;
    // Whether the programs aggregate connection attempts and refusals without an entry
    // (np_flow_pressure, bpf/progs/datapath.bpf.c): a store into the mapped data.
    void setFlowPressure(bool on) const;
    // The handshake records in the ring since the previous call, appended to out.
    Result<std::size_t> drainHandshakes(std::vector<HandshakeSample>& out);
    // The UDP flows whose last datagram is at or after since_ns (bpf_ktime_get_ns), with
    // their timing, appended to out; 0 with the timing off.
    Result<std::size_t> readUdpTimings(std::vector<UdpTimingSample>& out, std::uint64_t since_ns) const;
    // Zeroes (array slots) or deletes (hash entries) the interface's device counters.
    Result<void> forgetDevice(std::uint32_t ifindex) const;

private:
    struct SkelDeleter {
        void operator()(datapath_bpf* s) const noexcept;
    };
    std::unique_ptr<datapath_bpf, SkelDeleter> skel_;
    struct L3Deleter {
        void operator()(datapath_l3_bpf* s) const noexcept;
    };
    // Declared after skel_: destroyed first (its maps are skel_'s).
    std::unique_ptr<datapath_l3_bpf, L3Deleter> l3_;
    DatapathConfig cfg_;
    struct RingDeleter {
        void operator()(ring_buffer* r) const noexcept;
    };
    // The handshake ring's consumer (null with handshake timing off) and where its
    // callback appends (set for the duration of a drainHandshakes call).
    struct HandshakeSink {
        std::vector<HandshakeSample>* out = nullptr;
        std::size_t n = 0;
    };
    std::unique_ptr<HandshakeSink> hs_sink_;
    std::unique_ptr<ring_buffer, RingDeleter> hs_ring_;
    std::uint32_t flow_capacity_ = 0;
    bool udp_timing_ = false;
    np_mitigate_mode mitigate_ = NP_MITIGATE_OFF;
    bool security_ = false;
};

// Whether a flow removed with these final values may resume with a packet that does not
// open (np_sec_new_flow): every flow but a TCP flow that saw a RST or never an ACK.
[[nodiscard]] constexpr bool idleFlowMayContinue(const flow_key& key, const np_flow_stats& last) {
    constexpr std::uint8_t kRst = 0x04, kAck = 0x10, kTcp = 6;
    return key.proto != kTcp || ((last.tcp_flags & kAck) && !(last.tcp_flags & kRst));
}

// sec_flow_seen (netprobe/abi.h: np_seen_tag): its fd and slots - 1 (fd -1: security off).
struct SeenSlots {
    int fd = -1;
    std::uint32_t mask = 0;
};
[[nodiscard]] inline SeenSlots seenSlots(const bpf_map* sec_flow_seen) {
    return {bpf_map__fd(sec_flow_seen), bpf_map__max_entries(sec_flow_seen) - 1};
}

// What the agent does with an idle flow: removes it from flow_stats, returning its final
// values (summed over CPUs), and, when it may resume (idleFlowMayContinue), remembers it
// in sec_flow_seen, so that its next packet is not announced as a new flow.
Result<RemovedFlow> removeIdleFlow(int flow_stats_fd, SeenSlots seen, const flow_key& key);

}  // namespace netprobe::ebpf
