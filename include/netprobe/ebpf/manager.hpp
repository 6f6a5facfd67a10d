// netprobe::ebpf::Manager - the spec's eBPF manager: loads the embedded datapath
// programs, attaches them to interfaces (XDP + TC ingress/egress), and reads maps.
//
//   auto m = netprobe::ebpf::Manager::create();      // Result<std::unique_ptr<Manager>>
//   if (!m) { /* m.error().what() */ }
//   (*m)->attachNetworkMonitor("eth0");
//   auto stats = (*m)->getNetworkStats();
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/ebpf/types.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/fd.hpp>

namespace netprobe::ebpf {

using util::UniqueFd;

struct ManagerOptions {
    XdpMode xdp_mode = XdpMode::Auto;  // Auto: native, falling back to generic
    TcMode tc_mode = TcMode::Auto;     // Auto: tcx links, falling back to clsact
    std::uint32_t flow_table_size = 65536;  // kernel flow entries per collect interval
    bool enable_flows = true;
    bool enable_security = true;                   // host_stats + sec_events (src/security)
    np_mitigate_mode mitigate = NP_MITIGATE_OFF;   // XDP blocklist: off, dry-run, on
    bool enable_intel = false;                     // threat-intel indicator checks at TC (ebpf::IntelMaps)
    bool enable_names = false;                     // name capture at TC: DNS answers, TLS ClientHello (ebpf::NameCapture)
    bool enable_decap = true;                      // overlay decapsulation at TC: VXLAN, Geneve, IPIP, GRE (bpf/lib/decap.h)
    bool enable_handshakes = true;                 // TCP handshake timing at TC (bpf/lib/handshake.h)
    bool enable_udp_timing = false;                // UDP inter-arrival timing at TC (bpf/lib/udp_timing.h)
};

struct AttachInfo {
    std::string ifname;
    std::uint32_t ifindex = 0;
    std::string xdp;  // "native", "generic", "off" or "failed: <reason>"
    std::string tc;   // "tcx" or "clsact"
    bool layer3 = false;  // no link-layer header (tun, WireGuard, ...): byte counts start at the IP header
};

class Manager {
public:
    // Loads the datapath (nothing attached yet). Fails with a clear error when the
    // process lacks privileges or the kernel lacks a needed feature.
    [[nodiscard]] static Result<std::unique_ptr<Manager>> create(ManagerOptions options = {});
    ~Manager();
    Manager(const Manager&) = delete;
    Manager& operator=(const Manager&) = delete;

    // Attaches XDP and TC ingress/egress to the interface. Attaching twice is a no-op.
    Result<AttachInfo> attachNetworkMonitor(std::string_view ifname);
    // Detaches everything from the interface and forgets its counters.
    Result<void> detachNetworkMonitor(std::string_view ifname);
    // Forgets an interface the kernel already removed (its links are gone with it).
    void forgetInterface(std::uint32_t ifindex);
    void detachAll();
    [[nodiscard]] std::vector<AttachInfo> attachments() const;
    [[nodiscard]] bool isAttached(std::uint32_t ifindex) const;

    // Cumulative counters (interfaces, protocols, malformed, map errors). Counters of
    // detached interfaces whose reset failed are retried here first.
    [[nodiscard]] Result<NetworkStats> getNetworkStats() const;
    // Reads the kernel flow table (cumulative values of each flow since its entry
    // was created), appended to out. Returns the number of entries.
    Result<std::size_t> readFlows(std::vector<FlowEntry>& out) const;
    // The same, entry by entry (no buffer of the whole table).
    Result<std::size_t> forEachFlow(const std::function<void(const FlowEntry&)>& fn) const;
    // Removes one flow from the kernel table, returning its final values; an error
    // when the entry could not be removed (ENOENT: it was not there).
    Result<RemovedFlow> removeFlow(const flow_key& key);
    // Whether the kernel table is under pressure: then the programs count a TCP packet
    // without an entry that tries to open (SYN) or refuses (RST) in an aggregate entry
    // with the initiator's port 0 (a SYN flood keeps two entries, not one per packet).
    void setFlowPressure(bool on);
    [[nodiscard]] std::uint32_t flowTableCapacity() const;
    // The TCP handshakes timed since the previous call (the handshake ring, read without
    // a system call), appended to out. Returns how many; 0 with handshake timing off.
    Result<std::size_t> drainHandshakes(std::vector<HandshakeSample>& out);
    // The UDP flows with a datagram at or after since_ns (bpf_ktime_get_ns) and their
    // inter-arrival timing (udp_timing), appended to out; 0 with QoS timing off.
    Result<std::size_t> readUdpTimings(std::vector<UdpTimingSample>& out, std::uint64_t since_ns) const;
    // A duplicate of the fd of one of the datapath's maps, owned by the caller.
    [[nodiscard]] Result<UniqueFd> mapFd(DatapathMap which) const;
    [[nodiscard]] const ManagerOptions& options() const;

private:
    struct Impl;
    explicit Manager(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::ebpf
