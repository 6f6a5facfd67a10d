// Detectors as pure state machines over plain observations: no BPF, no threads,
// no clock of their own. The security stage (stage.hpp) feeds them what the security
// source read; unit tests feed them recorded or synthetic observations.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <list>
#include <map>
#include <optional>
#include <set>
#include <unordered_set>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <variant>
#include <vector>

#include <netprobe/abi.h>
#include <netprobe/analysis/security/config.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis::security {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;
using util::Addr16;

enum class EventType {
    PortScan,
    SynFlood,
    UdpFlood,
    IcmpFlood,
    TrafficSurge,
    ConnectionFailures,
    FanOut,
    NewPeer,
    ThreatIntelMatch,
    PolicyEnforcementGap
};
inline constexpr int kEventTypes = 10;
// "port_scan, syn_flood, ..." (for error messages)
[[nodiscard]] std::string eventTypeNames();
[[nodiscard]] const char* toString(EventType t);
[[nodiscard]] std::optional<EventType> parseEventType(std::string_view s);

enum class ScanType { Syn, Connect, Fin, Null, Xmas, Ack, Udp };
[[nodiscard]] const char* toString(ScanType t);

enum class Severity { Low, Medium, High, Critical };
[[nodiscard]] const char* toString(Severity s);

using EvidenceValue = std::variant<std::int64_t, double, std::string, std::vector<std::string>>;
using Evidence = std::map<std::string, EvidenceValue>;

struct AddrHash {
    std::size_t operator()(const Addr16& a) const noexcept;
};

// What a detector concluded. `key` identifies the incident: the same key from a
// later evaluation updates the same event instead of opening a new one.
struct Finding {
    EventType type{};
    Severity severity = Severity::Medium;
    std::string key;
    std::optional<Addr16> src;
    std::optional<Addr16> dst;
    std::vector<Addr16> targets;  // several victims (horizontal scans, fan-out)
    TimePoint first_seen{};
    TimePoint last_seen{};
    Evidence evidence;
    bool instant = false;  // a one-off observation (new_peer): over as soon as reported
};

// ---- observations (decoded np_sec_event records and host counter deltas) ----

// First packet of a new TCP/UDP flow.
struct FlowStart {
    TimePoint at{};
    Addr16 src{}, dst{};
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t proto = 0;      // 6 or 17
    std::uint8_t tcp_flags = 0;
    std::uint8_t tcp_doff = 0;   // TCP header length in 32-bit words
    std::uint16_t payload_len = 0;  // bytes after the TCP/UDP header
};

// ICMP destination unreachable (or, with time_exceeded, an ICMP time exceeded: a
// router on the path answered, as for traceroute) sent by `reporter` about a packet
// inner_src -> inner_dst.
struct Unreachable {
    TimePoint at{};
    Addr16 reporter{};
    Addr16 inner_src{}, inner_dst{};
    std::uint16_t inner_sport = 0, inner_dport = 0;
    std::uint8_t inner_proto = 0;
    bool time_exceeded = false;
};

// A flow whose source or destination is a threat-intel indicator (an NP_SEC_INTEL
// record: per flow entry, CPU and indicator-set generation).
struct IntelHit {
    TimePoint at{};
    Addr16 src{}, dst{};
    std::uint16_t sport = 0, dport = 0;
    std::uint8_t proto = 0;
    std::uint8_t match = 0;  // NP_INTEL_MATCH_* bits
    std::uint16_t feed = 0;  // the kernel's feed index (when the set no longer names it)
};

// What the stage knows of an indicator when it decodes a hit.
struct IntelIndicatorInfo {
    std::string indicator;  // "203.0.113.0/24"
    std::string feed;
    std::uint8_t confidence = 100;
    bool block = false;
    std::string note;
};

// ---- threat-intel matches ----
// One incident per (feed, indicator, local address, direction), active while its
// flows keep starting (within `hold` of the latest): the remote end, the flows seen.
// A DNS query for a name a domain indicator covers (domains::DomainHit, decoded).
struct IntelDnsQuery {
    TimePoint at{};
    Addr16 client{}, server{};
    std::uint16_t server_port = 53;
    std::string qname, qtype, rcode;
    std::vector<Addr16> addresses;  // the answer's A/AAAA
};

class IntelAnalyzer {
public:
    explicit IntelAnalyzer(std::chrono::seconds hold = std::chrono::seconds(60), std::size_t max_tracked = 4096)
        : hold_(hold), max_tracked_(max_tracked) {}
    void observe(const IntelHit& h, const IntelIndicatorInfo& info);
    // A query from `client` (the local end: outbound) joins the incident of the flows to
    // the addresses it resolved, which carry the same indicator (the domain).
    void observe(const IntelDnsQuery& q, const IntelIndicatorInfo& info);
    [[nodiscard]] std::vector<Finding> evaluate(TimePoint now);
    [[nodiscard]] std::size_t tracked() const { return hits_.size(); }
    [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

private:
    struct Track {
        IntelIndicatorInfo info;
        bool inbound = true;  // traffic from the indicator (else to it)
        Addr16 local{}, remote{};
        TimePoint first{}, last{};
        std::vector<std::string> flows;  // the first distinct 5-tuples (at most 20)
        std::unordered_set<std::uint64_t> flow_keys;  // hashes of the distinct 5-tuples (bounded)
        std::uint64_t flows_total = 0;   // distinct (exact up to kMaxFlowKeys, then every record counts)
        std::set<std::uint16_t> ports;   // the remote ends' ports (bounded)
        std::uint64_t queries_total = 0; // DNS queries for the indicator's names
        std::vector<std::string> queries;  // the first few ("evil.example A NOERROR via 198.18.0.1:53")
        std::set<Addr16> resolved;       // what they answered (bounded)
    };
    Track* track(const IntelIndicatorInfo& info, const Addr16& local, const Addr16& remote, bool inbound, TimePoint at);
    static constexpr std::size_t kMaxFlowKeys = 4096;
    std::chrono::seconds hold_;
    std::size_t max_tracked_;
    std::map<std::string, Track> hits_;
    std::uint64_t dropped_ = 0;
};

// ---- NetworkPolicy enforcement gaps (the main pipeline's policy stage) ----

// A conversation the NetworkPolicies deny that was answered anyway (PolicyMonitor's gap).
struct PolicyGapObservation {
    TimePoint at{};                     // when the gap was decided (monotonic)
    Addr16 client{}, server{};
    std::uint8_t proto = 6;
    std::uint16_t port = 0;
    std::string client_pod, server_pod;  // "ns/name" or ""
    std::vector<std::string> policies;   // the policies that deny it (the isolating side's)
    std::string side;                    // "ingress" or "egress": the side that denies
    std::uint64_t packets_out = 0, packets_in = 0;
};

// One incident per denying side's pod and its policies: "shop/default-deny is not enforced
// for shop/db". Active while new gaps keep coming (hold).
class PolicyGapAnalyzer {
public:
    explicit PolicyGapAnalyzer(std::chrono::seconds hold = std::chrono::seconds(300), std::size_t max_tracked = 1024)
        : hold_(hold), max_tracked_(max_tracked) {}
    void observe(const PolicyGapObservation& g);
    [[nodiscard]] std::vector<Finding> evaluate(TimePoint now);
    [[nodiscard]] std::size_t tracked() const { return gaps_.size(); }
    [[nodiscard]] std::uint64_t dropped() const { return dropped_; }

private:
    struct Track {
        PolicyGapObservation first;
        TimePoint last{};
        std::uint64_t conversations = 0;
        std::vector<std::string> samples;  // the first few conversations
        std::set<std::string> clients;     // bounded
    };
    std::chrono::seconds hold_;
    std::size_t max_tracked_;
    std::map<std::string, Track> gaps_;
    std::uint64_t dropped_ = 0;
};

// What a first TCP/UDP packet says about itself.
enum class FirstPacket { SynRaw, SynStack, Fin, Null, Xmas, AckOnly, Udp, SynAck, Rst, Other };
[[nodiscard]] FirstPacket classify(const FlowStart& f);

// ---- port scans, failed connections, fan-out, new peers ----

class ConnectionAnalyzer {
public:
    explicit ConnectionAnalyzer(const SecurityConfig& cfg, TimePoint started);

    void observe(const FlowStart& f);
    void observe(const Unreachable& u);
    // Evaluates every source at `now`: findings for incidents in progress.
    // Sources whose incident is over are simply not reported any more.
    [[nodiscard]] std::vector<Finding> evaluate(TimePoint now);
    // new_peer findings since the last call (instant events).
    [[nodiscard]] std::vector<Finding> takeNewPeers();

    [[nodiscard]] std::size_t sources() const { return sources_.size(); }
    [[nodiscard]] std::uint64_t sourcesEvicted() const { return evicted_; }
    [[nodiscard]] std::size_t learned() const { return peers_.size(); }
    // Client/server pairs not learned (nor reported) because learned_max was reached.
    [[nodiscard]] std::uint64_t notLearned() const { return not_learned_; }
    [[nodiscard]] std::size_t probes() const { return probes_total_; }
    [[nodiscard]] std::uint64_t probesDropped() const { return probes_dropped_; }

private:
    enum class Outcome : std::uint8_t { Pending, Refused, Unreachable, Answered };
    struct ProbeKey {
        Addr16 dst;
        std::uint16_t port;
        std::uint8_t proto;
        friend bool operator==(const ProbeKey&, const ProbeKey&) = default;
    };
    struct ProbeKeyHash {
        std::size_t operator()(const ProbeKey& k) const noexcept;
    };
    struct Probe {
        TimePoint at{};
        ScanType technique{};
        Outcome outcome = Outcome::Pending;
    };
    struct Source {
        Addr16 addr{};
        std::unordered_map<ProbeKey, Probe, ProbeKeyHash> probes;
        std::map<std::tuple<Addr16, std::uint16_t, std::uint16_t>, TimePoint> failures;  // (dst, dport, sport)
        std::unordered_map<Addr16, TimePoint, AddrHash> peers;                       // fan-out
        TimePoint last_probe{};
        bool scanning = false;  // a port-scan incident is open
        std::list<Addr16>::iterator lru;
    };
    Source& source(const Addr16& a);
    Source* find(const Addr16& a);
    void answer(const Addr16& prober, const Addr16& target, std::uint16_t port, std::uint8_t proto, Outcome o,
                TimePoint at);
    void learnPeer(const Addr16& client, const Addr16& server, std::uint16_t port, TimePoint at);

    const SecurityConfig& cfg_;
    TimePoint started_;
    std::unordered_map<Addr16, Source, AddrHash> sources_;
    std::list<Addr16> lru_;  // most recently active first
    std::uint64_t evicted_ = 0;
    std::size_t probes_total_ = 0;      // probes recorded over all sources
    std::uint64_t probes_dropped_ = 0;  // not recorded: a bound was reached
    std::uint64_t not_learned_ = 0;
    std::unordered_set<std::string> peers_;     // "client|server|port" learned
    std::unordered_set<std::string> services_;  // "server|port" learned
    std::vector<Finding> new_peers_;
};

// ---- floods ----

// Counter deltas of one address over `seconds`.
struct HostRates {
    Addr16 addr{};
    double seconds = 0;
    np_host_stats delta{};
    std::uint64_t new_flows = 0;  // TCP/UDP flows towards addr that began in the interval
};

class FloodAnalyzer {
public:
    explicit FloodAnalyzer(const SecurityConfig& cfg) : cfg_(cfg) {}
    // One evaluation: the deltas of every address seen since the last one.
    [[nodiscard]] std::vector<Finding> evaluate(const std::vector<HostRates>& hosts, TimePoint now);
    [[nodiscard]] std::size_t tracked() const { return hosts_.size(); }
    // The baseline pps of an address (tests, API).
    [[nodiscard]] std::optional<double> baseline(const Addr16& a) const;

private:
    struct Attack {
        TimePoint first_seen{}, last_seen{};
        bool confirmed = false;  // held for flood_min_duration
        double peak_pps = 0;
        Evidence evidence;
    };
    struct Host {
        double ewma_pps = 0;
        double history_s = 0;  // seconds of baseline history
        TimePoint last_update{};
        std::map<EventType, Attack> attacks;
        // The last flood_min_duration of samples: decisions use the rate over it, so
        // one short dip (a jittery sender) neither delays nor ends an attack.
        std::deque<HostRates> window;
        double window_s = 0;
    };
    void push(Host& h, const HostRates& r) const;
    // Which thresholds rates r crosses (rates over r.seconds), with the rate that crossed.
    [[nodiscard]] std::vector<std::pair<EventType, double>> crossed(const HostRates& r, const Host& h) const;
    const SecurityConfig& cfg_;
    std::unordered_map<Addr16, Host, AddrHash> hosts_;
};

}  // namespace netprobe::analysis::security
