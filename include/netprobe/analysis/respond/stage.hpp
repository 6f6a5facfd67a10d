// netprobe::analysis::respond::ResponseStage - the automatic response stage of the main
// pipeline (--respond=dry-run|on, with Kubernetes).
//
//   security view (events) --planFor--> requests --merge--> the policies wanted now
//   (one per action, namespace and selector; attackers and expiry updated by every event
//   that names them; expired ones end) --> ResponseView (/api/v1/responses, metrics)
//   --> k8s::ResponseApplier (a sink on its own thread: logs them in dry-run, creates,
//   replaces and deletes them through the API with --respond=on) --> its state, read back
//   here on the next run (which policy exists with which content, errors).
//
// Verification, from the policy stage's view of the same run (PolicyMonitor must come
// before this stage): the policy is in the agent's policy set (the watch saw it), and the
// conversations it denies - an attacker's to the selected pods, the quarantined pod's -
// are confirmed enforced (SYNs without answer) or found answered (an enforcement gap: the
// CNI does not enforce NetworkPolicies).
//
// Pure over its inputs (the security view, pod lookups, the applier's state); time is the
// snapshot's.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/analysis/respond/response.hpp>

namespace netprobe::analysis::respond {

// What the applier knows of one policy in the API.
struct AppliedPolicy {
    std::string ns, name;
    bool exists = false;         // created (or found at start) and not deleted since
    std::uint64_t hash = 0;      // the content it was created / replaced with (0: found at start)
    WallTime applied_at{};       // last create or replace
    WallTime deleted_at{};
    int http_status = 0;         // of the last request
    std::string error;           // of the last failed request ("" after a success)
    std::uint64_t attempts = 0;  // requests for it
};

struct ApplierState {
    bool listed = false;  // the policies a previous run left were listed (and expired ones deleted)
    std::map<std::string, AppliedPolicy> policies;  // "ns/name"
    std::uint64_t creates_total = 0, replaces_total = 0, deletes_total = 0, failures_total = 0;
    std::uint64_t adopted_total = 0;  // found at start, not expired: deleted when they expire
    std::string last_error;
};
using ApplierProvider = std::function<std::shared_ptr<const ApplierState>()>;

// A denied conversation the verification counted.
struct VerifiedFlow {
    util::Addr16 client{}, server{};
    std::uint8_t proto = 6;
    std::uint16_t port = 0;
    std::string client_pod, server_pod;
    std::string enforcement;  // pending, enforced, gap, unanswered
    std::uint64_t packets_out = 0, packets_in = 0;
};

struct Verification {
    // not_applied (dry-run, or not created yet), awaiting_policy_set (created; the watch has
    // not delivered it yet), no_traffic (in effect, nothing denied seen since), pending,
    // enforced (denied conversations confirmed dropped, no gap), unanswered (UDP one way only),
    // gap (a denied conversation was answered: not enforced), unverified (created, but
    // NetworkPolicy monitoring is off)
    std::string state = "not_applied";
    bool in_policy_set = false;
    std::uint64_t policy_generation = 0;  // of the first set that held it
    std::uint64_t denied = 0, enforced = 0, gaps = 0, unanswered = 0, pending = 0;
    std::vector<VerifiedFlow> flows;  // the latest (bounded)
};

struct Response {
    PolicySpec spec;
    std::uint64_t hash = 0;  // contentHash(spec)
    // dry_run, pending (to be created or replaced), active (exists with this content),
    // failed (the last request failed: error), and once ended: expired, superseded (a
    // quarantine of the same pods replaced it), deleted (the applier removed it)
    std::string state;
    std::string error;
    WallTime applied_at{}, ended_at{};
    std::vector<std::string> selected_pods;  // "ns/name" the selector selects now
    std::string note;                        // e.g. "not checked against other policies: ..."
    Verification verification;
};

struct Refusal {
    WallTime at{};
    std::uint64_t event_id = 0;
    security::EventType event_type{};
    Action action = Action::Isolate;
    std::string pod;
    std::vector<util::Addr16> attackers;
    std::string reason;
};

struct ResponseView {
    Mode mode = Mode::Off;
    std::chrono::seconds ttl{0};
    bool policy_monitoring = false;  // verification possible (the policy stage ran)
    std::vector<Response> active;    // the policies wanted now, by namespace and name
    std::vector<Response> ended;     // recently ended, newest first (bounded)
    std::vector<Refusal> refused;    // recent refusals, newest first (bounded)
    std::uint64_t responses_total = 0;  // policies planned (a new name)
    std::uint64_t updates_total = 0;    // attackers added to / expiry extended in a planned policy
    std::uint64_t expired_total = 0, superseded_total = 0, refused_total = 0;
    std::uint64_t events_total = 0;     // events considered (new, or seen again)
    std::shared_ptr<const ApplierState> applier;  // null before the applier's first tick (and in dry-run)
};

struct ResponseStageOptions {
    ResponseConfig config;
    std::function<std::shared_ptr<const security::SecurityView>()> security;
    PodLookup pods;
    PodSelection selection;
    ApplierProvider applier;  // may be empty (dry-run)
    std::size_t recent = 50;  // ended and refused kept
    std::size_t verified_flows = 10;
};

class ResponseStage final : public Stage {
public:
    explicit ResponseStage(ResponseStageOptions options);
    ~ResponseStage() override;
    [[nodiscard]] std::string_view name() const override { return "respond"; }
    void run(const collector::Snapshot& snapshot, Views& views) override;

private:
    struct State;
    std::unique_ptr<State> s_;
};

}  // namespace netprobe::analysis::respond
