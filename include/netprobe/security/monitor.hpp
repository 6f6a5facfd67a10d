// netprobe::security::SecurityMonitor - runs the detectors on what the datapath
// reports: sec_events ring-buffer records (new flows, ICMP unreachables) and the
// per-address host_stats counters read every tick. Keeps the events for
// /api/v1/events, writes --events-log, renders netprobe_security_* metrics and,
// when mitigation is enabled, fills the XDP blocklist.
//
//   SecurityConfig cfg;                       // defaults, or loadSecurityConfig()
//   auto mon = SecurityMonitor::create(manager, cfg, {.events_log = "/var/log/np.jsonl"});
//   (*mon)->start();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <netprobe/ebpf/manager.hpp>
#include <netprobe/metrics/exposition.hpp>
#include <netprobe/security/config.hpp>
#include <netprobe/security/detect.hpp>
#include <netprobe/util/error.hpp>

#include <algorithm>
#include <cstring>
#include <unordered_map>

namespace netprobe::security {

using WallTime = std::chrono::system_clock::time_point;

struct SourceShare {
    Addr16 addr{};
    std::uint64_t packets = 0;
    std::uint64_t bytes = 0;
};

struct BlockRule {
    Cidr cidr;
    std::uint32_t rule_id = 0;
    std::uint64_t event_id = 0;
    WallTime added_at{};
    WallTime expires_at{};
};

// One incident, as /api/v1/events shows it.
struct SecurityEvent {
    std::uint64_t id = 0;
    EventType type{};
    Severity severity{};
    std::optional<Addr16> src;
    std::optional<Addr16> dst;
    std::vector<Addr16> targets;
    WallTime detected_at{};
    WallTime first_seen{};
    WallTime last_seen{};
    std::optional<WallTime> ended_at;
    Evidence evidence;
    std::vector<SourceShare> top_sources;  // floods: the largest senders to dst
    std::vector<std::string> blocked;      // CIDRs mitigation added for this event
};

struct EventQuery {
    std::optional<WallTime> since;  // events detected, updated or ended at or after
    std::vector<EventType> types;   // empty: all
    std::size_t limit = 100;
};

// Parses ?since= (RFC 3339 or Unix seconds), ?type= (comma-separated) and ?limit=.
[[nodiscard]] std::expected<EventQuery, std::string> parseEventQuery(
    const std::vector<std::pair<std::string, std::string>>& params, std::size_t max_limit = 10000);
[[nodiscard]] std::string eventJson(const SecurityEvent& e);  // one JSON object, one line
[[nodiscard]] std::string eventsJson(const std::vector<SecurityEvent>& events);

struct MonitorOptions {
    std::string events_log;  // append one JSON line per event (opened, ended); empty: none
    bool xdp_attached = true;  // false: mitigation cannot act (logged once)
    // The largest senders to a flood's target (at most 5). The agent answers from the
    // collector's latest snapshot (no copy of the flow table); without it the monitor
    // reads the kernel flow table (a transient copy of every flow).
    std::function<std::vector<SourceShare>(const Addr16& dst)> top_sources;
};

// Top senders to dst among flow records (packets and bytes summed per source).
template <class Flows, class Get>
std::vector<SourceShare> topSourcesOf(const Flows& flows, const Addr16& dst, Get get, std::size_t n = 5);

class SecurityMonitor {
public:
    [[nodiscard]] static Result<std::unique_ptr<SecurityMonitor>> create(ebpf::Manager& manager, SecurityConfig cfg,
                                                                       MonitorOptions opts = {});
    ~SecurityMonitor();
    SecurityMonitor(const SecurityMonitor&) = delete;
    SecurityMonitor& operator=(const SecurityMonitor&) = delete;

    void start();
    void stop();

    [[nodiscard]] std::vector<SecurityEvent> events(const EventQuery& q) const;  // newest first
    void renderMetrics(metrics::ExpositionWriter& w) const;
    [[nodiscard]] std::vector<BlockRule> blockRules() const;
    [[nodiscard]] const SecurityConfig& config() const;

private:
    struct Impl;
    explicit SecurityMonitor(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

template <class Flows, class Get>
std::vector<SourceShare> topSourcesOf(const Flows& flows, const Addr16& dst, Get get, std::size_t n) {
    std::unordered_map<Addr16, SourceShare, AddrHash> by;
    for (const auto& f : flows) {
        const auto [key, packets, bytes] = get(f);
        if (std::memcmp(key.dst_ip.v6, dst.data(), 16) != 0) continue;
        Addr16 src;
        std::memcpy(src.data(), key.src_ip.v6, 16);
        auto& s = by[src];
        s.addr = src;
        s.packets += packets;
        s.bytes += bytes;
    }
    std::vector<SourceShare> out;
    out.reserve(by.size());
    for (const auto& [a, s] : by) out.push_back(s);
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.packets > b.packets; });
    if (out.size() > n) out.resize(n);
    return out;
}

}  // namespace netprobe::security
