// Kubernetes API client: lists then watches pods and services (and, for NetworkPolicy
// monitoring, NetworkPolicies, Namespaces, Nodes and the other nodes' pods) into the
// stores, each on its own background thread (resourceVersion, bookmarks, relist on 410
// Gone, reconnect with capped exponential backoff). Lookups read the stores and never
// wait for the network.
// The process must ignore SIGPIPE (the agent does): TLS writes to a closed peer raise it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/k8s/config.hpp>
#include <netprobe/k8s/netpol.hpp>
#include <netprobe/k8s/store.hpp>

namespace netprobe::k8s {

struct ClientOptions {
    ClusterConfig cluster;
    std::string node_name;  // set: only pods with spec.nodeName=<node_name>
    bool watch_services = true;
    // EndpointSlices give the Service of a backend pod IP:port (flows seen after DNAT);
    // needs list/watch on discovery.k8s.io endpointslices.
    bool watch_endpointslices = true;
    // The inputs of k8s::PolicySet: networking.k8s.io/v1 NetworkPolicies, v1 Namespaces,
    // v1 Nodes (their addresses: the local-node exemption) and, when node_name is set, the
    // pods of the other nodes (fieldSelector spec.nodeName!=<node_name>) into a store of
    // their own (policy peers may run anywhere; attribution keeps using the local pods).
    // Needs list/watch on networkpolicies, namespaces and nodes.
    bool watch_network_policies = false;
    // v1 Nodes on their own (without NetworkPolicy monitoring, which watches them too):
    // their zones and pod CIDRs for the cost classes. Needs list/watch on nodes.
    bool watch_nodes = true;
    std::chrono::milliseconds backoff_initial{500};
    std::chrono::milliseconds backoff_max{30'000};
    std::chrono::seconds watch_timeout{300};   // timeoutSeconds asked of the server
    std::chrono::seconds connect_timeout{5};
    std::chrono::seconds list_read_timeout{60};
    std::size_t list_page_size = 500;
};

struct WatchStatus {
    std::string resource;          // "pods", "services", "endpointslices", "networkpolicies",
                                   // "namespaces", "nodes", "remote_pods"
    bool synced = false;           // a list succeeded (stores hold a full state)
    std::string resource_version;  // where the next watch starts ("" = relist)
    std::uint64_t lists = 0;       // successful (re)lists
    std::uint64_t watches = 0;     // watch requests sent
    std::uint64_t events = 0;      // ADDED/MODIFIED/DELETED applied
    std::uint64_t bookmarks = 0;
    std::uint64_t gone = 0;        // 410 Gone answers (status or ERROR event)
    std::uint64_t failures = 0;    // failed requests and dropped streams
    std::string last_error;
    // last successful list, watch event or bookmark, or cleanly ended watch (epoch: never)
    std::chrono::system_clock::time_point last_sync{};
};

namespace detail {
class Watcher;
}

class Client {
public:
    explicit Client(ClientOptions options);
    ~Client();  // stop()
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Starts the watch threads; returns at once.
    void start();
    // Stops and joins the threads (an in-flight request is interrupted).
    void stop();
    // Waits until every resource has been listed once (bounded); for readiness and tests.
    bool waitSynced(std::chrono::milliseconds timeout) const;

    [[nodiscard]] const PodStore& pods() const { return *pods_; }
    [[nodiscard]] const ServiceStore& services() const { return *services_; }
    [[nodiscard]] const EndpointStore& endpoints() const { return *endpoints_; }
    [[nodiscard]] WatchStatus podStatus() const;
    [[nodiscard]] std::optional<WatchStatus> serviceStatus() const;
    [[nodiscard]] std::optional<WatchStatus> endpointSliceStatus() const;

    // NetworkPolicy monitoring (ClientOptions::watch_network_policies; null / nullopt / false
    // without it). remotePods(): the other nodes' pods (null when node_name is empty: pods()
    // then holds every pod).
    [[nodiscard]] const NetworkPolicyStore* networkPolicies() const { return policies_.get(); }
    [[nodiscard]] const NamespaceStore* namespaces() const { return namespaces_.get(); }
    [[nodiscard]] const NodeStore* nodes() const { return nodes_.get(); }  // also with watch_nodes
    [[nodiscard]] const PodStore* remotePods() const { return remote_pods_.get(); }
    // The policy watches' statuses (networkpolicies, namespaces, nodes, remote_pods), or
    // nodes alone (watch_nodes without policies).
    [[nodiscard]] std::vector<WatchStatus> policyStatuses() const;
    // Every input of a PolicySet has been listed once (false without policy watches).
    [[nodiscard]] bool policyInputsSynced() const;

    // One API request, synchronous (for writers on their own thread: the response applier):
    // method "GET", "POST", "PUT" or "DELETE", path with query, a JSON body (may be empty).
    // An answer of any HTTP status is a value; no answer (connect, TLS, timeout) is an error.
    struct Reply {
        int status = 0;
        std::string body;
    };
    [[nodiscard]] Result<Reply> request(std::string_view method, const std::string& path, const std::string& body,
                                        std::chrono::seconds timeout = std::chrono::seconds(10)) const;

    [[nodiscard]] std::optional<PodInfo> podByIp(const util::Addr16& addr) const { return pods_->byIp(addr); }
    [[nodiscard]] std::optional<PodInfo> podByUid(std::string_view uid) const { return pods_->byUid(uid); }
    [[nodiscard]] std::optional<PodInfo> podByContainerId(std::string_view id) const { return pods_->byContainerId(id); }
    [[nodiscard]] std::optional<ServiceMatch> serviceByClusterIp(const util::Addr16& addr, std::uint16_t port,
                                                                 std::uint8_t protocol) const {
        return services_->byClusterIp(addr, port, protocol);
    }
    [[nodiscard]] std::optional<BackendMatch> serviceByBackend(const util::Addr16& addr, std::uint16_t port,
                                                               std::uint8_t protocol) const {
        return endpoints_->serviceByBackend(addr, port, protocol);
    }

private:
    ClientOptions options_;
    std::shared_ptr<PodStore> pods_;
    std::shared_ptr<ServiceStore> services_;
    std::shared_ptr<EndpointStore> endpoints_;
    std::unique_ptr<detail::Watcher> pod_watcher_;
    std::unique_ptr<detail::Watcher> service_watcher_;
    std::unique_ptr<detail::Watcher> endpoint_watcher_;
    std::shared_ptr<NetworkPolicyStore> policies_;
    std::shared_ptr<NamespaceStore> namespaces_;
    std::shared_ptr<NodeStore> nodes_;
    std::shared_ptr<PodStore> remote_pods_;
    std::vector<std::unique_ptr<detail::Watcher>> policy_watchers_;  // in policyStatuses() order
};

}  // namespace netprobe::k8s
