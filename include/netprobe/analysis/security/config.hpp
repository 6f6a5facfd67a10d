// Security analytics configuration: thresholds, windows, learning period,
// allow-lists and mitigation, from flags and a YAML file (docs/security.md).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis::security {

using Duration = std::chrono::milliseconds;

// An IPv4 or IPv6 prefix over the ABI's 16-byte (IPv4-mapped) addresses.
struct Cidr {
    util::Addr16 addr{};
    std::uint8_t prefix = 128;  // over the 128-bit mapped form (IPv4 /24 is 120)

    [[nodiscard]] bool contains(const util::Addr16& a) const;
    [[nodiscard]] std::string str() const;  // "198.18.0.0/24", "fd6e:7072::/32"
    friend bool operator==(const Cidr&, const Cidr&) = default;
};
// "198.18.0.0/24", "fd6e::/32", or a bare address (a host prefix).
[[nodiscard]] std::optional<Cidr> parseCidr(std::string_view text);

// Static flood thresholds; 0 disables one. A host group overrides them for the
// destinations it contains (the first group that contains the address wins).
struct FloodThresholds {
    double syn_pps = 1000;   // SYN (no ACK) packets/s to one destination ...
    double syn_ratio = 0.5;  // ... that are at least this share of its TCP packets
    double udp_pps = 5000;
    double icmp_pps = 1000;
    double pps = 0;          // any packets/s (traffic_surge)
    double mbps = 0;         // Mbit/s (traffic_surge)
    double flows = 0;        // new TCP/UDP flows/s towards it (traffic_surge)
};

struct HostGroup {
    std::string name;
    std::vector<Cidr> cidrs;
    FloodThresholds thresholds;
};

enum class MitigationMode { Off, DryRun, On };
[[nodiscard]] const char* toString(MitigationMode m);
[[nodiscard]] std::optional<MitigationMode> parseMitigationMode(std::string_view s);

struct SecurityConfig {
    bool enabled = true;
    Duration tick{250};                 // host counters read and detectors evaluated

    // Port scans: distinct (host, port) pairs a source probed that were refused
    // (RST / ICMP unreachable) or never answered, within the window.
    Duration scan_window{10000};
    std::uint32_t scan_vertical_ports = 20;   // on one host
    std::uint32_t scan_horizontal_hosts = 10; // one port on this many hosts
    Duration scan_unanswered_after{1000};     // a probe not answered by then counts
    Duration scan_end_after{5000};            // no new probe for this long: scan over

    // Floods: static thresholds and an adaptive baseline (EWMA of pps per destination).
    FloodThresholds flood;
    std::vector<HostGroup> host_groups;
    double surge_factor = 8;            // pps above factor x baseline ...
    double surge_min_pps = 20000;       // ... and at least this ...
    double surge_asymmetry = 4;         // ... and at least this x the packets the destination sends
    Duration baseline_half_life{60000}; // EWMA half-life
    Duration baseline_warmup{30000};    // no adaptive decision before this much history
    Duration flood_min_duration{1000};  // above thresholds this long (every tick): attack
    Duration flood_end_after{3000};     // below thresholds this long: attack over

    // Abnormal connections
    Duration conn_window{10000};
    std::uint32_t conn_failures = 20;   // refused/unreachable connection attempts per source
    Duration fanout_window{60000};
    std::uint32_t fanout_peers = 100;   // distinct hosts one source opened flows to
    Duration learning_period{600000};   // new_peer: quiet while learning
    bool new_peer = true;
    std::uint32_t learned_max = 65536;  // peers/services remembered

    std::vector<Cidr> allow;            // never flagged (as source or target)

    // Response
    MitigationMode mitigate = MitigationMode::Off;
    Duration block_duration{600000};

    // Bounds
    std::uint32_t max_sources = 8192;   // per-source scan/connection state (LRU)
    std::uint32_t max_probes_per_source = 4096;   // probes (and failures, peers) per source
    std::uint32_t max_probes_total = 100000;     // probes over all sources (~6 MB)
    std::uint32_t max_hosts = 16384;    // per-destination flood state
    std::uint32_t max_events = 1000;    // events kept for /api/v1/events

    [[nodiscard]] const FloodThresholds& thresholdsFor(const util::Addr16& dst) const;
    [[nodiscard]] bool allowed(const util::Addr16& a) const;
};

// Parses YAML text into cfg (fields absent keep their value). Errors name the
// line and the reason: "line 4: scan.vertical_ports: expected a positive integer".
[[nodiscard]] Result<void> parseSecurityConfig(std::string_view yaml, SecurityConfig& cfg);
[[nodiscard]] Result<void> loadSecurityConfig(const std::string& path, SecurityConfig& cfg);
// One setting in the --security-set form, "scan.vertical_ports=50" or
// "allow=[198.18.0.0/24]": the dotted key becomes nested YAML, parsed and checked
// like the file (same messages).
[[nodiscard]] Result<void> applySecuritySetting(std::string_view key_value, SecurityConfig& cfg);
// Checks relations between values (e.g. tick shorter than the windows).
[[nodiscard]] Result<void> validate(const SecurityConfig& cfg);

}  // namespace netprobe::analysis::security
