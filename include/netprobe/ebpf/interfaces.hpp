// Network interfaces: listing, and following them as they come and go (netlink).
#pragma once

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
