// Kubernetes NetworkPolicy (networking.k8s.io/v1): the model, its parser from API JSON, and a
// pure evaluator answering "what do the policies say about this flow?" for observed flows.
// The Kubernetes documentation (concepts/services-networking/network-policies and the
// NetworkPolicySpec API reference) is the specification; decisions it leaves open are noted
// where they are made (see "Semantics" below).
//
// Semantics (what PolicySet::evaluate implements):
//  - Isolation is per direction: a pod is isolated for ingress (egress) when at least one
//    policy of its namespace selects it (spec.podSelector over the pod's labels) and lists
//    Ingress (Egress) in its policyTypes. A pod that is not isolated for a direction allows
//    everything in that direction (NotSelected).
//  - Policies are additive: traffic to (from) an isolated pod is allowed when at least one
//    rule of at least one selecting policy of that direction matches it; nothing denies.
//    `ingress: []` or no ingress with policyTypes [Ingress] allows nothing (the pod is only
//    isolated); the same for egress.
//  - A rule matches when its peers AND its ports match. No / empty `from` (`to`): every peer;
//    no / empty `ports`: every port and protocol (ICMP included: the rule does not restrict by
//    port). Peers are ORed, ports are ORed.
//  - A flow between two pods needs the source's egress AND the destination's ingress.
//  - Peers: podSelector alone = pods of the policy's namespace; namespaceSelector alone = all
//    pods of the matching namespaces; both in one peer = the matching pods of the matching
//    namespaces (AND); ipBlock = addresses in cidr and in none of the except prefixes, of the
//    same family (an IPv6 ::/0 does not cover IPv4).
//  - Ports: protocol (default TCP) must equal the flow's; a numeric port with endPort is an
//    inclusive range; a named port resolves on the pod that owns the destination port: for
//    ingress the selected pod itself, for egress the destination (peer) pod. It resolves to a
//    container port of that name AND protocol; when it does not resolve (no such port, or the
//    destination is not a known pod) the port entry matches nothing.
//  - hostNetwork pods are not pods for policies: their IP is their node's, shared by every
//    hostNetwork pod there, so they are never selected (spec.podSelector or a peer's
//    podSelector) and their traffic is seen as the node's address (ipBlock can match it).
//  - Always allowed (the documentation's exceptions): traffic between an isolated pod and the
//    node it runs on (node addresses are given to PolicySet, and a hostNetwork pod's IP is
//    taken as its node's address), and traffic of a pod to itself. These are reported as
//    Allowed with an Exemption and no policy names.
//  - ipBlock and pod IPs (implementation-defined: the documentation says ipBlock is meant for
//    cluster-external addresses because pod IPs are ephemeral). Default: an ipBlock matches an
//    address whatever it belongs to, pod IPs included (the plain reading of the API field, and
//    what the reference implementation and Calico do). With
//    PolicySetOptions::ip_blocks_match_pod_ips = false, an ipBlock never matches the address of
//    a known (non-hostNetwork) pod, which can then only be admitted by pod/namespace selectors
//    (Cilium's behaviour).
//  - Namespace labels: every namespace carries kubernetes.io/metadata.name=<name> (set by the
//    API server since 1.21); it is added when a NamespaceInfo lacks it, and a pod whose
//    namespace is not in the list is matched against that label alone.
//  - The flow is given in its original direction (the connection's initiator is src, the
//    server port is dport): reply traffic of an allowed connection is allowed by the CNI's
//    connection tracking and is not evaluated. Addresses are those seen after Service DNAT
//    (pod IPs), as policies never see ClusterIPs.
//  - When pods share an IP (a terminating pod's IP handed to a new one), the later one in the
//    list given to PolicySet owns it, as in PodStore.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <netprobe/k8s/store.hpp>
#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::k8s {

// ---- model ----

struct LabelRequirement {
    enum class Op : std::uint8_t { In, NotIn, Exists, DoesNotExist };
    std::string key;
    Op op = Op::Exists;
    std::vector<std::string> values;  // non-empty for In/NotIn, empty for Exists/DoesNotExist
    bool operator==(const LabelRequirement&) const = default;
};

// metav1.LabelSelector. All terms are ANDed; the empty selector ({}) selects everything.
// Where the API allows "no selector" (a peer's podSelector / namespaceSelector) the field is
// std::optional and nullopt means "not set", which is not the same as {}.
struct LabelSelector {
    std::map<std::string, std::string> match_labels;
    std::vector<LabelRequirement> match_expressions;
    [[nodiscard]] bool empty() const { return match_labels.empty() && match_expressions.empty(); }
    bool operator==(const LabelSelector&) const = default;
};

// matchLabels: key present with that value. In: key present with a listed value. NotIn: key
// absent or its value not listed. Exists / DoesNotExist: key present / absent.
[[nodiscard]] bool selectorMatches(const LabelSelector& sel, const std::map<std::string, std::string>& labels);

// A CIDR over the 16-byte form (IPv4 mapped), host bits cleared; v4 records the family so that
// an IPv6 prefix never covers IPv4-mapped addresses.
struct IpPrefix {
    util::Addr16 addr{};
    std::uint8_t len = 0;  // over 128 bits: an IPv4 /24 is 120
    bool v4 = false;
    [[nodiscard]] bool contains(const util::Addr16& a) const;
    [[nodiscard]] std::string str() const;  // "10.0.0.0/24", "2001:db8::/32"
    bool operator==(const IpPrefix&) const = default;
};
// "10.0.0.0/24", "2001:db8::/64" (the prefix length is required, as in the API). Host bits are
// cleared ("10.0.0.1/24" -> 10.0.0.0/24).
[[nodiscard]] std::optional<IpPrefix> parseIpPrefix(std::string_view text);

struct IpBlock {
    IpPrefix cidr;
    std::vector<IpPrefix> except;  // each strictly inside cidr (validated)
    [[nodiscard]] bool contains(const util::Addr16& a) const;
    bool operator==(const IpBlock&) const = default;
};

// NetworkPolicyPeer: ip_block is exclusive with the selectors; at least one field is set.
struct PolicyPeer {
    std::optional<LabelSelector> pod_selector;
    std::optional<LabelSelector> namespace_selector;
    std::optional<IpBlock> ip_block;
    bool operator==(const PolicyPeer&) const = default;
};

// NetworkPolicyPort. No port (and no name): every port of the protocol.
struct PolicyPort {
    std::uint8_t protocol = 6;                // IPPROTO_TCP (default), UDP 17, SCTP 132
    std::optional<std::uint16_t> port;        // numeric port ...
    std::optional<std::uint16_t> end_port;    // ... up to end_port inclusive (only with a numeric port)
    std::string port_name;                    // or a named container port (IANA_SVC_NAME)
    bool operator==(const PolicyPort&) const = default;
};

// An ingress rule (peers = from) or egress rule (peers = to). Empty peers: every peer;
// empty ports: every port.
struct PolicyRule {
    std::vector<PolicyPeer> peers;
    std::vector<PolicyPort> ports;
    bool operator==(const PolicyRule&) const = default;
};

struct NetworkPolicy {
    std::string ns, name, uid, resource_version;
    LabelSelector pod_selector;  // absent in the JSON = {} = every pod of ns
    bool affects_ingress = false;  // policyTypes (explicit, or defaulted like the API server:
    bool affects_egress = false;   // Ingress always, Egress when spec.egress is non-empty)
    std::vector<PolicyRule> ingress, egress;
    [[nodiscard]] std::string id() const;  // "ns/name"
};

// The NetworkPolicies the client watches (ObjectStore: by uid, rejected ones with the reason).
using NetworkPolicyStore = ObjectStore<NetworkPolicy>;

// From a NetworkPolicy object of the API (networking.k8s.io/v1, as `kubectl get -o json`
// shows it). Errors name the object and the offending field ("spec.ingress[0].ports[1].endPort
// ..."): wrong types, a bad CIDR or except outside it, an unknown protocol, policy type or
// selector operator, values missing (In/NotIn) or present (Exists/DoesNotExist), an empty peer,
// ipBlock with a selector, port out of range, endPort below port or with a named/no port.
[[nodiscard]] Result<NetworkPolicy> networkPolicyFromJson(const nlohmann::json& obj);

// ---- evaluation ----

enum class Decision : std::uint8_t {
    NotApplicable,  // this end is not a known (non-hostNetwork) pod: no policy applies here
    NotSelected,    // a pod no policy of this direction selects: allowed, not isolated
    Allowed,        // isolated and allowed (by the named policies, or by an exemption)
    Denied,         // isolated and no rule of the selecting policies allows it
};
[[nodiscard]] std::string_view toString(Decision d);

enum class Exemption : std::uint8_t {
    None,
    LocalNode,  // traffic between a pod and its own node is always allowed
    SamePod,    // a pod cannot block access to itself
};
[[nodiscard]] std::string_view toString(Exemption e);

// One direction's answer: the egress of the flow's source pod or the ingress of its
// destination pod. Bounded: at most kMaxPolicyNames names (the lexicographically first),
// each at most kMaxNameLength bytes; policy_count is the full number.
struct SideVerdict {
    static constexpr std::size_t kMaxPolicyNames = 8;
    static constexpr std::size_t kMaxNameLength = 320;  // namespace (63) + "/" + name (253), with room

    Decision decision = Decision::NotApplicable;
    Exemption exemption = Exemption::None;
    std::string pod;                    // "ns/name" of the pod this side is about, "" when NotApplicable
    std::vector<std::string> policies;  // Allowed: the policies allowing it; Denied: those isolating the pod
    std::size_t policy_count = 0;       // policies before truncation

    [[nodiscard]] bool permits() const { return decision != Decision::Denied; }
};

struct FlowVerdict {
    SideVerdict egress;   // of the source pod
    SideVerdict ingress;  // of the destination pod
    bool allowed = true;  // both sides permit
};

// A node's own addresses (InternalIP etc.), for the local-node exemption.
struct NodeAddresses {
    std::string name;
    std::vector<util::Addr16> addrs;
};

struct PolicySetOptions {
    // See "ipBlock and pod IPs" above.
    bool ip_blocks_match_pod_ips = true;
};

// Policies, pods and namespaces frozen into lookup indexes: pods by IP, namespace labels by
// name, and for every pod the policies selecting it per direction (computed once, so an
// evaluation costs the rules of the policies selecting its two ends, not the whole cluster).
// Immutable after construction; evaluate() is const and safe to call from several threads.
class PolicySet {
public:
    PolicySet() = default;
    PolicySet(std::vector<NetworkPolicy> policies, const std::vector<PodInfo>& pods,
              const std::vector<NamespaceInfo>& namespaces, const std::vector<NodeAddresses>& nodes = {},
              PolicySetOptions options = {});

    [[nodiscard]] FlowVerdict evaluate(const util::Addr16& src, const util::Addr16& dst, std::uint8_t proto,
                                       std::uint16_t dport) const;

    struct Sizes {
        std::size_t policies = 0, pods = 0, pod_ips = 0, namespaces = 0, node_addrs = 0;
    };
    [[nodiscard]] Sizes sizes() const;

    // Each policy (sorted by namespace, name) with the pods its spec.podSelector selects
    // (running, non-hostNetwork pods with an IP; "ns/name"; at most max_pods of them listed,
    // sorted; selected_pods the full count).
    struct PolicySummary {
        std::string ns, name;
        bool ingress = false, egress = false;  // policyTypes
        std::size_t selected_pods = 0;
        std::vector<std::string> pods;
    };
    [[nodiscard]] std::vector<PolicySummary> summaries(std::size_t max_pods = 100) const;

private:
    struct Pod {
        std::string id;  // "ns/name", bounded
        std::string ns, node;
        std::map<std::string, std::string> labels;
        std::vector<ContainerPort> ports;
        std::vector<std::uint32_t> ingress_policies, egress_policies;  // indexes into policies_, sorted by id
    };
    enum class Dir : std::uint8_t { Ingress, Egress };

    [[nodiscard]] const Pod* podByIp(const util::Addr16& a) const;
    [[nodiscard]] const std::map<std::string, std::string>& namespaceLabels(const std::string& ns) const;
    [[nodiscard]] bool isNodeOf(const Pod& pod, const util::Addr16& a) const;
    [[nodiscard]] bool peerMatches(const NetworkPolicy& pol, const PolicyPeer& peer, const util::Addr16& addr,
                                   const Pod* pod) const;
    // self's verdict for its direction dir; other / other_addr: the far end (other null when
    // other_addr is not a known pod).
    [[nodiscard]] SideVerdict side(Dir dir, const Pod& self, const Pod* other, const util::Addr16& other_addr,
                                   std::uint8_t proto, std::uint16_t dport) const;

    PolicySetOptions options_;
    std::vector<NetworkPolicy> policies_;
    std::vector<Pod> pods_;
    std::unordered_map<util::Addr16, std::uint32_t, AddrHash> by_ip_;
    std::unordered_map<std::string, std::map<std::string, std::string>> ns_labels_;
    std::unordered_map<std::string, std::vector<util::Addr16>> node_addrs_;
};

}  // namespace netprobe::k8s
