// Plain data read from the datapath maps. No libbpf types leak into the API.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/abi.h>

namespace netprobe::ebpf {

struct Counter {
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;

    Counter& operator+=(const Counter& o) {
        packets += o.packets;
        bytes += o.bytes;
        return *this;
    }
    friend bool operator==(const Counter&, const Counter&) = default;
};

// Cumulative counters of one interface since the datapath was attached to it.
struct DeviceCounters {
    std::uint32_t ifindex = 0;
    Counter ingress;  // TC ingress (rx)
    Counter egress;   // TC egress (tx)
    Counter xdp;      // XDP, driver-level receive
};

// ICMP/ICMPv6 messages of one (direction, family, type, code), per-CPU values summed.
struct IcmpCount {
    np_icmp_key key{};
    Counter counter;
};

// Tunnel packets of one (direction, encapsulation) (overlay_stats; abi.h).
struct OverlayCounter {
    std::uint64_t packets = 0;      // decapsulated: their inner packet was parsed
    std::uint64_t bytes = 0;        // their outer (underlay) bytes
    std::uint64_t inner_bytes = 0;  // their inner bytes (as the inner flows count them)
    std::uint64_t undecoded = 0;    // tunnel packets whose inner packet was not accounted
    friend bool operator==(const OverlayCounter&, const OverlayCounter&) = default;
};
using OverlayCounters = std::array<std::array<OverlayCounter, NP_ENCAP_MAX>, NP_DIR_MAX>;

// One read of the datapath's counters (all per-CPU values summed).
struct NetworkStats {
    std::vector<DeviceCounters> devices;  // sorted by ifindex
    std::array<std::array<Counter, NP_PROTO_MAX>, NP_DIR_MAX> protocols{};
    std::array<std::array<std::uint64_t, NP_MAL_REASON_MAX>, NP_DIR_MAX> malformed{};
    std::array<std::uint64_t, NP_MAP_ID_MAX> map_errors{};
    std::vector<IcmpCount> icmp;  // sorted by key (direction, family, type, code)
    OverlayCounters overlay{};    // [direction][enum np_encap]
    std::chrono::steady_clock::time_point taken_at{};
    std::uint64_t device_reset_failures = 0;  // counter resets of detached interfaces that failed (retried)
};

// One entry of the kernel flow table: its cumulative values since the entry was
// created, per-CPU values merged (packets/bytes summed, first_seen min, last_seen max,
// tcp_flags OR-ed).
struct FlowEntry {
    flow_key key{};
    np_flow_stats stats{};
};

// An idle flow removed from the kernel table: its final values, and whether remembering
// it as announced (sec_flow_seen) failed (the removal itself succeeded: its values count).
struct RemovedFlow {
    np_flow_stats last{};
    bool remember_failed = false;
};

// A TCP handshake timed at one interface (handshake_events): key.src = the client,
// key.dst = the server, key.ifindex = where. server_ns: SYN -> SYN/ACK (round trip from
// there to the server), client_ns: SYN/ACK -> first ACK (to the client).
struct HandshakeSample {
    flow_key key{};
    std::uint64_t server_ns = 0;
    std::uint64_t client_ns = 0;
};

// A UDP flow's datagram timing at one interface and direction (udp_timing): key as its
// flow_stats key. Times are bpf_ktime_get_ns().
struct UdpTimingSample {
    flow_key key{};
    np_udp_timing timing{};
};

// Maps of the datapath that other modules read or write (security analytics, the
// mitigator). They get their own duplicate of the map's fd (Manager::mapFd).
enum class DatapathMap { SecurityEvents, HostStats, HostDirty, Blocklist, BlockStats, IntelIps, IntelState, IntelStats, IntelResolved, NameEvents,
                         // packet path tracing (bpf/lib/trace.h): its switch (.data.trace) and maps
                         TraceOn, TraceSpecs, TraceCounts, TraceDrops, TraceIfaces, TraceProcs, TraceErrors };

enum class XdpMode { Auto, Native, Generic, Off };
enum class TcMode { Auto, Tcx, Clsact };

[[nodiscard]] const char* toString(XdpMode m);
[[nodiscard]] const char* toString(TcMode m);

// Names used in metrics and JSON (stable; part of the exposition contract).
[[nodiscard]] const char* protoClassName(int cls);        // "ipv4", "tcp", "vlan", ...
[[nodiscard]] const char* malformedReasonName(int reason); // "truncated_ipv4", ...
[[nodiscard]] const char* mapName(int map_id);             // "flow_stats", ...
[[nodiscard]] const char* directionName(int dir);          // "ingress" / "egress"
[[nodiscard]] const char* encapName(int encap);            // enum np_encap: "none", "vxlan", "geneve", ...
[[nodiscard]] std::optional<std::uint8_t> parseEncap(std::string_view name);  // encapName's inverse

}  // namespace netprobe::ebpf
