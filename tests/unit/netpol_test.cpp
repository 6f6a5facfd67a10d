// Kubernetes NetworkPolicy: parsing (networkPolicyFromJson), label selectors, and the
// evaluator (PolicySet) over a table of small clusters. Every expected verdict below was
// written by hand from the Kubernetes documentation (concepts/services-networking/
// network-policies and the NetworkPolicySpec API reference), not copied from the
// implementation's output.
#include <gtest/gtest.h>

#include <charconv>
#include <chrono>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <netprobe/k8s/netpol.hpp>
#include <netprobe/k8s/store.hpp>

using namespace netprobe;
using namespace netprobe::k8s;
using nlohmann::json;

namespace {

// ---- YAML (as `kubectl get -o yaml` prints objects) -> the JSON the API serves ----
// Plain scalars take their YAML 1.2 core type (80 -> integer, true -> bool); quoted ones
// stay strings ("101", "fd00::1").
json toJson(const YAML::Node& n) {
    switch (n.Type()) {
    case YAML::NodeType::Sequence: {
        json a = json::array();
        for (const auto& e : n) a.push_back(toJson(e));
        return a;
    }
    case YAML::NodeType::Map: {
        json o = json::object();
        for (const auto& kv : n) o[kv.first.as<std::string>()] = toJson(kv.second);
        return o;
    }
    case YAML::NodeType::Scalar: {
        const std::string& s = n.Scalar();
        if (n.Tag() == "!") return s;  // quoted
        if (s == "true") return true;
        if (s == "false") return false;
        if (s == "null" || s == "~") return nullptr;
        std::int64_t v = 0;
        auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
        if (!s.empty() && ec == std::errc() && p == s.data() + s.size()) return v;
        double d = 0;
        auto [pd, ecd] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (!s.empty() && ecd == std::errc() && pd == s.data() + s.size()) return d;
        return s;
    }
    default: return nullptr;
    }
}

json yaml(const std::string& text) { return toJson(YAML::Load(text)); }

constexpr std::uint8_t ICMP = 1, TCP = 6, UDP = 17, SCTP = 132;

// ---- the cluster every case runs in ----
// prod {team: shop, env: prod}, dev {team: shop, env: dev}, other {team: data}, kube-system
// (listed without labels: the API server's kubernetes.io/metadata.name is still there),
// legacy (not listed at all: only its pod is known). Nodes n1 (192.168.0.11) and n2
// (192.168.0.12), known through their hostNetwork agent pods.
constexpr const char* kCluster = R"(
namespaces:
- apiVersion: v1
  kind: Namespace
  metadata: {name: prod, uid: ns-prod, resourceVersion: "11", labels: {kubernetes.io/metadata.name: prod, team: shop, env: prod}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: dev, uid: ns-dev, resourceVersion: "12", labels: {kubernetes.io/metadata.name: dev, team: shop, env: dev}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: other, uid: ns-other, resourceVersion: "13", labels: {kubernetes.io/metadata.name: other, team: data}}
- apiVersion: v1
  kind: Namespace
  metadata: {name: kube-system, uid: ns-ks, resourceVersion: "14"}
pods:
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: prod, uid: p-web, resourceVersion: "100", labels: {app: web, tier: frontend}}
  spec:
    nodeName: n1
    containers:
    - {name: app, image: nginx, ports: [{name: http, containerPort: 8080, protocol: TCP}, {name: metrics, containerPort: 9090}]}
  status: {phase: Running, podIP: 10.0.1.10, podIPs: [{ip: 10.0.1.10}, {ip: "fd00::1:10"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: db, namespace: prod, uid: p-db, resourceVersion: "101", labels: {app: db, tier: backend}}
  spec:
    nodeName: n1
    containers:
    - {name: pg, image: postgres, ports: [{name: pg, containerPort: 5432, protocol: TCP}]}
  status: {phase: Running, podIP: 10.0.1.20, podIPs: [{ip: 10.0.1.20}, {ip: "fd00::1:20"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: api, namespace: prod, uid: p-api, resourceVersion: "102", labels: {app: api, tier: backend, version: v2}}
  spec:
    nodeName: n2
    initContainers:
    - {name: statsd, image: statsd, restartPolicy: Always, ports: [{name: stats, containerPort: 8125, protocol: UDP}]}
    containers:
    - {name: app, image: api, ports: [{name: http, containerPort: 8000, protocol: TCP}, {name: grpc, containerPort: 9000, protocol: TCP}]}
  status: {phase: Running, podIP: 10.0.1.30, podIPs: [{ip: 10.0.1.30}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: batch, namespace: prod, uid: p-batch, resourceVersion: "103", labels: {app: batch, role: tester}}
  spec: {nodeName: n2, containers: [{name: job, image: batch}]}
  status: {phase: Running, podIP: 10.0.1.40, podIPs: [{ip: 10.0.1.40}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: done, namespace: prod, uid: p-done, resourceVersion: "104", labels: {app: web, tier: frontend}}
  spec: {nodeName: n2, containers: [{name: job, image: batch}]}
  status: {phase: Succeeded, podIP: 10.0.1.99, podIPs: [{ip: 10.0.1.99}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: client, namespace: dev, uid: p-devclient, resourceVersion: "105", labels: {app: client, role: tester}}
  spec: {nodeName: n1, containers: [{name: c, image: curl}]}
  status: {phase: Running, podIP: 10.0.2.10, podIPs: [{ip: 10.0.2.10}, {ip: "fd00::2:10"}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: web, namespace: dev, uid: p-devweb, resourceVersion: "106", labels: {app: web, tier: frontend}}
  spec: {nodeName: n2, containers: [{name: app, image: nginx, ports: [{name: http, containerPort: 8080}]}]}
  status: {phase: Running, podIP: 10.0.2.20, podIPs: [{ip: 10.0.2.20}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: client, namespace: other, uid: p-otherclient, resourceVersion: "107", labels: {app: client}}
  spec: {nodeName: n2, containers: [{name: c, image: curl}]}
  status: {phase: Running, podIP: 10.0.3.10, podIPs: [{ip: 10.0.3.10}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: etl, namespace: other, uid: p-etl, resourceVersion: "108", labels: {app: etl, role: tester, version: v1}}
  spec: {nodeName: n2, containers: [{name: etl, image: etl}]}
  status: {phase: Running, podIP: 10.0.3.20, podIPs: [{ip: 10.0.3.20}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: coredns, namespace: kube-system, uid: p-dns, resourceVersion: "109", labels: {k8s-app: kube-dns}}
  spec:
    nodeName: n2
    containers:
    - {name: coredns, image: coredns, ports: [{name: dns, containerPort: 53, protocol: UDP}, {name: dns-tcp, containerPort: 53, protocol: TCP}]}
  status: {phase: Running, podIP: 10.0.0.10, podIPs: [{ip: 10.0.0.10}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: agent-n1, namespace: kube-system, uid: p-agent1, resourceVersion: "110", labels: {app: web}}
  spec: {nodeName: n1, hostNetwork: true, containers: [{name: agent, image: agent, ports: [{name: http, containerPort: 8080}]}]}
  status: {phase: Running, podIP: 192.168.0.11, podIPs: [{ip: 192.168.0.11}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: agent-n2, namespace: kube-system, uid: p-agent2, resourceVersion: "111", labels: {app: web}}
  spec: {nodeName: n2, hostNetwork: true, containers: [{name: agent, image: agent}]}
  status: {phase: Running, podIP: 192.168.0.12, podIPs: [{ip: 192.168.0.12}]}
- apiVersion: v1
  kind: Pod
  metadata: {name: old, namespace: legacy, uid: p-old, resourceVersion: "112", labels: {app: old}}
  spec: {nodeName: n2, containers: [{name: old, image: old}]}
  status: {phase: Running, podIP: 10.0.4.10, podIPs: [{ip: 10.0.4.10}]}
)";

// Addresses of the cluster above, and outside it.
constexpr const char* WEB = "10.0.1.10";          // prod/web, n1
constexpr const char* WEB6 = "fd00::1:10";
constexpr const char* DB = "10.0.1.20";           // prod/db, n1
constexpr const char* DB6 = "fd00::1:20";
constexpr const char* API = "10.0.1.30";          // prod/api, n2
constexpr const char* BATCH = "10.0.1.40";        // prod/batch, n2
constexpr const char* DONE = "10.0.1.99";         // prod/done: Succeeded, its IP is no pod's any more
constexpr const char* DEV_CLIENT = "10.0.2.10";   // dev/client, n1
constexpr const char* DEV_CLIENT6 = "fd00::2:10";
constexpr const char* DEV_WEB = "10.0.2.20";      // dev/web, n2
constexpr const char* OTHER_CLIENT = "10.0.3.10"; // other/client
constexpr const char* ETL = "10.0.3.20";          // other/etl
constexpr const char* DNS = "10.0.0.10";          // kube-system/coredns, n2
constexpr const char* OLD = "10.0.4.10";          // legacy/old
constexpr const char* NODE1 = "192.168.0.11";     // node n1 (hostNetwork agent-n1)
constexpr const char* NODE2 = "192.168.0.12";     // node n2 (hostNetwork agent-n2)
constexpr const char* EXT = "203.0.113.5";
constexpr const char* EXT_HI = "203.0.113.200";
constexpr const char* EXT2 = "198.51.100.7";
constexpr const char* EXT_10 = "10.9.9.9";        // in 10/8 but no pod's
constexpr const char* EXT6 = "2001:db8::5";
constexpr const char* EXT6_HOLE = "2001:db8:ff::1";

// ---- expectations ----
struct Side {
    Decision decision = Decision::NotApplicable;
    std::vector<std::string> policies;
    Exemption exemption = Exemption::None;
};
const Side NA{Decision::NotApplicable, {}};
const Side NS{Decision::NotSelected, {}};
Side A(std::vector<std::string> p) { return {Decision::Allowed, std::move(p)}; }
Side D(std::vector<std::string> p) { return {Decision::Denied, std::move(p)}; }
Side X(Exemption e) { return {Decision::Allowed, {}, e}; }
constexpr bool ALLOW = true, DENY = false;

struct Flow {
    bool allowed;
    const char* src;
    const char* dst;
    std::uint8_t proto;
    std::uint16_t dport;
    Side egress;   // of src
    Side ingress;  // of dst
};

struct Case {
    const char* name;
    const char* policies;  // a YAML list of NetworkPolicy objects
    std::vector<Flow> flows;
    PolicySetOptions options{};
    std::vector<NodeAddresses> nodes{};
};

std::vector<Case> cases() {
    return {
        // No policy anywhere: pods are non-isolated both ways.
        {"NoPolicies", "[]",
         {{ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, NS},
          {ALLOW, EXT, WEB, TCP, 8080, NA, NS},
          {ALLOW, WEB, EXT, TCP, 443, NS, NA},
          {ALLOW, EXT, EXT2, TCP, 443, NA, NA}}},

        // podSelector {} + policyTypes [Ingress], no rules: every prod pod isolated for ingress.
        {"DefaultDenyIngress", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-ingress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress]}
)",
         {{DENY, DEV_CLIENT, WEB, TCP, 8080, NS, D({"prod/default-deny-ingress"})},
          {DENY, WEB, DB, TCP, 5432, NS, D({"prod/default-deny-ingress"})},
          {DENY, EXT, API, TCP, 8000, NA, D({"prod/default-deny-ingress"})},
          {ALLOW, WEB, EXT, TCP, 443, NS, NA},           // egress is not affected
          {ALLOW, WEB, DEV_WEB, TCP, 8080, NS, NS}}},    // dev is not covered

        {"DefaultDenyEgress", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-egress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Egress]}
)",
         {{DENY, WEB, EXT, TCP, 443, D({"prod/default-deny-egress"}), NA},
          {DENY, WEB, DB, TCP, 5432, D({"prod/default-deny-egress"}), NS},
          {DENY, WEB, DNS, UDP, 53, D({"prod/default-deny-egress"}), NS},
          {ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, NS}}},  // ingress is not affected

        {"DefaultDenyBoth", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-all, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
)",
         {{DENY, WEB, DB, TCP, 5432, D({"prod/default-deny-all"}), D({"prod/default-deny-all"})},
          {DENY, EXT, BATCH, TCP, 22, NA, D({"prod/default-deny-all"})},
          {DENY, BATCH, EXT, TCP, 443, D({"prod/default-deny-all"}), NA},
          {ALLOW, DEV_CLIENT, DEV_WEB, TCP, 8080, NS, NS}}},

        // ingress: [{}] = one rule with no from and no ports: every source, every port.
        {"AllowAllIngressOverDefaultDeny", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-ingress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-all-ingress, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {}
    ingress:
    - {}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, A({"prod/allow-all-ingress"})},
          {ALLOW, EXT, DB, UDP, 9999, NA, A({"prod/allow-all-ingress"})},
          {ALLOW, EXT6, WEB6, TCP, 443, NA, A({"prod/allow-all-ingress"})}}},

        {"AllowAllEgressOverDefaultDeny", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-egress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Egress]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-all-egress, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {}
    egress:
    - {}
    policyTypes: [Egress]
)",
         {{ALLOW, WEB6, EXT6, TCP, 443, A({"prod/allow-all-egress"}), NA},
          {ALLOW, WEB, EXT, ICMP, 0, A({"prod/allow-all-egress"}), NA},  // no ports: not restricted by port
          {ALLOW, BATCH, DNS, UDP, 53, A({"prod/allow-all-egress"}), NS}}},

        // An explicit empty ingress list allows nothing: the policy only isolates.
        {"EmptyIngressListDeniesAll", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: no-ingress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress: []
    policyTypes: [Ingress]
)",
         {{DENY, WEB, DB, TCP, 5432, NS, D({"prod/no-ingress"})},
          {ALLOW, DB, WEB, TCP, 8080, NS, NS}}},

        // podSelector matchLabels, from a podSelector alone (the policy's own namespace only),
        // no ports (every port and protocol).
        {"PodSelectorMatchLabels", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-frontend, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchLabels: {app: db}
    ingress:
    - from:
      - podSelector:
          matchLabels: {tier: frontend}
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB, DB, TCP, 5432, NS, A({"prod/db-from-frontend"})},
          {ALLOW, WEB, DB, UDP, 7777, NS, A({"prod/db-from-frontend"})},
          {DENY, API, DB, TCP, 5432, NS, D({"prod/db-from-frontend"})},
          {DENY, DEV_WEB, DB, TCP, 5432, NS, D({"prod/db-from-frontend"})},  // other namespace: needs namespaceSelector
          {DENY, EXT, DB, TCP, 5432, NA, D({"prod/db-from-frontend"})},
          {ALLOW, WEB, API, TCP, 8000, NS, NS}}},

        {"MatchExpressionsIn", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: isolate-in, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchExpressions:
      - {key: app, operator: In, values: [db, api]}
    policyTypes: [Ingress]
)",
         {{DENY, WEB, DB, TCP, 5432, NS, D({"prod/isolate-in"})},
          {DENY, WEB, API, TCP, 8000, NS, D({"prod/isolate-in"})},
          {ALLOW, DB, WEB, TCP, 8080, NS, NS},
          {ALLOW, DB, BATCH, TCP, 8080, NS, NS}}},

        // NotIn also selects pods without the key.
        {"MatchExpressionsNotIn", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: isolate-notin, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchExpressions:
      - {key: tier, operator: NotIn, values: [frontend]}
    policyTypes: [Ingress]
)",
         {{ALLOW, EXT, WEB, TCP, 8080, NA, NS},
          {DENY, EXT, DB, TCP, 5432, NA, D({"prod/isolate-notin"})},
          {DENY, EXT, BATCH, TCP, 80, NA, D({"prod/isolate-notin"})}}},

        {"MatchExpressionsExists", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: isolate-versioned, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchExpressions:
      - {key: version, operator: Exists}
    policyTypes: [Ingress]
)",
         {{DENY, EXT, API, TCP, 8000, NA, D({"prod/isolate-versioned"})},
          {ALLOW, EXT, DB, TCP, 5432, NA, NS}}},

        {"MatchExpressionsDoesNotExist", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: isolate-untiered, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchExpressions:
      - {key: tier, operator: DoesNotExist}
    policyTypes: [Ingress]
)",
         {{DENY, EXT, BATCH, TCP, 80, NA, D({"prod/isolate-untiered"})},
          {ALLOW, EXT, WEB, TCP, 8080, NA, NS},
          {ALLOW, EXT, DB, TCP, 5432, NA, NS}}},

        // matchLabels and matchExpressions are ANDed.
        {"MatchLabelsAndExpressionsAnded", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: isolate-backend-v2, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector:
      matchLabels: {tier: backend}
      matchExpressions:
      - {key: version, operator: In, values: [v2, v3]}
    policyTypes: [Ingress]
)",
         {{DENY, EXT, API, TCP, 8000, NA, D({"prod/isolate-backend-v2"})},
          {ALLOW, EXT, DB, TCP, 5432, NA, NS}}},

        // namespaceSelector alone: every pod of the matching namespaces.
        {"NamespaceSelectorAlone", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-shop, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - namespaceSelector: {matchLabels: {team: shop}}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-shop"})},
          {ALLOW, DEV_WEB, DB, TCP, 5432, NS, A({"prod/db-from-shop"})},
          {ALLOW, BATCH, DB, TCP, 5432, NS, A({"prod/db-from-shop"})},
          {DENY, OTHER_CLIENT, DB, TCP, 5432, NS, D({"prod/db-from-shop"})},
          {DENY, EXT, DB, TCP, 5432, NA, D({"prod/db-from-shop"})}}},

        // The documentation's example: both selectors in ONE peer = pods matching podSelector
        // in namespaces matching namespaceSelector.
        {"NamespaceAndPodSelectorInOnePeerIsAnd", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-dev-testers, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - namespaceSelector:
          matchLabels: {env: dev}
        podSelector:
          matchLabels: {role: tester}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-dev-testers"})},
          {DENY, DEV_WEB, DB, TCP, 5432, NS, D({"prod/db-from-dev-testers"})},    // dev, not a tester
          {DENY, ETL, DB, TCP, 5432, NS, D({"prod/db-from-dev-testers"})},        // tester, not dev
          {DENY, BATCH, DB, TCP, 5432, NS, D({"prod/db-from-dev-testers"})}}},    // tester in prod

        // ... and as TWO peers = either (the podSelector one in the policy's namespace).
        {"NamespaceAndPodSelectorAsTwoPeersIsOr", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-dev-or-testers, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - namespaceSelector:
          matchLabels: {env: dev}
      - podSelector:
          matchLabels: {role: tester}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-dev-or-testers"})},
          {ALLOW, DEV_WEB, DB, TCP, 5432, NS, A({"prod/db-from-dev-or-testers"})},
          {ALLOW, BATCH, DB, TCP, 5432, NS, A({"prod/db-from-dev-or-testers"})},
          {DENY, ETL, DB, TCP, 5432, NS, D({"prod/db-from-dev-or-testers"})},   // tester of another namespace
          {DENY, WEB, DB, TCP, 5432, NS, D({"prod/db-from-dev-or-testers"})}}},

        // namespaceSelector {} = every namespace.
        {"EmptyNamespaceSelectorWithPodSelector", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-any-client, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - namespaceSelector: {}
        podSelector: {matchLabels: {app: client}}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-any-client"})},
          {ALLOW, OTHER_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-any-client"})},
          {DENY, WEB, DB, TCP, 5432, NS, D({"prod/db-from-any-client"})},
          {DENY, OLD, DB, TCP, 5432, NS, D({"prod/db-from-any-client"})}}},

        // kubernetes.io/metadata.name is on every namespace: kube-system is listed without
        // labels, legacy is not listed at all.
        {"NamespaceSelectorByMetadataName", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-system-and-legacy, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
      - namespaceSelector:
          matchExpressions:
          - {key: kubernetes.io/metadata.name, operator: In, values: [legacy]}
    policyTypes: [Ingress]
)",
         {{ALLOW, DNS, DB, TCP, 5432, NS, A({"prod/db-from-system-and-legacy"})},
          {ALLOW, OLD, DB, TCP, 5432, NS, A({"prod/db-from-system-and-legacy"})},
          {DENY, DEV_CLIENT, DB, TCP, 5432, NS, D({"prod/db-from-system-and-legacy"})}}},

        // podSelector {} as a peer = every pod of the policy's namespace, and only pods.
        {"EmptyPodSelectorPeerIsOwnNamespace", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-prod, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - podSelector: {}
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB, DB, TCP, 5432, NS, A({"prod/db-from-prod"})},
          {ALLOW, BATCH, DB, TCP, 5432, NS, A({"prod/db-from-prod"})},
          {DENY, DEV_CLIENT, DB, TCP, 5432, NS, D({"prod/db-from-prod"})},
          {DENY, EXT, DB, TCP, 5432, NA, D({"prod/db-from-prod"})}}},

        {"IpBlockWithExceptIngress", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-from-partner, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - from:
      - ipBlock:
          cidr: 203.0.113.0/24
          except: [203.0.113.128/25]
    policyTypes: [Ingress]
)",
         {{ALLOW, EXT, WEB, TCP, 8080, NA, A({"prod/web-from-partner"})},
          {DENY, EXT_HI, WEB, TCP, 8080, NA, D({"prod/web-from-partner"})},
          {DENY, EXT2, WEB, TCP, 8080, NA, D({"prod/web-from-partner"})},
          {DENY, EXT6, WEB6, TCP, 8080, NA, D({"prod/web-from-partner"})}}},  // an IPv4 block is IPv4 only

        // The usual "internet but not the cluster" egress rule; a pod can still reach its node.
        {"IpBlockWithExceptEgress", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-internet, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to:
      - ipBlock:
          cidr: 0.0.0.0/0
          except: [10.0.0.0/8, 192.168.0.0/16]
    policyTypes: [Egress]
)",
         {{ALLOW, WEB, EXT, TCP, 443, A({"prod/web-to-internet"}), NA},
          {ALLOW, WEB, EXT2, UDP, 123, A({"prod/web-to-internet"}), NA},
          {DENY, WEB, DB, TCP, 5432, D({"prod/web-to-internet"}), NS},
          {DENY, WEB6, EXT6, TCP, 443, D({"prod/web-to-internet"}), NA},
          {DENY, WEB, NODE2, TCP, 10250, D({"prod/web-to-internet"}), NA},
          {ALLOW, WEB, NODE1, TCP, 10250, X(Exemption::LocalNode), NA}}},

        {"IpBlockIPv6", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-docnet, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to:
      - ipBlock:
          cidr: "2001:db8::/32"
          except: ["2001:db8:ff::/48"]
    policyTypes: [Egress]
)",
         {{ALLOW, WEB6, EXT6, TCP, 443, A({"prod/web-to-docnet"}), NA},
          {DENY, WEB6, EXT6_HOLE, TCP, 443, D({"prod/web-to-docnet"}), NA},
          {DENY, WEB, EXT, TCP, 443, D({"prod/web-to-docnet"}), NA}}},

        // ::/0 is every IPv6 address, not IPv4 (even though IPv4 is held IPv4-mapped here).
        {"IpBlockIPv6AllExcludesIPv4", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-v6, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to:
      - ipBlock: {cidr: "::/0"}
    policyTypes: [Egress]
)",
         {{ALLOW, WEB6, EXT6, TCP, 443, A({"prod/web-to-v6"}), NA},
          {ALLOW, WEB6, DB6, TCP, 5432, A({"prod/web-to-v6"}), NS},
          {DENY, WEB, EXT, TCP, 443, D({"prod/web-to-v6"}), NA},
          {DENY, WEB, DB, TCP, 5432, D({"prod/web-to-v6"}), NS}}},

        // Default: an ipBlock matches pod IPs too.
        {"IpBlockMatchesPodIpsByDefault", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-ranges, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - ipBlock: {cidr: 10.0.2.0/24}
      - ipBlock: {cidr: 192.168.0.0/24}
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, DB, TCP, 5432, NS, A({"prod/db-from-ranges"})},
          {ALLOW, NODE2, DB, TCP, 5432, NA, A({"prod/db-from-ranges"})},
          {DENY, OTHER_CLIENT, DB, TCP, 5432, NS, D({"prod/db-from-ranges"})}}},

        // With ip_blocks_match_pod_ips = false an ipBlock only matches non-pod addresses
        // (nodes, hostNetwork pods, the outside).
        {"IpBlockIgnoresPodIpsWhenConfigured", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-from-ranges, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - ipBlock: {cidr: 10.0.0.0/8}
      - ipBlock: {cidr: 192.168.0.0/24}
    policyTypes: [Ingress]
)",
         {{DENY, DEV_CLIENT, DB, TCP, 5432, NS, D({"prod/db-from-ranges"})},
          {ALLOW, NODE2, DB, TCP, 5432, NA, A({"prod/db-from-ranges"})},
          {ALLOW, EXT_10, DB, TCP, 5432, NA, A({"prod/db-from-ranges"})},
          {ALLOW, DONE, DB, TCP, 5432, NA, A({"prod/db-from-ranges"})}},  // an ended pod's IP is no pod's
         PolicySetOptions{.ip_blocks_match_pod_ips = false}},

        {"PortProtocolUdp", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: dns-udp-only, namespace: kube-system, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {k8s-app: kube-dns}}
    ingress:
    - ports:
      - {protocol: UDP, port: 53}
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB, DNS, UDP, 53, NS, A({"kube-system/dns-udp-only"})},
          {DENY, WEB, DNS, TCP, 53, NS, D({"kube-system/dns-udp-only"})},
          {DENY, WEB, DNS, UDP, 54, NS, D({"kube-system/dns-udp-only"})}}},

        // protocol defaults to TCP; a port rule says nothing about ICMP.
        {"PortProtocolDefaultsToTcp", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-8080, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - ports:
      - port: 8080
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, A({"prod/web-8080"})},
          {DENY, DEV_CLIENT, WEB, UDP, 8080, NS, D({"prod/web-8080"})},
          {DENY, DEV_CLIENT, WEB, TCP, 9090, NS, D({"prod/web-8080"})},
          {DENY, DEV_CLIENT, WEB, ICMP, 0, NS, D({"prod/web-8080"})}}},

        {"PortProtocolSctpAndAnyPortOfAProtocol", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-sctp-and-udp, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - ports:
      - {protocol: SCTP, port: 3868}
      - {protocol: UDP}
    policyTypes: [Ingress]
)",
         {{ALLOW, EXT, WEB, SCTP, 3868, NA, A({"prod/web-sctp-and-udp"})},
          {DENY, EXT, WEB, TCP, 3868, NA, D({"prod/web-sctp-and-udp"})},
          {ALLOW, EXT, WEB, UDP, 1234, NA, A({"prod/web-sctp-and-udp"})},
          {DENY, EXT, WEB, TCP, 1234, NA, D({"prod/web-sctp-and-udp"})}}},

        // A named port in an ingress rule resolves on each selected pod: http is 8080 on web,
        // 8000 on api, absent on db (then it matches nothing).
        {"NamedPortIngressResolvesOnSelectedPod", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: http-only, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {}
    ingress:
    - ports:
      - port: http
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, A({"prod/http-only"})},
          {DENY, DEV_CLIENT, WEB, TCP, 9090, NS, D({"prod/http-only"})},
          {ALLOW, DEV_CLIENT, API, TCP, 8000, NS, A({"prod/http-only"})},
          {DENY, DEV_CLIENT, API, TCP, 8080, NS, D({"prod/http-only"})},
          {DENY, DEV_CLIENT, DB, TCP, 8080, NS, D({"prod/http-only"})}}},

        // The named port's protocol must match the container port's: stats is 8125/UDP (on a
        // sidecar init container).
        {"NamedPortProtocolMustMatch", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: stats-tcp, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: api}}
    ingress:
    - ports:
      - port: stats
    policyTypes: [Ingress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: stats-udp, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {matchLabels: {app: api}}
    ingress:
    - ports:
      - {protocol: UDP, port: stats}
    policyTypes: [Ingress]
)",
         {{ALLOW, BATCH, API, UDP, 8125, NS, A({"prod/stats-udp"})},
          {DENY, BATCH, API, TCP, 8125, NS, D({"prod/stats-tcp", "prod/stats-udp"})}}},

        // In an egress rule a named port resolves on the destination pod; towards an address
        // that is no pod it cannot resolve.
        {"NamedPortEgressResolvesOnPeer", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: batch-to-http, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: batch}}
    egress:
    - ports:
      - port: http
    policyTypes: [Egress]
)",
         {{ALLOW, BATCH, WEB, TCP, 8080, A({"prod/batch-to-http"}), NS},
          {ALLOW, BATCH, API, TCP, 8000, A({"prod/batch-to-http"}), NS},
          {ALLOW, BATCH, DEV_WEB, TCP, 8080, A({"prod/batch-to-http"}), NS},
          {DENY, BATCH, API, TCP, 8080, D({"prod/batch-to-http"}), NS},
          {DENY, BATCH, EXT, TCP, 8080, D({"prod/batch-to-http"}), NA},
          {DENY, BATCH, NODE1, TCP, 8080, D({"prod/batch-to-http"}), NA}}},  // hostNetwork agent-n1's port is no pod's

        {"EndPortRange", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-nodeports, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - ports:
      - {protocol: TCP, port: 32000, endPort: 32768}
    policyTypes: [Egress]
)",
         {{ALLOW, WEB, EXT, TCP, 32000, A({"prod/web-to-nodeports"}), NA},
          {ALLOW, WEB, EXT, TCP, 32500, A({"prod/web-to-nodeports"}), NA},
          {ALLOW, WEB, EXT, TCP, 32768, A({"prod/web-to-nodeports"}), NA},
          {DENY, WEB, EXT, TCP, 31999, D({"prod/web-to-nodeports"}), NA},
          {DENY, WEB, EXT, TCP, 32769, D({"prod/web-to-nodeports"}), NA},
          {DENY, WEB, EXT, UDP, 32000, D({"prod/web-to-nodeports"}), NA}}},

        // No policyTypes (as in a manifest; the API server fills them in the same way): Ingress.
        {"PolicyTypesImplicitIngressOnly", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-from-db, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - from:
      - podSelector: {matchLabels: {app: db}}
)",
         {{ALLOW, DB, WEB, TCP, 8080, NS, A({"prod/web-from-db"})},
          {DENY, BATCH, WEB, TCP, 8080, NS, D({"prod/web-from-db"})},
          {ALLOW, WEB, EXT, TCP, 443, NS, NA}}},

        // No policyTypes and an egress section: Ingress AND Egress, so with no ingress rules
        // all ingress is denied.
        {"PolicyTypesImplicitWithEgressSection", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-db, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to:
      - podSelector: {matchLabels: {app: db}}
)",
         {{ALLOW, WEB, DB, TCP, 5432, A({"prod/web-to-db"}), NS},
          {DENY, WEB, EXT, TCP, 443, D({"prod/web-to-db"}), NA},
          {DENY, DB, WEB, TCP, 8080, NS, D({"prod/web-to-db"})}}},

        // An empty egress list does not make the default include Egress.
        {"PolicyTypesImplicitEmptyEgressList", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-isolated, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress: []
)",
         {{ALLOW, WEB, EXT, TCP, 443, NS, NA},
          {DENY, DB, WEB, TCP, 8080, NS, D({"prod/web-isolated"})}}},

        // Explicit policyTypes win: ingress rules of an Egress-only policy do nothing.
        {"PolicyTypesExplicitEgressOnly", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-egress-only, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - {}
    egress:
    - to:
      - ipBlock: {cidr: 203.0.113.0/24}
    policyTypes: [Egress]
)",
         {{ALLOW, DB, WEB, TCP, 8080, NS, NS},
          {ALLOW, WEB, EXT, TCP, 443, A({"prod/web-egress-only"}), NA},
          {DENY, WEB, EXT2, TCP, 443, D({"prod/web-egress-only"}), NA}}},

        // Policies are additive; a denial names every policy isolating the pod.
        {"MultiplePoliciesAdditive", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-from-web, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 5432}]
    policyTypes: [Ingress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-from-api, namespace: prod, uid: u3, resourceVersion: "3"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 5432}]
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB, DB, TCP, 5432, NS, A({"prod/allow-from-web"})},
          {ALLOW, API, DB, TCP, 5432, NS, A({"prod/allow-from-api"})},
          {DENY, BATCH, DB, TCP, 5432, NS, D({"prod/allow-from-api", "prod/allow-from-web", "prod/default-deny"})},
          {DENY, WEB, DB, TCP, 5433, NS, D({"prod/allow-from-api", "prod/allow-from-web", "prod/default-deny"})},
          {DENY, DB, WEB, TCP, 8080, NS, D({"prod/default-deny"})}}},

        // Every policy allowing the flow is named; a rule without from admits every source.
        {"TwoPoliciesAllowTheSameFlow", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-web-http, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    ingress:
    - ports: [{port: 8080}]
    policyTypes: [Ingress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-frontend, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {matchLabels: {tier: frontend}}
    ingress:
    - from: [{namespaceSelector: {}}]
    policyTypes: [Ingress]
)",
         {{ALLOW, DEV_CLIENT, WEB, TCP, 8080, NS, A({"prod/allow-frontend", "prod/allow-web-http"})},
          {ALLOW, DEV_CLIENT, WEB, TCP, 9090, NS, A({"prod/allow-frontend"})},
          {ALLOW, EXT, WEB, TCP, 8080, NA, A({"prod/allow-web-http"})},
          {DENY, EXT, WEB, TCP, 9090, NA, D({"prod/allow-frontend", "prod/allow-web-http"})}}},

        // A policy only selects pods of its own namespace.
        {"PolicyOnlySelectsItsNamespace", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny-ingress, namespace: dev, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress]}
)",
         {{DENY, EXT, DEV_WEB, TCP, 8080, NA, D({"dev/deny-ingress"})},
          {ALLOW, EXT, WEB, TCP, 8080, NA, NS},
          {ALLOW, DEV_WEB, WEB, TCP, 8080, NS, NS}}},

        // Pod to pod: the source's egress AND the destination's ingress.
        {"PodToPodNeedsBothSides", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-egress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to: [{podSelector: {matchLabels: {app: db}}}]
      ports: [{port: 5432}]
    policyTypes: [Egress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-ingress, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{podSelector: {matchLabels: {app: api}}}]
    policyTypes: [Ingress]
)",
         {{DENY, WEB, DB, TCP, 5432, A({"prod/web-egress"}), D({"prod/db-ingress"})},
          {ALLOW, API, DB, TCP, 5432, NS, A({"prod/db-ingress"})},
          {DENY, WEB, DB, TCP, 5433, D({"prod/web-egress"}), D({"prod/db-ingress"})},
          {DENY, WEB, API, TCP, 8000, D({"prod/web-egress"}), NS}}},

        // Egress to pods of another namespace: namespaceSelector AND podSelector, and a port.
        {"EgressToOtherNamespacePods", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-to-etl, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    egress:
    - to:
      - namespaceSelector: {matchLabels: {team: data}}
        podSelector: {matchLabels: {app: etl}}
      ports: [{protocol: TCP, port: 5432}]
    policyTypes: [Egress]
)",
         {{ALLOW, WEB, ETL, TCP, 5432, A({"prod/web-to-etl"}), NS},
          {DENY, WEB, ETL, TCP, 80, D({"prod/web-to-etl"}), NS},
          {DENY, WEB, OTHER_CLIENT, TCP, 5432, D({"prod/web-to-etl"}), NS},
          {DENY, WEB, DEV_CLIENT, TCP, 5432, D({"prod/web-to-etl"}), NS}}},

        // The documentation's DNS recipe on top of a default deny of egress.
        {"EgressDnsToKubeSystem", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-egress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Egress]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: allow-dns, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {}
    egress:
    - to:
      - namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}
        podSelector: {matchLabels: {k8s-app: kube-dns}}
      ports:
      - {protocol: UDP, port: 53}
      - {protocol: TCP, port: 53}
    policyTypes: [Egress]
)",
         {{ALLOW, WEB, DNS, UDP, 53, A({"prod/allow-dns"}), NS},
          {ALLOW, BATCH, DNS, TCP, 53, A({"prod/allow-dns"}), NS},
          {DENY, WEB, DNS, UDP, 5353, D({"prod/allow-dns", "prod/default-deny-egress"}), NS},
          {DENY, WEB, DB, TCP, 5432, D({"prod/allow-dns", "prod/default-deny-egress"}), NS},
          {DENY, WEB, EXT, UDP, 53, D({"prod/allow-dns", "prod/default-deny-egress"}), NA}}},

        // hostNetwork pods are never selected: agent-n1/agent-n2 carry app=web but their IPs
        // are their nodes'.
        {"HostNetworkPodsAreNotSelected", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: web-deny, namespace: kube-system, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: web}}
    policyTypes: [Ingress, Egress]
)",
         {{ALLOW, EXT, NODE1, TCP, 8080, NA, NA},
          {ALLOW, NODE1, EXT, TCP, 443, NA, NA},
          {ALLOW, EXT, DNS, UDP, 53, NA, NS}}},

        // A hostNetwork pod as a peer is its node's address: a namespaceSelector does not match
        // it, an ipBlock does.
        {"HostNetworkPeerIsAnAddress", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: from-kube-system, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{namespaceSelector: {matchLabels: {kubernetes.io/metadata.name: kube-system}}}]
    policyTypes: [Ingress]
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: from-nodes, namespace: prod, uid: u2, resourceVersion: "2"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{ipBlock: {cidr: 192.168.0.0/24}}]
    policyTypes: [Ingress]
)",
         {{ALLOW, NODE2, DB, TCP, 5432, NA, A({"prod/from-nodes"})},
          {ALLOW, DNS, DB, TCP, 5432, NS, A({"prod/from-kube-system"})}}},

        // Traffic between a pod and its own node is always allowed (n1 by its hostNetwork
        // pod's IP and by an address given to PolicySet), another node's is not.
        {"LocalNodeAlwaysAllowed", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny-all, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny-all, namespace: kube-system, uid: u2, resourceVersion: "2"}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
)",
         {{ALLOW, NODE1, WEB, TCP, 8080, NA, X(Exemption::LocalNode)},
          {DENY, NODE2, WEB, TCP, 8080, NA, D({"prod/deny-all"})},
          {ALLOW, WEB, NODE1, TCP, 10250, X(Exemption::LocalNode), NA},
          {ALLOW, NODE2, API, TCP, 8000, NA, X(Exemption::LocalNode)},
          {ALLOW, "192.168.0.21", WEB, TCP, 8080, NA, X(Exemption::LocalNode)},
          {DENY, "192.168.0.21", API, TCP, 8000, NA, D({"prod/deny-all"})},
          {ALLOW, NODE2, DNS, UDP, 53, NA, X(Exemption::LocalNode)},
          {DENY, DNS, NODE1, UDP, 53, D({"kube-system/deny-all"}), NA}},
         {},
         {NodeAddresses{"n1", {*util::parseAddr("192.168.0.21")}}}},

        {"PodCanAlwaysReachItself", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: deny-all, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress, Egress]}
)",
         {{ALLOW, WEB, WEB, TCP, 8080, X(Exemption::SamePod), X(Exemption::SamePod)},
          {DENY, WEB, DB, TCP, 5432, D({"prod/deny-all"}), D({"prod/deny-all"})}}},

        {"IPv6PodToPod", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-v6, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from:
      - podSelector: {matchLabels: {app: web}}
      - ipBlock: {cidr: "fd00::2:0/112"}
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB6, DB6, TCP, 5432, NS, A({"prod/db-v6"})},
          {ALLOW, DEV_CLIENT6, DB6, TCP, 5432, NS, A({"prod/db-v6"})},
          {DENY, DEV_CLIENT, DB, TCP, 5432, NS, D({"prod/db-v6"})},   // its IPv4 address is not in the block
          {DENY, EXT6, DB6, TCP, 5432, NA, D({"prod/db-v6"})}}},

        // An ended pod's IP and unknown addresses are not pods.
        {"EndedAndUnknownAddressesAreNotPods", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: default-deny-ingress, namespace: prod, uid: u1, resourceVersion: "1"}
  spec: {podSelector: {}, policyTypes: [Ingress]}
)",
         {{DENY, DONE, WEB, TCP, 8080, NA, D({"prod/default-deny-ingress"})},
          {ALLOW, WEB, DONE, TCP, 8080, NS, NA},
          {ALLOW, EXT, DONE, TCP, 8080, NA, NA}}},

        // A policy matching no pod isolates nothing.
        {"PolicySelectingNoPod", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: nobody, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: nonexistent}}
    policyTypes: [Ingress, Egress]
)",
         {{ALLOW, WEB, DB, TCP, 5432, NS, NS},
          {ALLOW, EXT, API, TCP, 8000, NA, NS}}},

        // A rule needs its peers AND its ports: two rules are ORed, not mixed.
        {"RulePeersAndPortsAreAnded", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: db-rules, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    podSelector: {matchLabels: {app: db}}
    ingress:
    - from: [{podSelector: {matchLabels: {app: web}}}]
      ports: [{port: 5432}]
    - from: [{podSelector: {matchLabels: {app: api}}}]
      ports: [{port: 6432}]
    policyTypes: [Ingress]
)",
         {{ALLOW, WEB, DB, TCP, 5432, NS, A({"prod/db-rules"})},
          {ALLOW, API, DB, TCP, 6432, NS, A({"prod/db-rules"})},
          {DENY, WEB, DB, TCP, 6432, NS, D({"prod/db-rules"})},
          {DENY, API, DB, TCP, 5432, NS, D({"prod/db-rules"})}}},

        // spec.podSelector absent: the empty selector, every pod of the namespace; null fields
        // are absent fields.
        {"AbsentPodSelectorSelectsAll", R"(
- apiVersion: networking.k8s.io/v1
  kind: NetworkPolicy
  metadata: {name: everyone, namespace: prod, uid: u1, resourceVersion: "1"}
  spec:
    ingress:
    - from: null
      ports: null
    egress: null
    policyTypes: [Ingress]
)",
         {{ALLOW, EXT, WEB, UDP, 9, NA, A({"prod/everyone"})},
          {ALLOW, WEB, EXT, UDP, 9, NS, NA}}},
    };
}

std::string describe(const Flow& f) {
    return std::string(f.src) + " -> " + f.dst + " proto " + std::to_string(f.proto) + " port " + std::to_string(f.dport);
}

void expectSide(const SideVerdict& got, const Side& want, const char* which) {
    EXPECT_EQ(toString(got.decision), toString(want.decision)) << which;
    EXPECT_EQ(toString(got.exemption), toString(want.exemption)) << which;
    EXPECT_EQ(got.policies, want.policies) << which;
    EXPECT_EQ(got.policy_count, want.policies.size()) << which;
    EXPECT_EQ(got.pod.empty(), want.decision == Decision::NotApplicable) << which;
}

struct Cluster {
    std::vector<PodInfo> pods;
    std::vector<NamespaceInfo> namespaces;
};

Cluster loadCluster() {
    Cluster c;
    const json doc = yaml(kCluster);
    for (const auto& n : doc["namespaces"]) {
        auto ns = namespaceFromJson(n);
        EXPECT_TRUE(ns) << ns.error().what();
        if (ns) c.namespaces.push_back(*ns);
    }
    for (const auto& p : doc["pods"]) {
        auto pod = podFromJson(p);
        EXPECT_TRUE(pod) << pod.error().what();
        if (pod) c.pods.push_back(*pod);
    }
    return c;
}

std::vector<NetworkPolicy> loadPolicies(const char* text) {
    std::vector<NetworkPolicy> out;
    for (const auto& j : yaml(text)) {
        auto p = networkPolicyFromJson(j);
        EXPECT_TRUE(p) << p.error().what();
        if (p) out.push_back(std::move(*p));
    }
    return out;
}

class NetPolCase : public ::testing::TestWithParam<Case> {};

}  // namespace

TEST_P(NetPolCase, Flows) {
    const Case& c = GetParam();
    const Cluster cluster = loadCluster();
    auto policies = loadPolicies(c.policies);
    const PolicySet set(std::move(policies), cluster.pods, cluster.namespaces, c.nodes, c.options);
    ASSERT_FALSE(c.flows.empty());
    for (const auto& f : c.flows) {
        SCOPED_TRACE(describe(f));
        auto src = util::parseAddr(f.src), dst = util::parseAddr(f.dst);
        ASSERT_TRUE(src && dst);
        const FlowVerdict v = set.evaluate(*src, *dst, f.proto, f.dport);
        expectSide(v.egress, f.egress, "egress");
        expectSide(v.ingress, f.ingress, "ingress");
        EXPECT_EQ(v.allowed, f.allowed);
    }
}

INSTANTIATE_TEST_SUITE_P(NetPol, NetPolCase, ::testing::ValuesIn(cases()),
                         [](const ::testing::TestParamInfo<Case>& i) { return std::string(i.param.name); });

// ---- parsing ----

TEST(NetPolParse, KeepsEveryField) {
    auto p = networkPolicyFromJson(yaml(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: full, namespace: prod, uid: 8d2c, resourceVersion: "4711", generation: 3}
spec:
  podSelector:
    matchLabels: {app: db}
    matchExpressions:
    - {key: tier, operator: NotIn, values: [frontend, edge]}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: shop}}
      podSelector: {matchExpressions: [{key: role, operator: Exists}]}
    - ipBlock: {cidr: 172.17.1.9/16, except: [172.17.1.0/24]}
    ports:
    - {protocol: TCP, port: 5432}
    - {protocol: UDP, port: metrics}
    - {protocol: SCTP, port: 3000, endPort: 3010}
  egress:
  - to: [{ipBlock: {cidr: "2001:db8::/32"}}]
)"));
    ASSERT_TRUE(p) << p.error().what();
    EXPECT_EQ(p->ns, "prod");
    EXPECT_EQ(p->name, "full");
    EXPECT_EQ(p->uid, "8d2c");
    EXPECT_EQ(p->resource_version, "4711");
    EXPECT_EQ(p->id(), "prod/full");
    EXPECT_TRUE(p->affects_ingress);
    EXPECT_TRUE(p->affects_egress);
    EXPECT_EQ(p->pod_selector.match_labels, (std::map<std::string, std::string>{{"app", "db"}}));
    ASSERT_EQ(p->pod_selector.match_expressions.size(), 1u);
    EXPECT_EQ(p->pod_selector.match_expressions[0],
              (LabelRequirement{"tier", LabelRequirement::Op::NotIn, {"frontend", "edge"}}));
    ASSERT_EQ(p->ingress.size(), 1u);
    const auto& r = p->ingress[0];
    ASSERT_EQ(r.peers.size(), 2u);
    ASSERT_TRUE(r.peers[0].namespace_selector && r.peers[0].pod_selector);
    EXPECT_FALSE(r.peers[0].ip_block);
    EXPECT_EQ(r.peers[0].namespace_selector->match_labels.at("team"), "shop");
    EXPECT_EQ(r.peers[0].pod_selector->match_expressions[0].op, LabelRequirement::Op::Exists);
    ASSERT_TRUE(r.peers[1].ip_block);
    EXPECT_FALSE(r.peers[1].pod_selector || r.peers[1].namespace_selector);
    EXPECT_EQ(r.peers[1].ip_block->cidr.str(), "172.17.0.0/16");  // host bits cleared
    ASSERT_EQ(r.peers[1].ip_block->except.size(), 1u);
    EXPECT_EQ(r.peers[1].ip_block->except[0].str(), "172.17.1.0/24");
    ASSERT_EQ(r.ports.size(), 3u);
    EXPECT_EQ(r.ports[0], (PolicyPort{6, 5432, std::nullopt, ""}));
    EXPECT_EQ(r.ports[1], (PolicyPort{17, std::nullopt, std::nullopt, "metrics"}));
    EXPECT_EQ(r.ports[2], (PolicyPort{132, 3000, 3010, ""}));
    ASSERT_EQ(p->egress.size(), 1u);
    EXPECT_TRUE(p->egress[0].ports.empty());
    EXPECT_EQ(p->egress[0].peers[0].ip_block->cidr.str(), "2001:db8::/32");
}

TEST(NetPolParse, DefaultPolicyTypes) {
    auto types = [](const char* spec) {
        auto p = networkPolicyFromJson(
            yaml(std::string("{metadata: {name: p, namespace: ns, uid: u}, spec: ") + spec + "}"));
        EXPECT_TRUE(p) << p.error().what();
        return p ? std::pair{p->affects_ingress, p->affects_egress} : std::pair{false, false};
    };
    EXPECT_EQ(types("{podSelector: {}}"), std::pair(true, false));
    EXPECT_EQ(types("{podSelector: {}, ingress: [{}]}"), std::pair(true, false));
    EXPECT_EQ(types("{podSelector: {}, egress: [{}]}"), std::pair(true, true));
    EXPECT_EQ(types("{podSelector: {}, egress: []}"), std::pair(true, false));
    EXPECT_EQ(types("{podSelector: {}, policyTypes: [], egress: [{}]}"), std::pair(true, true));
    EXPECT_EQ(types("{podSelector: {}, policyTypes: [Egress]}"), std::pair(false, true));
    EXPECT_EQ(types("{podSelector: {}, policyTypes: [Ingress], egress: [{}]}"), std::pair(true, false));
}

struct ParseError {
    const char* spec;  // the value of spec:
    const char* want;  // a substring of the error
};

TEST(NetPolParse, ErrorsNameTheField) {
    const ParseError errors[] = {
        {"{ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/33}}]}]}", "spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR \"10.0.0.0/33\""},
        {"{ingress: [{from: [{ipBlock: {cidr: 10.0.0.1}}]}]}", "spec.ingress[0].from[0].ipBlock.cidr: invalid CIDR"},
        {"{ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/x}}]}]}", "ipBlock.cidr: invalid CIDR"},
        {"{ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8}}, {ipBlock: {cidr: 300.0.0.0/8}}]}]}", "spec.ingress[0].from[1].ipBlock.cidr"},
        {"{ingress: [{from: [{ipBlock: {}}]}]}", "spec.ingress[0].from[0].ipBlock.cidr: required"},
        {"{ingress: [{from: [{ipBlock: {cidr: 8}}]}]}", "ipBlock.cidr: expected a CIDR string"},
        {"{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.1.0.0/24]}}]}]}", "spec.egress[0].to[0].ipBlock.except[0]: 10.1.0.0/24 is not strictly inside 10.0.0.0/16"},
        {"{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [10.0.0.0/16]}}]}]}", "ipBlock.except[0]: 10.0.0.0/16 is not strictly inside"},
        {"{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: [\"fd00::/8\"]}}]}]}", "ipBlock.except[0]: fd00::/8 is not strictly inside"},
        {"{egress: [{to: [{ipBlock: {cidr: 10.0.0.0/16, except: 10.0.1.0/24}}]}]}", "ipBlock.except: expected an array"},
        {"{podSelector: {matchExpressions: [{key: app, operator: Equals, values: [a]}]}}", "spec.podSelector.matchExpressions[0].operator: unknown operator \"Equals\""},
        {"{podSelector: {matchExpressions: [{key: app, operator: In}]}}", "spec.podSelector.matchExpressions[0].values: must be non-empty for operator In"},
        {"{podSelector: {matchExpressions: [{key: app, operator: NotIn, values: []}]}}", "values: must be non-empty for operator NotIn"},
        {"{podSelector: {matchExpressions: [{key: app, operator: Exists, values: [a]}]}}", "values: must be empty for operator Exists"},
        {"{podSelector: {matchExpressions: [{key: app, operator: DoesNotExist, values: [a]}]}}", "values: must be empty for operator DoesNotExist"},
        {"{podSelector: {matchExpressions: [{operator: Exists}]}}", "matchExpressions[0].key: a non-empty string is required"},
        {"{podSelector: {matchExpressions: [{key: app}]}}", "matchExpressions[0].operator: a string is required"},
        {"{podSelector: {matchExpressions: [{key: app, operator: In, values: [1]}]}}", "matchExpressions[0].values[0]: expected a string"},
        {"{podSelector: {matchExpressions: {key: app}}}", "spec.podSelector.matchExpressions: expected an array"},
        {"{podSelector: {matchLabels: {app: [web]}}}", "spec.podSelector.matchLabels.app: expected a string, got array"},
        {"{podSelector: {matchLabels: [app]}}", "spec.podSelector.matchLabels: expected an object"},
        {"{podSelector: app=web}", "spec.podSelector: expected an object, got string"},
        {"{egress: [{ports: [{port: 80, endPort: 79}]}]}", "spec.egress[0].ports[0].endPort: 79 must be in 80-65535"},
        {"{egress: [{ports: [{port: 80, endPort: 70000}]}]}", "spec.egress[0].ports[0].endPort: 70000 must be in 80-65535"},
        {"{egress: [{ports: [{port: http, endPort: 90}]}]}", "spec.egress[0].ports[0].endPort: not allowed with a named port"},
        {"{egress: [{ports: [{endPort: 90}]}]}", "spec.egress[0].ports[0].endPort: requires a numeric port"},
        {"{egress: [{ports: [{port: 80, endPort: \"90\"}]}]}", "endPort: expected an integer"},
        {"{ingress: [{ports: [{port: 0}]}]}", "spec.ingress[0].ports[0].port: 0 is not in 1-65535"},
        {"{ingress: [{ports: [{port: 65536}]}]}", "spec.ingress[0].ports[0].port: 65536 is not in 1-65535"},
        {"{ingress: [{ports: [{port: 80.5}]}]}", "ports[0].port: expected an integer or a port name, got number"},
        {"{ingress: [{ports: [{port: true}]}]}", "ports[0].port: expected an integer or a port name, got boolean"},
        {"{ingress: [{ports: [{port: HTTP}]}]}", "ports[0].port: invalid port name \"HTTP\""},
        {"{ingress: [{ports: [{port: a-very-long-port-name}]}]}", "ports[0].port: invalid port name"},
        {"{ingress: [{ports: [{port: \"8080\"}]}]}", "ports[0].port: invalid port name \"8080\""},
        {"{ingress: [{ports: [{port: web--1}]}]}", "ports[0].port: invalid port name"},
        {"{ingress: [{ports: [{protocol: ICMP, port: 8}]}]}", "spec.ingress[0].ports[0].protocol: unknown protocol \"ICMP\""},
        {"{ingress: [{ports: [{protocol: tcp, port: 8}]}]}", "protocol: unknown protocol \"tcp\""},
        {"{ingress: [{ports: [80]}]}", "spec.ingress[0].ports[0]: expected an object, got number"},
        {"{ingress: [{ports: {port: 80}}]}", "spec.ingress[0].ports: expected an array"},
        {"{policyTypes: [Both]}", "spec.policyTypes[0]: unknown policy type \"Both\""},
        {"{policyTypes: Ingress}", "spec.policyTypes: expected an array, got string"},
        {"{policyTypes: [1]}", "spec.policyTypes[0]: expected a string"},
        {"{ingress: [{from: [{}]}]}", "spec.ingress[0].from[0]: must specify podSelector, namespaceSelector or ipBlock"},
        {"{ingress: [{from: [{podSelector: null}]}]}", "spec.ingress[0].from[0]: must specify"},
        {"{egress: [{to: [{podSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]}", "spec.egress[0].to[0]: ipBlock cannot be combined"},
        {"{egress: [{to: [{namespaceSelector: {}, ipBlock: {cidr: 10.0.0.0/8}}]}]}", "spec.egress[0].to[0]: ipBlock cannot be combined"},
        {"{egress: [{to: [{namespaceSelector: team}]}]}", "spec.egress[0].to[0].namespaceSelector: expected an object"},
        {"{ingress: {from: []}}", "spec.ingress: expected an array, got object"},
        {"{ingress: [[]]}", "spec.ingress[0]: expected an object, got array"},
        {"{ingress: [{from: {podSelector: {}}}]}", "spec.ingress[0].from: expected an array"},
        {"{egress: [{to: [web]}]}", "spec.egress[0].to[0]: expected an object, got string"},
        {"[]", "spec: an object is required"},
    };
    for (const auto& e : errors) {
        SCOPED_TRACE(e.spec);
        json obj = yaml(std::string("{apiVersion: networking.k8s.io/v1, kind: NetworkPolicy, "
                                    "metadata: {name: bad, namespace: prod, uid: u}, spec: ") +
                        e.spec + "}");
        auto p = networkPolicyFromJson(obj);
        ASSERT_FALSE(p);
        EXPECT_NE(p.error().message.find("networkpolicy prod/bad: "), std::string::npos) << p.error().message;
        EXPECT_NE(p.error().message.find(e.want), std::string::npos) << p.error().message;
    }
}

TEST(NetPolParse, MetadataErrors) {
    auto err = [](const char* text) {
        auto p = networkPolicyFromJson(yaml(text));
        EXPECT_FALSE(p);
        return p ? std::string() : p.error().message;
    };
    EXPECT_EQ(err("{metadata: {namespace: prod, uid: u}, spec: {}}"), "networkpolicy without metadata.name");
    EXPECT_EQ(err("{metadata: {name: x, uid: u}, spec: {}}"), "networkpolicy /x without metadata.namespace");
    EXPECT_EQ(err("{metadata: {name: x, namespace: prod}, spec: {}}"), "networkpolicy prod/x without metadata.uid");
    EXPECT_EQ(err("{metadata: {name: x, namespace: prod, uid: u}}"), "networkpolicy prod/x: spec: an object is required");
    EXPECT_EQ(err("[1, 2]"), "networkpolicy: expected an object, got array");
    EXPECT_EQ(err("x"), "networkpolicy: expected an object, got string");
    // Echoed user text stays bounded.
    const std::string huge(100000, 'z');
    auto p = networkPolicyFromJson(json{{"metadata", {{"name", huge}, {"namespace", huge}, {"uid", "u"}}},
                                        {"spec", {{"policyTypes", json::array({huge})}}}});
    ASSERT_FALSE(p);
    EXPECT_LT(p.error().message.size(), 600u);
}

// Every node of a valid policy replaced by every JSON type: an error or a policy, never an
// exception (nlohmann's accessors throw on a type mismatch).
TEST(NetPolParse, NeverThrowsOnMistypedInput) {
    const json base = yaml(R"(
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: full, namespace: prod, uid: u, labels: {a: b}}
spec:
  podSelector: {matchLabels: {app: db}, matchExpressions: [{key: tier, operator: In, values: [a]}]}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - {namespaceSelector: {matchLabels: {team: shop}}, podSelector: {}}
    - ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}
    ports: [{protocol: TCP, port: 80, endPort: 90}, {port: http}]
  egress:
  - to: [{ipBlock: {cidr: "fd00::/8"}}]
    ports: [{protocol: UDP}]
)");
    const json alternatives[] = {nullptr, true, 0, -1, 4294967296LL, 18446744073709551615ULL, 1.5, "", "x",
                                 json::array(), json::array({1}), json::object(), json::object({{"k", 1}})};
    std::vector<json::json_pointer> pointers;
    const json flat = base.flatten();
    for (auto it = flat.begin(); it != flat.end(); ++it) {
        json::json_pointer ptr(it.key());
        // every ancestor of every leaf, and the leaf
        for (json::json_pointer p = ptr; !p.empty(); p = p.parent_pointer()) pointers.push_back(p);
    }
    std::size_t parsed = 0, failed = 0;
    for (const auto& ptr : pointers) {
        for (const auto& alt : alternatives) {
            json mutated = base;
            mutated[ptr] = alt;
            bool ok = false;
            EXPECT_NO_THROW(ok = networkPolicyFromJson(mutated).has_value()) << ptr.to_string();
            (ok ? parsed : failed)++;
            EXPECT_NO_THROW((void)podFromJson(mutated));
            EXPECT_NO_THROW((void)namespaceFromJson(mutated));
        }
    }
    EXPECT_GT(parsed, 0u);
    EXPECT_GT(failed, 0u);
}

// ---- selectors and prefixes ----

TEST(NetPolSelector, Operators) {
    using Op = LabelRequirement::Op;
    const std::map<std::string, std::string> labels{{"app", "web"}, {"tier", "frontend"}};
    auto sel = [](std::map<std::string, std::string> ml, std::vector<LabelRequirement> me = {}) {
        return LabelSelector{std::move(ml), std::move(me)};
    };
    EXPECT_TRUE(selectorMatches(sel({}), labels));
    EXPECT_TRUE(selectorMatches(sel({}), {}));  // {} selects everything, even unlabelled
    EXPECT_TRUE(selectorMatches(sel({{"app", "web"}}), labels));
    EXPECT_FALSE(selectorMatches(sel({{"app", "db"}}), labels));
    EXPECT_FALSE(selectorMatches(sel({{"app", "web"}, {"env", "prod"}}), labels));
    EXPECT_FALSE(selectorMatches(sel({{"app", ""}}), labels));
    EXPECT_TRUE(selectorMatches(sel({}, {{"app", Op::In, {"db", "web"}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({}, {{"app", Op::In, {"db"}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({}, {{"env", Op::In, {"prod"}}}), labels));  // In needs the key
    EXPECT_TRUE(selectorMatches(sel({}, {{"app", Op::NotIn, {"db"}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({}, {{"app", Op::NotIn, {"db", "web"}}}), labels));
    EXPECT_TRUE(selectorMatches(sel({}, {{"env", Op::NotIn, {"prod"}}}), labels));  // absent key is not in
    EXPECT_TRUE(selectorMatches(sel({}, {{"tier", Op::Exists, {}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({}, {{"env", Op::Exists, {}}}), labels));
    EXPECT_TRUE(selectorMatches(sel({}, {{"env", Op::DoesNotExist, {}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({}, {{"app", Op::DoesNotExist, {}}}), labels));
    // All terms ANDed.
    EXPECT_TRUE(selectorMatches(sel({{"app", "web"}}, {{"tier", Op::Exists, {}}, {"env", Op::DoesNotExist, {}}}), labels));
    EXPECT_FALSE(selectorMatches(sel({{"app", "web"}}, {{"tier", Op::Exists, {}}, {"app", Op::NotIn, {"web"}}}), labels));
}

TEST(NetPolPrefix, ParseAndContains) {
    auto p = [](const char* t) { return parseIpPrefix(t); };
    auto a = [](const char* t) { return *util::parseAddr(t); };
    ASSERT_TRUE(p("10.0.0.0/8"));
    EXPECT_TRUE(p("10.0.0.0/8")->contains(a("10.255.1.2")));
    EXPECT_FALSE(p("10.0.0.0/8")->contains(a("11.0.0.1")));
    EXPECT_TRUE(p("0.0.0.0/0")->contains(a("203.0.113.5")));
    EXPECT_FALSE(p("0.0.0.0/0")->contains(a("2001:db8::1")));   // families never mix
    EXPECT_TRUE(p("::/0")->contains(a("2001:db8::1")));
    EXPECT_FALSE(p("::/0")->contains(a("203.0.113.5")));
    EXPECT_TRUE(p("203.0.113.5/32")->contains(a("203.0.113.5")));
    EXPECT_FALSE(p("203.0.113.5/32")->contains(a("203.0.113.4")));
    EXPECT_TRUE(p("2001:db8::/127")->contains(a("2001:db8::1")));
    EXPECT_FALSE(p("2001:db8::/127")->contains(a("2001:db8::2")));
    EXPECT_EQ(p("10.1.2.3/16")->str(), "10.1.0.0/16");
    EXPECT_EQ(p("2001:db8:1::/32")->str(), "2001:db8::/32");
    for (const char* bad : {"", "/", "10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/8x", "::/129",
                            "10.0.0/8", "host/8", "10.0.0.0/ 8"})
        EXPECT_FALSE(p(bad)) << bad;
    IpBlock b{*p("10.0.0.0/8"), {*p("10.1.0.0/16"), *p("10.2.3.0/24")}};
    EXPECT_TRUE(b.contains(a("10.3.0.1")));
    EXPECT_FALSE(b.contains(a("10.1.200.1")));
    EXPECT_FALSE(b.contains(a("10.2.3.4")));
    EXPECT_TRUE(b.contains(a("10.2.4.4")));
}

// ---- evaluator: bounds and scale ----

TEST(NetPolEval, NamesAreBounded) {
    std::vector<NetworkPolicy> policies;
    for (int i = 0; i < 20; ++i) {
        NetworkPolicy p;
        p.ns = "prod";
        p.name = (i == 0 ? std::string(1000, 'a') : "p" + std::to_string(10 + i));
        p.affects_ingress = true;
        policies.push_back(std::move(p));
    }
    PodInfo pod;
    pod.ns = "prod";
    pod.name = std::string(2000, 'w');
    pod.ips = {*util::parseAddr("10.0.0.1")};
    const PolicySet set(std::move(policies), {pod}, {});
    const auto v = set.evaluate(*util::parseAddr("10.9.9.9"), pod.ips[0], 6, 80);
    EXPECT_FALSE(v.allowed);
    EXPECT_EQ(v.ingress.decision, Decision::Denied);
    EXPECT_EQ(v.ingress.policy_count, 20u);
    ASSERT_EQ(v.ingress.policies.size(), SideVerdict::kMaxPolicyNames);
    EXPECT_EQ(v.ingress.policies[0].size(), SideVerdict::kMaxNameLength);  // "prod/aaaa..." cut
    EXPECT_EQ(v.ingress.policies[1], "prod/p11");
    EXPECT_EQ(v.ingress.pod.size(), SideVerdict::kMaxNameLength);
    EXPECT_EQ(set.sizes().policies, 20u);
    EXPECT_EQ(set.sizes().pods, 1u);
}

// ~1000 policies x 10k pods: building and evaluating stay well within a unit test's time.
TEST(NetPolEval, ScalesToAThousandPoliciesAndTenThousandPods) {
    constexpr int kNamespaces = 100, kPodsPerNs = 100, kPoliciesPerNs = 10;
    std::vector<PodInfo> pods;
    std::vector<NamespaceInfo> namespaces;
    std::vector<NetworkPolicy> policies;
    auto ip = [](int ns, int i) {
        util::Addr16 a = *util::parseAddr("10.0.0.0");
        a[13] = static_cast<std::uint8_t>(ns);
        a[14] = static_cast<std::uint8_t>(i >> 8);
        a[15] = static_cast<std::uint8_t>(i & 0xff);
        return a;
    };
    for (int n = 0; n < kNamespaces; ++n) {
        const std::string ns = "ns" + std::to_string(n);
        namespaces.push_back(NamespaceInfo{ns, "u" + ns, "1", {{"idx", std::to_string(n % 10)}}});
        for (int i = 0; i < kPodsPerNs; ++i) {
            PodInfo p;
            p.ns = ns;
            p.name = "pod" + std::to_string(i);
            p.labels = {{"app", "app" + std::to_string(i % kPoliciesPerNs)}};
            p.ports = {ContainerPort{"http", 8080, 6}};
            p.ips = {ip(n, i)};
            pods.push_back(std::move(p));
        }
        for (int k = 0; k < kPoliciesPerNs; ++k) {
            NetworkPolicy pol;
            pol.ns = ns;
            pol.name = "pol" + std::to_string(k);
            pol.pod_selector.match_labels = {{"app", "app" + std::to_string(k)}};
            pol.affects_ingress = pol.affects_egress = true;
            // appK talks to app(K+1) of namespaces with the same idx label, on the named port.
            auto rule = [&](int peer_app) {
                PolicyRule r;
                r.peers.push_back(PolicyPeer{LabelSelector{{{"app", "app" + std::to_string(peer_app)}}, {}},
                                             LabelSelector{{{"idx", std::to_string(n % 10)}}, {}}, std::nullopt});
                r.ports.push_back(PolicyPort{6, std::nullopt, std::nullopt, "http"});
                return r;
            };
            pol.egress.push_back(rule((k + 1) % kPoliciesPerNs));
            pol.ingress.push_back(rule((k + kPoliciesPerNs - 1) % kPoliciesPerNs));
            policies.push_back(std::move(pol));
        }
    }
    const auto t0 = std::chrono::steady_clock::now();
    const PolicySet set(std::move(policies), pods, namespaces);
    std::size_t allowed = 0;
    for (int f = 0; f < 10000; ++f) {
        // Even flows: to the next app of the same namespace (allowed both ways); odd ones: to
        // the next namespace, whose idx label differs (denied).
        const int sn = f % kNamespaces, dn = f % 2 == 0 ? sn : (sn + 1) % kNamespaces;
        const int si = (f / kNamespaces) % kPodsPerNs, di = (si + 1) % kPodsPerNs;
        const auto v = set.evaluate(ip(sn, si), ip(dn, di), 6, 8080);
        allowed += v.allowed;
    }
    const auto elapsed = std::chrono::steady_clock::now() - t0;
    EXPECT_EQ(set.sizes().pods, 10000u);
    EXPECT_EQ(set.sizes().policies, 1000u);
    EXPECT_EQ(allowed, 5000u);
    EXPECT_LT(std::chrono::duration_cast<std::chrono::seconds>(elapsed).count(), 10);
}

// ---- the pod / namespace fields the evaluator needs (k8s/store.hpp) ----

TEST(PodJsonPolicyFields, LabelsAndContainerPorts) {
    auto p = podFromJson(yaml(R"(
apiVersion: v1
kind: Pod
metadata: {name: api, namespace: prod, uid: p1, labels: {app: api, version: v2, bad: 7}}
spec:
  initContainers:
  - {name: init, ports: [{name: stats, containerPort: 8125, protocol: UDP}]}
  containers:
  - name: app
    ports:
    - {name: http, containerPort: 8000}
    - {containerPort: 9000, protocol: SCTP}
    - {name: bogus, containerPort: 0}
    - {name: huge, containerPort: 70000}
    - {name: text, containerPort: "80"}
  - {name: sidecar}
status: {phase: Running, podIP: 10.0.1.30}
)"));
    ASSERT_TRUE(p) << p.error().what();
    EXPECT_EQ(p->labels, (std::map<std::string, std::string>{{"app", "api"}, {"version", "v2"}}));
    const std::vector<ContainerPort> want{{"http", 8000, 6}, {"", 9000, 132}, {"stats", 8125, 17}};
    EXPECT_EQ(p->ports, want);
}

TEST(PodJsonPolicyFields, NoLabelsNoPorts) {
    auto p = podFromJson(yaml("{metadata: {name: x, namespace: y, uid: z}, spec: {containers: [{name: c}]}}"));
    ASSERT_TRUE(p) << p.error().what();
    EXPECT_TRUE(p->labels.empty());
    EXPECT_TRUE(p->ports.empty());
}

TEST(NetPolNamespaceJson, NameUidLabels) {
    auto n = namespaceFromJson(yaml(R"(
apiVersion: v1
kind: Namespace
metadata: {name: prod, uid: n1, resourceVersion: "42", labels: {kubernetes.io/metadata.name: prod, team: shop}}
status: {phase: Active}
)"));
    ASSERT_TRUE(n) << n.error().what();
    EXPECT_EQ(n->name, "prod");
    EXPECT_EQ(n->uid, "n1");
    EXPECT_EQ(n->resource_version, "42");
    EXPECT_EQ(n->labels, (std::map<std::string, std::string>{{"kubernetes.io/metadata.name", "prod"}, {"team", "shop"}}));
    EXPECT_FALSE(namespaceFromJson(yaml("{metadata: {uid: n1}}")));
    EXPECT_FALSE(namespaceFromJson(yaml("{metadata: {name: prod}}")));
    EXPECT_FALSE(namespaceFromJson(yaml("[]")));
}
