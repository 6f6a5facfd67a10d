#include <netprobe/k8s/attribution.hpp>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <bit>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <netprobe/k8s/enrich.hpp>
#include <netprobe/k8s/netns.hpp>
#include <netprobe/metrics/exposition.hpp>

namespace netprobe::k8s {

FlowEndpoints endpointsOf(const flow_key& key) {
    FlowEndpoints e;
    e.src = std::bit_cast<util::Addr16>(key.src_ip);
    e.dst = std::bit_cast<util::Addr16>(key.dst_ip);
    e.dst_port = key.dst_port;
    e.protocol = key.proto;
    return e;
}

analysis::FlowLabels flowLabels(const FlowAttribution& a) {
    return {a.src_namespace, a.src_pod,      a.src_workload, a.dst_namespace, a.dst_pod,
            a.dst_workload,  a.dst_service, a.src_mesh,     a.dst_mesh};
}

analysis::LocalPod localPod(const PodInfo& p) {
    return {p.ns, p.name, p.uid, p.node, p.workload.name, p.workload.kind, p.ips, p.host_network, {}, p.mesh};
}

analysis::ContainerLabels containerLabels(const CgroupAttribution& a) {
    return {a.cgroup_path, a.container_id, a.pod_uid, a.ns, a.pod, a.workload};
}

// ---- HostAttribution ----

HostAttribution::HostAttribution(HostAttributionOptions options) : options_(std::move(options)) {
    std::string mount = options_.cgroup_mount;
    if (mount.empty()) {
        if (auto h = util::findCgroupHierarchy()) {
            hierarchy_ = std::move(*h);
            mount = hierarchy_.path;
        } else {
            spdlog::info("container attribution off: {}", h.error().what());
        }
    }
    if (!mount.empty()) {
        CgroupIndex::Options co;
        co.mount = mount;
        cgroups_ = std::make_unique<CgroupIndex>(co);
        refreshCgroups();
    }
    refreshLinks();
    if (auto* s = options_.scheduler) {
        tasks_.push_back(s->every("attribution: host veth links", options_.links_interval, [this] { refreshLinks(); }));
        if (cgroups_) {
            cgroup_task_ = s->every("attribution: cgroup walk", options_.cgroups_interval, [this] { refreshCgroups(); },
                                    options_.min_cgroup_refresh);
            tasks_.push_back(*cgroup_task_);
        }
    }
}

HostAttribution::~HostAttribution() {
    if (options_.scheduler)
        for (auto id : tasks_) options_.scheduler->cancel(id);
}

void HostAttribution::refreshCgroups() {
    if (!cgroups_) return;
    if (auto r = cgroups_->refresh(); !r) {
        spdlog::debug("cgroup index refresh: {}", r.error().what());
    } else if (r->dropped) {
        spdlog::debug("cgroup index: {} cgroups not indexed (limit {})", r->dropped, cgroups_->options().max_entries);
    }
}

std::optional<CgroupAttribution> HostAttribution::cgroupAttribution(std::uint64_t cgroup_id, const PodStore* pods) const {
    if (!cgroups_ || cgroup_id == 0) return std::nullopt;
    auto a = attributeCgroupId(cgroup_id, *cgroups_, pods);
    // A cgroup created since the last walk: the walk runs again soon (not here).
    if (!a && cgroup_task_) options_.scheduler->wake(*cgroup_task_);
    return a;
}

std::optional<analysis::ContainerLabels> HostAttribution::container(std::uint64_t cgroup_id) const {
    auto a = cgroupAttribution(cgroup_id, nullptr);
    if (!a) return std::nullopt;
    return containerLabels(*a);
}

void HostAttribution::refreshLinks() {
    auto links = listPeerLinksResolved();
    if (!links) {
        spdlog::debug("veth links: {}", links.error().what());
        return;
    }
    std::lock_guard lock(links_mu_);
    links_ = std::move(*links);
}

std::vector<analysis::InterfaceLink> HostAttribution::interfaceLinks() const {
    std::lock_guard lock(links_mu_);
    return links_;
}

// ---- ClientAttribution ----

ClientAttribution::ClientAttribution(std::shared_ptr<const Client> client, std::string node_name,
                                     HostAttributionOptions host)
    : HostAttribution(std::move(host)), client_(std::move(client)), node_name_(std::move(node_name)) {}

ClientAttribution::~ClientAttribution() = default;

analysis::FlowLabels ClientAttribution::flow(const flow_key& key) const {
    return flowLabels(enrichFlow(endpointsOf(key), client_->pods(), client_->services(), &client_->endpoints()));
}

std::vector<analysis::ClusterNode> ClientAttribution::clusterNodes() const {
    std::vector<analysis::ClusterNode> out;
    const auto* store = client_->nodes();
    if (!store) return out;
    for (auto& n : store->all())
        out.push_back({std::move(n.name), std::move(n.zone), std::move(n.addrs), std::move(n.pod_cidrs)});
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.name < b.name; });
    return out;
}

std::vector<analysis::LocalPod> ClientAttribution::localPods() const {
    std::vector<analysis::LocalPod> out;
    for (const auto& p : client_->pods().all())
        if (node_name_.empty() || p.node == node_name_) out.push_back(localPod(p));
    if (out.empty()) return out;
    const auto links = HostAttribution::interfaceLinks();
    for (auto& pod : out) {
        if (pod.host_network) continue;
        for (const auto& l : links)
            for (const auto& a : l.peer_addresses)
                if (std::find(pod.ips.begin(), pod.ips.end(), a) != pod.ips.end() &&
                    std::find(pod.host_interfaces.begin(), pod.host_interfaces.end(), l.name) ==
                        pod.host_interfaces.end())
                    pod.host_interfaces.push_back(l.name);
    }
    return out;
}

bool ClientAttribution::synced() const { return client_->podStatus().synced; }

std::optional<analysis::ContainerLabels> ClientAttribution::container(std::uint64_t cgroup_id) const {
    auto a = cgroupAttribution(cgroup_id, &client_->pods());
    if (!a) return std::nullopt;
    return containerLabels(*a);
}

std::vector<analysis::InterfaceLink> ClientAttribution::interfaceLinks() const {
    auto links = HostAttribution::interfaceLinks();
    for (auto& l : links) {
        for (const auto& a : l.peer_addresses) {
            auto pod = client_->pods().byIp(a);  // not host-network pods
            if (!pod) continue;
            l.pod_namespace = pod->ns;
            l.pod_name = pod->name;
            l.pod_uid = pod->uid;
            break;
        }
    }
    return links;
}

std::vector<analysis::WorkloadRef> ClientAttribution::workloads() const {
    std::set<analysis::WorkloadRef> s;
    for (const auto& p : client_->pods().all())
        if (!p.workload.name.empty()) s.insert({p.ns, p.workload.name});
    return {s.begin(), s.end()};
}

std::string ClientAttribution::healthMetrics() const { return renderClientHealth(clientHealth(*client_)); }

// ---- client health ----

ClientHealth clientHealth(const Client& client) {
    ClientHealth h;
    h.resources.push_back(client.podStatus());
    if (auto s = client.serviceStatus()) h.resources.push_back(*s);
    if (auto s = client.endpointSliceStatus()) h.resources.push_back(*s);
    h.pods = client.pods().sizes().pods;
    h.services = client.services().sizes().services;
    h.endpointslices = client.endpoints().sizes().slices;
    for (auto& s : client.policyStatuses()) h.resources.push_back(std::move(s));
    if (const auto* p = client.networkPolicies()) h.more_objects.emplace_back("networkpolicies", p->size());
    if (const auto* n = client.namespaces()) h.more_objects.emplace_back("namespaces", n->size());
    if (const auto* n = client.nodes()) h.more_objects.emplace_back("nodes", n->size());
    if (const auto* r = client.remotePods()) h.more_objects.emplace_back("remote_pods", r->sizes().pods);
    return h;
}

std::string renderClientHealth(const ClientHealth& h) {
    using metrics::MetricType;
    metrics::ExpositionWriter w;
    struct Fam {
        const char* name;
        MetricType type;
        const char* help;
        double (*value)(const WatchStatus&);
    };
    static constexpr Fam fams[] = {
        {"netprobe_k8s_watch_restarts_total", MetricType::Counter,
         "Watch requests after the first one (server timeouts, dropped streams, reconnections).",
         [](const WatchStatus& s) { return static_cast<double>(s.watches > 0 ? s.watches - 1 : 0); }},
        {"netprobe_k8s_relists_total", MetricType::Counter,
         "Successful lists after the first one (410 Gone, a watch that could not resume).",
         [](const WatchStatus& s) { return static_cast<double>(s.lists > 0 ? s.lists - 1 : 0); }},
        {"netprobe_k8s_gone_total", MetricType::Counter, "410 Gone answers (expired resourceVersion).",
         [](const WatchStatus& s) { return static_cast<double>(s.gone); }},
        {"netprobe_k8s_request_failures_total", MetricType::Counter,
         "Failed list/watch requests and dropped watch streams.",
         [](const WatchStatus& s) { return static_cast<double>(s.failures); }},
        {"netprobe_k8s_watch_events_total", MetricType::Counter, "ADDED/MODIFIED/DELETED events applied.",
         [](const WatchStatus& s) { return static_cast<double>(s.events); }},
        {"netprobe_k8s_watch_bookmarks_total", MetricType::Counter, "BOOKMARK events received.",
         [](const WatchStatus& s) { return static_cast<double>(s.bookmarks); }},
        {"netprobe_k8s_synced", MetricType::Gauge, "1 once the resource has been listed (the store holds a full state).",
         [](const WatchStatus& s) { return s.synced ? 1.0 : 0.0; }},
        {"netprobe_k8s_last_sync_timestamp_seconds", MetricType::Gauge,
         "Unix time of the last successful list or watch event/bookmark/clean end (0: never).",
         [](const WatchStatus& s) {
             if (s.last_sync == std::chrono::system_clock::time_point{}) return 0.0;
             return std::chrono::duration<double>(s.last_sync.time_since_epoch()).count();
         }},
    };
    for (const auto& f : fams) {
        w.family(f.name, f.type, f.help);
        for (const auto& r : h.resources) w.sample(f.name, {{"resource", r.resource}}, f.value(r));
    }
    w.family("netprobe_k8s_objects", MetricType::Gauge, "Objects held in the agent's stores, by kind.");
    w.sample("netprobe_k8s_objects", {{"kind", "pods"}}, static_cast<std::uint64_t>(h.pods));
    w.sample("netprobe_k8s_objects", {{"kind", "services"}}, static_cast<std::uint64_t>(h.services));
    w.sample("netprobe_k8s_objects", {{"kind", "endpointslices"}}, static_cast<std::uint64_t>(h.endpointslices));
    for (const auto& [kind, n] : h.more_objects)
        w.sample("netprobe_k8s_objects", {{"kind", kind}}, static_cast<std::uint64_t>(n));
    return w.take();
}

}  // namespace netprobe::k8s
