#include <netprobe/k8s/attribution.hpp>

#include <spdlog/spdlog.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

metrics::FlowLabels flowLabels(const FlowAttribution& a) {
    return {a.src_namespace, a.src_pod, a.src_workload, a.dst_namespace, a.dst_pod, a.dst_workload, a.dst_service};
}

metrics::LocalPod localPod(const PodInfo& p) {
    return {p.ns, p.name, p.uid, p.node, p.workload.name, p.workload.kind, p.ips, p.host_network, {}};
}

metrics::ContainerLabels containerLabels(const CgroupAttribution& a) {
    return {a.cgroup_path, a.container_id, a.pod_uid, a.ns, a.pod, a.workload};
}

// ---- HostAttribution ----

// The cgroup v2 hierarchy: our own mount; else (`ip netns exec` gives its command a
// mount namespace with a fresh /sys, without the cgroup mounts) the mount of the nearest
// ancestor process that has one, reached through /proc/PID/root. That directory is held
// open (fd_out) and used as /proc/self/fd/N, so it stays valid after the ancestor exits.
Result<std::string> findCgroupHierarchy(int& fd_out) {
    auto own = cgroup2Mount();
    if (own) return own;
    pid_t pid = ::getppid();
    for (int hop = 0; hop < 32 && pid > 0; ++hop) {
        const std::string proc = "/proc/" + std::to_string(pid);
        std::ifstream in(proc + "/mounts");
        std::stringstream ss;
        ss << in.rdbuf();
        if (auto m = findCgroup2Mount(ss.str())) {
            int fd = ::open((proc + "/root" + *m).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
            if (fd >= 0) {
                fd_out = fd;
                spdlog::info("cgroup v2 hierarchy: {} of process {} (none in this mount namespace)", *m, pid);
                return "/proc/self/fd/" + std::to_string(fd) + "/.";  // "/.": not itself a symlink (O_NOFOLLOW)
            }
        }
        if (pid == 1) break;
        // the next ancestor: field 4 of /proc/PID/stat (after the parenthesised comm)
        std::ifstream st(proc + "/stat");
        std::string line;
        std::getline(st, line);
        auto close = line.rfind(')');
        if (close == std::string::npos) break;
        std::istringstream rest(line.substr(close + 2));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == pid) break;
        pid = ppid;
    }
    return own;
}

HostAttribution::HostAttribution(HostAttributionOptions options) : options_(std::move(options)) {
    std::string mount = options_.cgroup_mount;
    if (mount.empty()) {
        if (auto m = findCgroupHierarchy(hierarchy_fd_)) mount = *m;
        else spdlog::info("container attribution off: {}", m.error().what());
    }
    if (!mount.empty()) {
        CgroupIndex::Options co;
        co.mount = mount;
        cgroups_ = std::make_unique<CgroupIndex>(co);
        refreshCgroups(true);
    }
    refreshLinks();
    if (options_.background) thread_ = std::thread([this] { run(); });
}

HostAttribution::~HostAttribution() {
    stopBackground();
    if (hierarchy_fd_ >= 0) ::close(hierarchy_fd_);
}

void HostAttribution::stopBackground() {
    {
        std::lock_guard lock(run_mu_);
        stopping_ = true;
    }
    run_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void HostAttribution::run() {
    auto next_walk = std::chrono::steady_clock::now() + options_.cgroups_interval;
    std::unique_lock lock(run_mu_);
    while (!run_cv_.wait_for(lock, options_.links_interval, [&] { return stopping_; })) {
        lock.unlock();
        refreshLinks();
        if (std::chrono::steady_clock::now() >= next_walk) {
            refreshCgroups(true);
            next_walk = std::chrono::steady_clock::now() + options_.cgroups_interval;
        }
        lock.lock();
    }
}

bool HostAttribution::refreshCgroups(bool forced) const {
    if (!cgroups_) return false;
    std::unique_lock walk(cgroup_walk_mu_, std::try_to_lock);
    if (!walk.owns_lock()) return false;  // a walk is running: its result will do
    const auto now = std::chrono::steady_clock::now();
    if (!forced && now - last_walk_ < options_.min_cgroup_refresh) return false;
    last_walk_ = now;
    if (auto r = cgroups_->refresh(); !r) {
        spdlog::debug("cgroup index refresh: {}", r.error().what());
        return false;
    } else if (r->dropped) {
        spdlog::debug("cgroup index: {} cgroups not indexed (limit {})", r->dropped, cgroups_->options().max_entries);
    }
    return true;
}

std::optional<CgroupAttribution> HostAttribution::cgroupAttribution(std::uint64_t cgroup_id, const PodStore* pods) const {
    if (!cgroups_ || cgroup_id == 0) return std::nullopt;
    if (auto a = attributeCgroupId(cgroup_id, *cgroups_, pods)) return a;
    // A cgroup created since the last walk: walk again (rate-limited), then retry.
    if (!refreshCgroups(false)) return std::nullopt;
    return attributeCgroupId(cgroup_id, *cgroups_, pods);
}

std::optional<metrics::ContainerLabels> HostAttribution::container(std::uint64_t cgroup_id) const {
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

std::vector<metrics::InterfaceLink> HostAttribution::interfaceLinks() const {
    std::lock_guard lock(links_mu_);
    return links_;
}

// ---- ClientAttribution ----

ClientAttribution::ClientAttribution(std::shared_ptr<const Client> client, std::string node_name,
                                     HostAttributionOptions host)
    : HostAttribution(std::move(host)), client_(std::move(client)), node_name_(std::move(node_name)) {}

ClientAttribution::~ClientAttribution() { stopBackground(); }

metrics::FlowLabels ClientAttribution::flow(const flow_key& key) const {
    return flowLabels(enrichFlow(endpointsOf(key), client_->pods(), client_->services(), &client_->endpoints()));
}

std::vector<metrics::LocalPod> ClientAttribution::localPods() const {
    std::vector<metrics::LocalPod> out;
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

std::optional<metrics::ContainerLabels> ClientAttribution::container(std::uint64_t cgroup_id) const {
    auto a = cgroupAttribution(cgroup_id, &client_->pods());
    if (!a) return std::nullopt;
    return containerLabels(*a);
}

std::vector<metrics::InterfaceLink> ClientAttribution::interfaceLinks() const {
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

std::vector<metrics::WorkloadRef> ClientAttribution::workloads() const {
    std::set<metrics::WorkloadRef> s;
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
    return w.take();
}

}  // namespace netprobe::k8s
