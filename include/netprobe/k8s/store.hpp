// Compact, thread-safe stores of the Kubernetes objects the agent needs (only the fields
// used for attribution), and the pure functions that build them from API JSON.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include <netprobe/util/error.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::k8s {

struct Workload {
    std::string kind;  // "Deployment", "ReplicaSet", "DaemonSet", "StatefulSet", "Job", "CronJob",
                       // another controller's kind, or "Pod" for pods without a controller
    std::string name;
    bool operator==(const Workload&) const = default;
};

// A port of spec.containers[].ports[] / spec.initContainers[].ports[] (named ports are what
// NetworkPolicy port names resolve to).
struct ContainerPort {
    std::string name;           // "" when unnamed
    std::uint16_t port = 0;     // containerPort
    std::uint8_t protocol = 6;  // IPPROTO_TCP (the default), UDP, SCTP
    bool operator==(const ContainerPort&) const = default;
};

struct PodInfo {
    std::string ns, name, uid, node;
    std::string resource_version;
    std::vector<util::Addr16> ips;  // status.podIPs (or status.podIP); empty once the pod ended
    bool host_network = false;
    Workload workload;
    std::vector<std::string> container_ids;  // runtime prefix ("containerd://") stripped
    std::map<std::string, std::string> labels;  // metadata.labels
    std::vector<ContainerPort> ports;           // containers' then init containers' ports
    // The service mesh whose sidecar runs in the pod: "istio" (a container or native-sidecar
    // init container named istio-proxy, or the sidecar.istio.io/status annotation), "linkerd"
    // (linkerd-proxy, or linkerd.io/proxy-version), else "".
    std::string mesh;
};

struct NamespaceInfo {
    std::string name, uid;
    std::string resource_version;
    std::map<std::string, std::string> labels;  // metadata.labels
};

// A node's addresses (status.addresses of type InternalIP / ExternalIP): what NetworkPolicy
// evaluation needs for its local-node exemption.
struct NodeInfo {
    std::string name, uid;
    std::string resource_version;
    std::vector<util::Addr16> addrs;
    // metadata.labels topology.kubernetes.io/zone (else the deprecated
    // failure-domain.beta.kubernetes.io/zone); "" without one.
    std::string zone;
    // spec.podCIDRs (else spec.podCIDR): the ranges its pods' addresses come from, when
    // the cluster allocates them per node.
    std::vector<std::pair<util::Addr16, unsigned>> pod_cidrs;  // prefix, length over the 128-bit form
};

struct ServicePort {
    std::uint16_t port = 0;
    std::uint8_t protocol = 6;  // IPPROTO_TCP/UDP/SCTP
    std::string name;
    bool operator==(const ServicePort&) const = default;
};

struct ServiceInfo {
    std::string ns, name, uid;
    std::string resource_version;
    std::vector<util::Addr16> cluster_ips;  // spec.clusterIPs without "None" (headless)
    std::vector<ServicePort> ports;
};

// The workload owning a pod, from its controller ownerReference:
//   ReplicaSet "<d>-<h>" with label pod-template-hash=<h> -> Deployment "<d>" (the naming
//   convention of the Deployment controller; ReplicaSets are not watched);
//   Job "<c>-<n>", n = 8..12 digits (the CronJob controller's scheduled-time suffix) -> CronJob "<c>";
//   DaemonSet, StatefulSet, Job, others -> themselves; no controller -> {"Pod", pod name}.
[[nodiscard]] Workload resolveWorkload(std::string_view owner_kind, std::string_view owner_name,
                                       std::string_view pod_template_hash, std::string_view pod_name);
// "containerd://abc" -> "abc"; "" stays "".
[[nodiscard]] std::string stripRuntimePrefix(std::string_view container_id);

// From a Pod / Service / Namespace object of the API (v1). Errors name the missing field.
[[nodiscard]] Result<PodInfo> podFromJson(const nlohmann::json& obj);
[[nodiscard]] Result<ServiceInfo> serviceFromJson(const nlohmann::json& obj);
[[nodiscard]] Result<NamespaceInfo> namespaceFromJson(const nlohmann::json& obj);
[[nodiscard]] Result<NodeInfo> nodeFromJson(const nlohmann::json& obj);

struct AddrHash {
    std::size_t operator()(const util::Addr16& a) const noexcept;
};

// Pods by uid, with indexes by IP and container id. Writers (the watch thread) and
// readers (lookups) share a reader-writer lock held only for in-memory work; lookups
// return copies. Deleted pods are erased with their index entries.
class PodStore {
public:
    // Changes so far (every replaceAll, upsert and remove): a reader that built something
    // from all() knows whether it is out of date.
    [[nodiscard]] std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

    void replaceAll(std::vector<PodInfo> pods);  // after a (re)list
    void upsert(PodInfo pod);
    void remove(std::string_view uid);

    // Not hostNetwork pods only (a host-network pod's IP is the node's, shared by many).
    [[nodiscard]] std::optional<PodInfo> byIp(const util::Addr16& addr) const;
    [[nodiscard]] std::optional<PodInfo> byUid(std::string_view uid) const;
    [[nodiscard]] std::optional<PodInfo> byContainerId(std::string_view id) const;
    [[nodiscard]] std::vector<PodInfo> all() const;

    struct Sizes {
        std::size_t pods = 0, ips = 0, container_ids = 0;
    };
    [[nodiscard]] Sizes sizes() const;

private:
    void eraseLocked(const std::string& uid);
    void insertLocked(PodInfo pod);

    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, PodInfo> by_uid_;
    std::unordered_map<util::Addr16, std::string, AddrHash> by_ip_;
    std::unordered_map<std::string, std::string> by_container_;
    std::atomic<std::uint64_t> generation_{0};
};

// Objects by uid for the kinds only ever read whole (NetworkPolicies, Namespaces, Nodes):
// same locking as PodStore, all() copies, generation() counts changes. Objects the parser
// rejected are remembered by uid with the reason (at most kMaxRejected), until deleted or
// replaced by a valid version: a policy the agent cannot read is visible, not just absent.
template <class T>
class ObjectStore {
public:
    static constexpr std::size_t kMaxRejected = 100;

    void replaceAll(std::vector<T> items) {
        std::unique_lock lock(mu_);
        by_uid_.clear();
        rejected_.clear();
        for (auto& i : items) {
            std::string uid = i.uid;
            by_uid_.insert_or_assign(std::move(uid), std::move(i));
        }
        generation_.fetch_add(1, std::memory_order_release);
    }
    void upsert(T item) {
        std::unique_lock lock(mu_);
        rejected_.erase(item.uid);
        std::string uid = item.uid;
        by_uid_.insert_or_assign(std::move(uid), std::move(item));
        generation_.fetch_add(1, std::memory_order_release);
    }
    void remove(std::string_view uid) {
        std::unique_lock lock(mu_);
        by_uid_.erase(std::string(uid));
        rejected_.erase(std::string(uid));
        generation_.fetch_add(1, std::memory_order_release);
    }
    // An object of this kind that did not parse (a previous valid version is dropped: the
    // cluster no longer has it).
    void reject(std::string uid, std::string error) {
        std::unique_lock lock(mu_);
        by_uid_.erase(uid);
        if (rejected_.size() < kMaxRejected || rejected_.contains(uid))
            rejected_.insert_or_assign(std::move(uid), std::move(error));
        generation_.fetch_add(1, std::memory_order_release);
    }
    [[nodiscard]] std::vector<T> all() const {
        std::shared_lock lock(mu_);
        std::vector<T> out;
        out.reserve(by_uid_.size());
        for (const auto& [uid, v] : by_uid_) out.push_back(v);
        return out;
    }
    [[nodiscard]] std::vector<std::string> rejected() const {  // the parser's messages, sorted
        std::shared_lock lock(mu_);
        std::vector<std::string> out;
        for (const auto& [uid, e] : rejected_) out.push_back(e);
        std::sort(out.begin(), out.end());
        return out;
    }
    [[nodiscard]] std::size_t size() const {
        std::shared_lock lock(mu_);
        return by_uid_.size();
    }
    [[nodiscard]] std::uint64_t generation() const { return generation_.load(std::memory_order_acquire); }

private:
    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, T> by_uid_;
    std::map<std::string, std::string> rejected_;
    std::atomic<std::uint64_t> generation_{0};
};
using NamespaceStore = ObjectStore<NamespaceInfo>;
using NodeStore = ObjectStore<NodeInfo>;

struct ServiceMatch {
    ServiceInfo service;
    ServicePort port;
};

class ServiceStore {
public:
    void replaceAll(std::vector<ServiceInfo> services);
    void upsert(ServiceInfo svc);
    void remove(std::string_view uid);

    // The service whose ClusterIP is addr and that exposes port/protocol.
    [[nodiscard]] std::optional<ServiceMatch> byClusterIp(const util::Addr16& addr, std::uint16_t port,
                                                          std::uint8_t protocol) const;
    [[nodiscard]] std::optional<ServiceInfo> byUid(std::string_view uid) const;
    [[nodiscard]] std::vector<ServiceInfo> all() const;

    struct Sizes {
        std::size_t services = 0, cluster_ips = 0;
    };
    [[nodiscard]] Sizes sizes() const;

private:
    void eraseLocked(const std::string& uid);
    void insertLocked(ServiceInfo svc);

    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, ServiceInfo> by_uid_;
    std::unordered_map<util::Addr16, std::string, AddrHash> by_ip_;
};

// EndpointSlices (discovery.k8s.io/v1): backend IP:port/protocol -> Service, for flows
// seen after kube-proxy's DNAT (the destination is then a pod IP, not the ClusterIP).
struct EndpointSliceInfo {
    std::string ns, name, uid;
    std::string service;  // label kubernetes.io/service-name
    std::vector<util::Addr16> addresses;
    std::vector<ServicePort> ports;
};
[[nodiscard]] Result<EndpointSliceInfo> endpointSliceFromJson(const nlohmann::json& obj);

struct BackendMatch {
    std::string ns, service;
    ServicePort port;
};

class EndpointStore {
public:
    void replaceAll(std::vector<EndpointSliceInfo> slices);
    void upsert(EndpointSliceInfo slice);
    void remove(std::string_view uid);
    // The Service backed by addr:port/protocol (the newest slice wins when several do).
    [[nodiscard]] std::optional<BackendMatch> serviceByBackend(const util::Addr16& addr, std::uint16_t port,
                                                               std::uint8_t protocol) const;
    struct Sizes {
        std::size_t slices = 0, backends = 0;
    };
    [[nodiscard]] Sizes sizes() const;

private:
    struct Key {
        util::Addr16 addr;
        std::uint16_t port;
        std::uint8_t protocol;
        bool operator==(const Key&) const = default;
    };
    struct KeyHash {
        std::size_t operator()(const Key& k) const noexcept;
    };
    void eraseLocked(const std::string& uid);
    void insertLocked(EndpointSliceInfo slice);

    mutable std::shared_mutex mu_;
    std::unordered_map<std::string, EndpointSliceInfo> by_uid_;
    std::unordered_map<Key, std::string, KeyHash> by_backend_;
};

}  // namespace netprobe::k8s
