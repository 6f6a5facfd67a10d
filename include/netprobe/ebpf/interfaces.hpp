// Network interfaces: listing, and following them as they come and go (netlink).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
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
