// The blocklist planner: which source prefixes mitigation should block, until when.
// Pure: it decides; ebpf::Mitigator makes the kernel's blocklist match the plan.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <netprobe/analysis/security/config.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis::security {

struct PlannedBlock {
    Cidr cidr;
    std::uint64_t event_id = 0;  // the event that asked first
    std::chrono::system_clock::time_point added_at{}, expires_at{};
};

class BlocklistPlanner {
public:
    // capacity: rules the kernel blocklist holds.
    BlocklistPlanner(const SecurityConfig& cfg, std::size_t capacity) : cfg_(cfg), capacity_(capacity) {}

    // Asks to block addr (a host prefix) for the configured duration, for event_id.
    // Returns the CIDR text, or "" when not planned: mitigation off, an allow-listed
    // address, or the blocklist full (counted).
    std::string block(const util::Addr16& addr, std::uint64_t event_id, std::chrono::system_clock::time_point now);
    // Drops the rules that expired by now (counted).
    void expire(std::chrono::system_clock::time_point now);

    [[nodiscard]] std::vector<PlannedBlock> plan() const;
    [[nodiscard]] std::uint64_t plannedTotal() const { return planned_; }
    [[nodiscard]] std::uint64_t expiredTotal() const { return expired_; }
    [[nodiscard]] std::uint64_t refusedTotal() const { return refused_; }  // blocklist full

private:
    const SecurityConfig& cfg_;
    std::size_t capacity_;
    std::map<std::string, PlannedBlock> rules_;  // cidr text -> rule
    std::uint64_t planned_ = 0, expired_ = 0, refused_ = 0;
};

}  // namespace netprobe::analysis::security
