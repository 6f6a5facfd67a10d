// Network interfaces: listing, and following them as they come and go (netlink).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::ebpf {

struct InterfaceInfo {
    std::string name;
    std::uint32_t index = 0;
    bool up = false;
    bool loopback = false;
};

[[nodiscard]] Result<std::vector<InterfaceInfo>> listInterfaces();

struct LinkEvent {
    enum class Kind { Changed, Removed } kind = Kind::Changed;
    InterfaceInfo iface;
};

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
