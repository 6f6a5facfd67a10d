// netprobe::analysis::respond - automatic response to security events through Kubernetes
// NetworkPolicies: the model, the planning rules and the manifests. Pure: no API calls, no
// clock (time comes in).
//
// What an event asks for (planFor):
//  - isolate: an attacker (a port scan's or failing-connections' source, a flood's top
//    senders, an inbound threat-intel indicator) targets pods of this node. The response is
//    one policy per (namespace, pod selector) that keeps admitting everything else and
//    leaves the attackers out:
//      ingress: from ipBlock 0.0.0.0/0 except <attackers>/32, ipBlock ::/0 except <...>/128,
//               and namespaceSelector {} (every pod) unless an attacker is itself a pod.
//    NetworkPolicies only allow, so a "deny" works only on a pod that no other policy
//    isolates for ingress: on an isolated pod the allow-all-but rule would widen what the
//    other policies allow. Such a pod is refused, with the policies that isolate it named.
//  - quarantine: a pod of this node is the attacker (it scans, or talks to a threat-intel
//    indicator): one policy isolating it both ways, admitting only DNS (port 53, UDP and TCP)
//    out. It supersedes an isolate policy of the same selector (policies add up: the
//    isolate policy's allow rule would open the quarantined pod's ingress again).
// A pod is selected by its labels (NetworkPolicy cannot name a pod), so every pod with the
// same labels - the replicas of a workload - is covered; the response lists them.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <netprobe/analysis/security/incidents.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::analysis::respond {

using WallTime = std::chrono::system_clock::time_point;

enum class Mode : std::uint8_t { Off, DryRun, On };
[[nodiscard]] std::string_view toString(Mode m);  // off, dry-run, on

enum class Action : std::uint8_t { Isolate, Quarantine };
[[nodiscard]] std::string_view toString(Action a);  // isolate, quarantine

struct ResponseConfig {
    Mode mode = Mode::Off;
    // How long a response lasts after its event was last seen (an active event extends it).
    std::chrono::seconds ttl{3600};
    // Event types that get a response (the others are only reported).
    std::vector<security::EventType> events = {security::EventType::PortScan, security::EventType::SynFlood,
                                               security::EventType::UdpFlood, security::EventType::IcmpFlood,
                                               security::EventType::ThreatIntelMatch};
    security::Severity min_severity = security::Severity::Medium;
    bool quarantine = true;        // quarantine pods of this node that attack (else only isolate)
    std::size_t max_policies = 50; // policies at once; further responses are refused
    std::size_t max_attackers = 100;  // addresses per isolate policy (the oldest expire first)
    std::size_t flood_sources = 5;    // a flood's top senders isolated
    std::string node;              // labels the policies (netprobe.io/node): this agent's
};

// A pod as the responder sees it.
struct PodRef {
    std::string ns, name, node;
    std::map<std::string, std::string> labels;
    std::vector<util::Addr16> ips;
    bool local = false;  // runs on this node
};
// The pod owning an address (this node's or another's), or nullopt.
using PodLookup = std::function<std::optional<PodRef>(const util::Addr16&)>;
// The pods a selector (matchLabels) selects in a namespace, "ns/name", sorted.
using PodSelection = std::function<std::vector<std::string>(const std::string& ns,
                                                            const std::map<std::string, std::string>& labels)>;

// What one event asks for: one entry per (action, namespace, selector) it touches.
struct Request {
    Action action = Action::Isolate;
    std::string ns;
    std::map<std::string, std::string> selector;  // the pod's labels
    std::string pod;                              // "ns/name" of the pod the event involved
    util::Addr16 pod_ip{};
    std::vector<util::Addr16> attackers;          // isolate: the sources left out
    std::vector<bool> attacker_is_pod;            // parallel to attackers
};

// Whether `client` opened a conversation to `server` (the topology's orientation: who sent the
// SYN, or the first datagram). An outbound threat-intel match quarantines a pod only when the
// pod opened the conversation: a pod that answered a listed address's probes is its victim.
using Initiated = std::function<bool(const util::Addr16& client, const util::Addr16& server)>;

// The requests an event makes (none when its type or severity is not configured, when no pod
// of this node is involved, or the pod has no labels to select it by). Pure.
[[nodiscard]] std::vector<Request> planFor(const security::SecurityEvent& e, const ResponseConfig& cfg,
                                           const PodLookup& pods, const Initiated& initiated);

// The policy's name: netprobe-<action>-<first 8 hex of a hash of namespace and selector>.
[[nodiscard]] std::string policyName(Action a, const std::string& ns, const std::map<std::string, std::string>& selector);

// An attacker held by an isolate policy.
struct Attacker {
    util::Addr16 addr{};
    bool is_pod = false;
    std::uint64_t event_id = 0;  // the latest event naming it
    WallTime expires{};
};

// The content of one generated NetworkPolicy.
struct PolicySpec {
    Action action = Action::Isolate;
    std::string ns, name;
    std::map<std::string, std::string> selector;
    std::vector<Attacker> attackers;  // isolate, sorted by address
    std::vector<std::uint64_t> events;  // event ids that asked for it (bounded, newest last)
    std::string event_types;            // "port_scan,threat_intel_match"
    std::string pod;                    // the pod the first event involved
    std::string node;
    WallTime created{}, expires{};      // expires: the latest of its attackers' (isolate)
};

// The NetworkPolicy object (apiVersion, kind, metadata with labels and annotations, spec):
// the body of the API request and of /api/v1/responses.
[[nodiscard]] nlohmann::json manifest(const PolicySpec& p);
// The same as YAML (what `kubectl get -o yaml` would show of its spec).
[[nodiscard]] std::string manifestYaml(const PolicySpec& p);
// A hash of what the API object holds (spec, labels, annotations): a change means the object
// must be replaced. (The stage moves `expires` in steps, so that an active event does not
// replace the object on every run.)
[[nodiscard]] std::uint64_t contentHash(const PolicySpec& p);

// Labels every generated policy carries; the applier lists and cleans up by them.
inline constexpr std::string_view kManagedByLabel = "app.kubernetes.io/managed-by";
inline constexpr std::string_view kManagedByValue = "netprobe";
inline constexpr std::string_view kActionLabel = "netprobe.io/response";
inline constexpr std::string_view kNodeLabel = "netprobe.io/node";
inline constexpr std::string_view kExpiresAnnotation = "netprobe.io/expires-at";

}  // namespace netprobe::analysis::respond
