// The security stage: decodes the security source's records and counter deltas
// into observations, runs the detectors, keeps the incidents and plans the
// blocklist, and publishes it all as a SecurityView. Runs in its own pipeline, on
// the security collector's tick (a quarter second by default).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <unordered_map>
#include <vector>

#include <netprobe/analysis/domains/stage.hpp>
#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/security/blocklist.hpp>
#include <netprobe/analysis/security/config.hpp>
#include <netprobe/analysis/security/detect.hpp>
#include <netprobe/analysis/security/incidents.hpp>

namespace netprobe::analysis::security {

struct AnalyzerStats {
    std::uint64_t new_flows = 0;             // new-flow records consumed
    std::uint64_t new_flows_folded = 0;      // attempts those records announced besides their own (np_sec_event.folded)
    std::uint64_t unreachables = 0;          // ICMP error records consumed
    std::uint64_t records_total = 0;         // ring records received (since start)
    std::uint64_t records_dropped = 0;       // ring records the user-space queue could not take
    std::uint64_t host_read_errors = 0;
    std::uint64_t tracked_sources = 0, sources_evicted = 0;
    std::uint64_t tracked_probes = 0, probes_dropped = 0;
    std::uint64_t tracked_hosts = 0;
    std::uint64_t learned_peers = 0, peers_not_learned = 0;
    std::uint64_t intel_hits = 0;            // threat-intel records consumed
    std::uint64_t intel_tracked = 0, intel_dropped = 0;
    std::uint64_t intel_dns_hits = 0;        // DNS queries for covered names consumed
    std::uint64_t intel_dns_missed = 0;      // left the main pipeline's ring before this stage read them
    std::uint64_t policy_gaps = 0;           // enforcement gaps consumed (the policy stage's)
    std::uint64_t policy_gaps_missed = 0;    // left its list of recent gaps before this stage read them
    std::uint64_t evaluations = 0;
    double last_evaluation_seconds = 0;
};

struct SecurityView {
    MitigationMode mitigation = MitigationMode::Off;
    std::vector<EventPtr> events;  // newest first (bounded by max_events)
    std::array<std::uint64_t, kEventTypes> events_total{};
    std::array<std::uint64_t, kEventTypes> active{};
    std::vector<EventChange> changes;  // opened and ended by this evaluation
    AnalyzerStats stats;
    std::vector<PlannedBlock> blocklist;  // what mitigation should block now
    std::uint64_t blocks_planned_total = 0, blocks_expired_total = 0, blocks_refused_total = 0;
    // Threat intelligence (feeds, their counters); null without --intel-config.
    std::shared_ptr<const collector::IntelSample> intel;
};

class SecurityStage final : public Stage {
public:
    struct Options {
        SecurityConfig config;
        // The main pipeline's flow records: a flood's largest senders (may be empty).
        std::function<std::shared_ptr<const FlowView>()> flows;
        // The main pipeline's domain-indicator view: DNS hits (read once each, by their
        // sequence numbers) and the addresses they resolved (naming a flow's indicator).
        std::function<std::shared_ptr<const domains::DomainIntelView>()> domains;
        // The main pipeline's NetworkPolicy view: its enforcement gaps (read once each, by
        // the running count) become policy_enforcement_gap events (may be empty).
        std::function<std::shared_ptr<const PolicyView>()> policy;
    };
    explicit SecurityStage(Options options, TimePoint started = Clock::now());
    [[nodiscard]] std::string_view name() const override { return "security"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;
    [[nodiscard]] const SecurityConfig& config() const { return opts_.config; }

private:
    void observe(const collector::SecuritySample& s, const intel::IndicatorSet* intel,
                 const domains::DomainIntelView* domains,
                 std::unordered_map<Addr16, std::uint64_t, AddrHash>& new_flows);
    void observeDns(const domains::DomainIntelView& v);
    void observeGaps(const PolicyView& v);
    // Top senders to dst in the latest flow view. The view changes once a collection and
    // flood incidents ask every second: a view's answers are kept (per destination) until
    // the view is replaced (a scan of every flow record each, ~15% of the agent's CPU
    // under a flood that kept 50k records).
    [[nodiscard]] std::vector<SourceShare> topSources(const Addr16& dst);
    void planBlocks(const EventPtr& e, const std::vector<Addr16>& sources, WallTime now);

    Options opts_;
    ConnectionAnalyzer conn_;
    FloodAnalyzer flood_;
    IntelAnalyzer intel_;
    PolicyGapAnalyzer gaps_;
    std::uint64_t gaps_seen_ = 0;  // PolicyView::gaps_total read so far
    IncidentBook book_;
    BlocklistPlanner planner_;
    bool mitigating_ = false;
    AnalyzerStats stats_;
    std::uint64_t dns_seq_ = 0;  // the last DNS hit read
    std::weak_ptr<const FlowView> top_view_;  // the view top_cache_ answers for (its identity only)
    std::unordered_map<Addr16, std::vector<SourceShare>, AddrHash> top_cache_;
};

// Top senders to dst among flow records (packets and bytes summed per source, most
// packets first, at most n).
[[nodiscard]] std::vector<SourceShare> topSourcesOf(const FlowRecords& flows, const Addr16& dst,
                                                   std::size_t n = 5);

}  // namespace netprobe::analysis::security
