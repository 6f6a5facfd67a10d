// Network interfaces: listing, and following them as they come and go (netlink).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::ebpf {

struct InterfaceInfo {
    std::string name;
    std::uint32_t index = 0;
    bool up = false;
    bool loopback = false;
    std::string kind;  // from netlink only (IFLA_INFO_KIND): "veth", "bridge", "vxlan", "ipip", ...; "" for a physical device
};

[[nodiscard]] Result<std::vector<InterfaceInfo>> listInterfaces();
// Every link of the caller's network namespace with its kind (an RTM_GETLINK dump).
[[nodiscard]] Result<std::vector<InterfaceInfo>> dumpLinks();

// A prefix of the caller's network namespace: an interface address with its prefix length
// (RTM_GETADDR) or a unicast route's destination in the main table (RTM_GETROUTE).
struct NetPrefix {
    std::array<std::uint8_t, 16> addr{};  // IPv4 mapped
    std::uint8_t len = 0;                 // prefix length in the family's bits
    std::uint32_t ifindex = 0;            // the address's link, the route's output link (0: none)
    bool route = false;                   // a route's destination (else an interface address)
};
// The prefixes of RTM_NEWADDR / RTM_NEWROUTE messages (same length checks as decodeLinkMessages).
[[nodiscard]] std::vector<NetPrefix> decodePrefixMessages(std::span<const std::byte> data);
// Every interface address, then every main-table unicast route (two dumps).
[[nodiscard]] Result<std::vector<NetPrefix>> dumpPrefixes();

// One queueing discipline (an RTM_GETQDISC dump answer): counters since it was created.
// The kernel keeps drops, overlimits and requeues in 32 bits (they wrap at 2^32).
struct QdiscInfo {
    std::uint32_t ifindex = 0;
    std::uint32_t handle = 0;
    std::uint32_t parent = 0;     // 0xffffffff (TC_H_ROOT): the device's root qdisc
    std::string kind;             // "fq_codel", "tbf", "htb", "mq", "noqueue", "clsact", ...
    std::uint64_t bytes = 0, packets = 0;  // sent (TCA_STATS_BASIC, TCA_STATS_PKT64)
    std::uint64_t drops = 0, overlimits = 0, requeues = 0;  // TCA_STATS_QUEUE
    std::uint32_t backlog_bytes = 0, backlog_packets = 0;   // queued now
    bool stats = false;           // the answer carried TCA_STATS2 (or the older TCA_STATS)
    [[nodiscard]] bool root() const { return parent == 0xffffffffu; }
};

// Every qdisc of the caller's network namespace (an RTM_GETQDISC dump).
[[nodiscard]] Result<std::vector<QdiscInfo>> dumpQdiscs();
// Decodes a buffer of rtnetlink messages (RTM_NEWQDISC; others skipped), with the same
// length checks as decodeLinkMessages.
[[nodiscard]] std::vector<QdiscInfo> decodeQdiscMessages(std::span<const std::byte> data);
// /sys/class/net/NAME/speed in Mb/s; nullopt when the device reports none (down, -1,
// no ethtool link settings).
[[nodiscard]] std::optional<std::uint32_t> readLinkSpeed(const std::string& name);

// A device's own counters: struct rtnl_link_stats64 as the kernel keeps it (since the
// device was created; an RTM_GETSTATS dump's IFLA_STATS_LINK_64), minus the compressed-packet
// counters of CSLIP/PPP. What `ip -s link` and /sys/class/net/IF/statistics show.
struct LinkCounters {
    std::uint32_t ifindex = 0;
    std::uint64_t rx_packets = 0, tx_packets = 0, rx_bytes = 0, tx_bytes = 0;
    std::uint64_t rx_errors = 0, tx_errors = 0, rx_dropped = 0, tx_dropped = 0;
    std::uint64_t multicast = 0, collisions = 0;
    std::uint64_t rx_length_errors = 0, rx_over_errors = 0, rx_crc_errors = 0, rx_frame_errors = 0,
                  rx_fifo_errors = 0, rx_missed_errors = 0;
    std::uint64_t tx_aborted_errors = 0, tx_carrier_errors = 0, tx_fifo_errors = 0, tx_heartbeat_errors = 0,
                  tx_window_errors = 0;
    std::uint64_t rx_nohandler = 0;
};
// The error and drop counters by their kernel names (the order `ip -s -s link` lists them):
// what the interface-errors diagnosis compares between collections.
struct LinkCounterField {
    const char* name;
    std::uint64_t LinkCounters::*field;
    bool rx;  // a receive-side counter
};
inline constexpr LinkCounterField kLinkErrorCounters[] = {
    {"rx_errors", &LinkCounters::rx_errors, true},
    {"rx_dropped", &LinkCounters::rx_dropped, true},
    {"rx_missed_errors", &LinkCounters::rx_missed_errors, true},
    {"rx_over_errors", &LinkCounters::rx_over_errors, true},
    {"rx_fifo_errors", &LinkCounters::rx_fifo_errors, true},
    {"rx_crc_errors", &LinkCounters::rx_crc_errors, true},
    {"rx_frame_errors", &LinkCounters::rx_frame_errors, true},
    {"rx_length_errors", &LinkCounters::rx_length_errors, true},
    {"rx_nohandler", &LinkCounters::rx_nohandler, true},
    {"tx_errors", &LinkCounters::tx_errors, false},
    {"tx_dropped", &LinkCounters::tx_dropped, false},
    {"tx_aborted_errors", &LinkCounters::tx_aborted_errors, false},
    {"tx_carrier_errors", &LinkCounters::tx_carrier_errors, false},
    {"tx_fifo_errors", &LinkCounters::tx_fifo_errors, false},
    {"tx_heartbeat_errors", &LinkCounters::tx_heartbeat_errors, false},
    {"tx_window_errors", &LinkCounters::tx_window_errors, false},
    {"collisions", &LinkCounters::collisions, false},
};

// Every link's counters in the caller's network namespace (one RTM_GETSTATS dump asking
// for IFLA_STATS_LINK_64 only: about 200 bytes per link), sorted by ifindex.
[[nodiscard]] Result<std::vector<LinkCounters>> dumpLinkCounters();
// Decodes a buffer of rtnetlink messages (RTM_NEWSTATS; others skipped), with the same
// length checks as decodeLinkMessages; a shorter stats structure (an older kernel) leaves
// the counters it lacks at 0.
[[nodiscard]] std::vector<LinkCounters> decodeLinkStatsMessages(std::span<const std::byte> data);

struct LinkEvent {
    enum class Kind { Changed, Removed } kind = Kind::Changed;
    InterfaceInfo iface;
};

// Decodes a buffer of rtnetlink messages (RTM_NEWLINK/RTM_DELLINK; others skipped).
// Every length is checked: truncated or malformed messages end the walk, never a read
// past the buffer (fuzzed: tests/fuzz/netlink_link_fuzz.cpp).
[[nodiscard]] std::vector<LinkEvent> decodeLinkMessages(std::span<const std::byte> data);

// Subscribes to RTNLGRP_LINK. Open it before listInterfaces() so that no change
// between the listing and the subscription is missed.
class LinkWatcher {
public:
    [[nodiscard]] static Result<LinkWatcher> open();
    LinkWatcher(LinkWatcher&&) noexcept;
    LinkWatcher& operator=(LinkWatcher&&) noexcept;
    ~LinkWatcher();
    // Waits up to timeout for messages; returns the events read (maybe none).
    [[nodiscard]] Result<std::vector<LinkEvent>> poll(std::chrono::milliseconds timeout);

private:
    LinkWatcher() = default;
    int fd_ = -1;
};

}  // namespace netprobe::ebpf
