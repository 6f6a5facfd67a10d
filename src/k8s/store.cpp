#include <netprobe/k8s/store.hpp>
#include <netprobe/k8s/netpol.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>

namespace netprobe::k8s {

using nlohmann::json;

std::size_t AddrHash::operator()(const util::Addr16& a) const noexcept {
    std::uint64_t hi = 0, lo = 0;
    std::memcpy(&hi, a.data(), 8);
    std::memcpy(&lo, a.data() + 8, 8);
    return std::hash<std::uint64_t>{}(hi * 0x9E3779B97F4A7C15ULL ^ lo);
}

namespace {

bool allDigits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// obj[key] as a string, or "" when absent / not a string.
std::string str(const json& obj, const char* key) {
    if (!obj.is_object()) return {};
    auto it = obj.find(key);
    if (it == obj.end() || !it->is_string()) return {};
    return it->get<std::string>();
}

const json& child(const json& obj, const char* key) {
    static const json kNull;  // immutable
    if (!obj.is_object()) return kNull;
    auto it = obj.find(key);
    return it == obj.end() ? kNull : *it;
}

struct Meta {
    std::string ns, name, uid, rv;
};

Result<Meta> metaFromJson(const json& obj, std::string_view kind) {
    const json& md = child(obj, "metadata");
    Meta m{str(md, "namespace"), str(md, "name"), str(md, "uid"), str(md, "resourceVersion")};
    if (m.name.empty()) return std::unexpected(makeError(std::string(kind) + " without metadata.name"));
    if (m.uid.empty()) return std::unexpected(makeError(std::string(kind) + " " + m.name + " without metadata.uid"));
    return m;
}

std::uint8_t protocolNumber(std::string_view p) {
    if (p == "UDP") return 17;
    if (p == "SCTP") return 132;
    return 6;  // "TCP" and the default
}

// metadata.labels; values that are not strings are skipped (the API only has strings).
std::map<std::string, std::string> labelsOf(const json& md) {
    std::map<std::string, std::string> out;
    const json& labels = child(md, "labels");
    if (!labels.is_object()) return out;
    for (auto it = labels.begin(); it != labels.end(); ++it)
        if (it.value().is_string()) out.emplace(it.key(), it.value().get<std::string>());
    return out;
}

// spec.<key>[].ports[] with a valid containerPort.
void appendContainerPorts(const json& spec, const char* key, std::vector<ContainerPort>& out) {
    const json& containers = child(spec, key);
    if (!containers.is_array()) return;
    for (const auto& c : containers) {
        const json& ports = child(c, "ports");
        if (!ports.is_array()) continue;
        for (const auto& pj : ports) {
            const json& port = child(pj, "containerPort");
            if (!port.is_number_integer()) continue;
            auto v = port.get<std::int64_t>();
            if (v <= 0 || v > 65535) continue;
            out.push_back(
                ContainerPort{str(pj, "name"), static_cast<std::uint16_t>(v), protocolNumber(str(pj, "protocol"))});
        }
    }
}

// The sidecar's mesh (see PodInfo::mesh).
std::string meshOf(const json& md, const json& spec) {
    for (const char* key : {"containers", "initContainers"}) {
        const json& list = child(spec, key);
        if (!list.is_array()) continue;
        for (const auto& c : list) {
            const std::string name = str(c, "name");
            if (name == "istio-proxy") return "istio";
            if (name == "linkerd-proxy") return "linkerd";
        }
    }
    const json& ann = child(md, "annotations");
    if (ann.is_object()) {
        if (ann.contains("sidecar.istio.io/status")) return "istio";
        if (ann.contains("linkerd.io/proxy-version")) return "linkerd";
    }
    return {};
}

}  // namespace

Workload resolveWorkload(std::string_view owner_kind, std::string_view owner_name, std::string_view pod_template_hash,
                         std::string_view pod_name) {
    if (owner_kind.empty() || owner_name.empty()) return {"Pod", std::string(pod_name)};
    if (owner_kind == "ReplicaSet" && !pod_template_hash.empty() && owner_name.size() > pod_template_hash.size() + 1 &&
        owner_name.ends_with(pod_template_hash) &&
        owner_name[owner_name.size() - pod_template_hash.size() - 1] == '-') {
        return {"Deployment", std::string(owner_name.substr(0, owner_name.size() - pod_template_hash.size() - 1))};
    }
    if (owner_kind == "Job") {
        auto dash = owner_name.rfind('-');
        if (dash != std::string_view::npos && dash > 0) {
            auto suffix = owner_name.substr(dash + 1);
            if (suffix.size() >= 8 && suffix.size() <= 12 && allDigits(suffix))
                return {"CronJob", std::string(owner_name.substr(0, dash))};
        }
    }
    return {std::string(owner_kind), std::string(owner_name)};
}

std::string stripRuntimePrefix(std::string_view id) {
    auto p = id.find("://");
    return std::string(p == std::string_view::npos ? id : id.substr(p + 3));
}

Result<PodInfo> podFromJson(const json& obj) {
    auto meta = metaFromJson(obj, "pod");
    if (!meta) return std::unexpected(meta.error());
    PodInfo p;
    p.ns = std::move(meta->ns);
    p.name = std::move(meta->name);
    p.uid = std::move(meta->uid);
    p.resource_version = std::move(meta->rv);

    const json& md = child(obj, "metadata");
    std::string hash = str(child(md, "labels"), "pod-template-hash");
    std::string owner_kind, owner_name;
    if (const json& owners = child(md, "ownerReferences"); owners.is_array()) {
        for (const auto& o : owners) {
            const json& ctl = child(o, "controller");
            if (ctl.is_boolean() && ctl.get<bool>()) {
                owner_kind = str(o, "kind");
                owner_name = str(o, "name");
                break;
            }
        }
    }
    p.workload = resolveWorkload(owner_kind, owner_name, hash, p.name);
    p.labels = labelsOf(md);
    p.mesh = meshOf(md, child(obj, "spec"));

    const json& spec = child(obj, "spec");
    p.node = str(spec, "nodeName");
    if (const json& hn = child(spec, "hostNetwork"); hn.is_boolean()) p.host_network = hn.get<bool>();
    // Init containers too: sidecars (restartPolicy: Always) serve on their ports.
    appendContainerPorts(spec, "containers", p.ports);
    appendContainerPorts(spec, "initContainers", p.ports);

    const json& status = child(obj, "status");
    std::string phase = str(status, "phase");
    bool ended = phase == "Succeeded" || phase == "Failed";  // its IP may already be reused
    if (!ended) {
        if (const json& ips = child(status, "podIPs"); ips.is_array()) {
            for (const auto& ip : ips)
                if (auto a = util::parseAddr(str(ip, "ip"))) p.ips.push_back(*a);
        }
        if (p.ips.empty()) {
            if (auto a = util::parseAddr(str(status, "podIP"))) p.ips.push_back(*a);
        }
    }
    for (const char* key : {"initContainerStatuses", "containerStatuses", "ephemeralContainerStatuses"}) {
        const json& list = child(status, key);
        if (!list.is_array()) continue;
        for (const auto& cs : list) {
            auto id = stripRuntimePrefix(str(cs, "containerID"));
            if (!id.empty()) p.container_ids.push_back(std::move(id));
        }
    }
    return p;
}

Result<ServiceInfo> serviceFromJson(const json& obj) {
    auto meta = metaFromJson(obj, "service");
    if (!meta) return std::unexpected(meta.error());
    ServiceInfo s;
    s.ns = std::move(meta->ns);
    s.name = std::move(meta->name);
    s.uid = std::move(meta->uid);
    s.resource_version = std::move(meta->rv);
    const json& spec = child(obj, "spec");
    if (const json& ips = child(spec, "clusterIPs"); ips.is_array()) {
        for (const auto& ip : ips)
            if (ip.is_string())
                if (auto a = util::parseAddr(ip.get<std::string>())) s.cluster_ips.push_back(*a);
    }
    if (s.cluster_ips.empty()) {
        if (auto a = util::parseAddr(str(spec, "clusterIP"))) s.cluster_ips.push_back(*a);  // "None" does not parse
    }
    if (const json& ports = child(spec, "ports"); ports.is_array()) {
        for (const auto& pj : ports) {
            const json& port = child(pj, "port");
            if (!port.is_number_integer()) continue;
            auto v = port.get<std::int64_t>();
            if (v <= 0 || v > 65535) continue;
            std::string proto = str(pj, "protocol");
            s.ports.push_back(ServicePort{static_cast<std::uint16_t>(v), protocolNumber(proto), str(pj, "name")});
        }
    }
    return s;
}

Result<NamespaceInfo> namespaceFromJson(const json& obj) {
    auto meta = metaFromJson(obj, "namespace");
    if (!meta) return std::unexpected(meta.error());
    NamespaceInfo n;
    n.name = std::move(meta->name);
    n.uid = std::move(meta->uid);
    n.resource_version = std::move(meta->rv);
    n.labels = labelsOf(child(obj, "metadata"));
    return n;
}

Result<NodeInfo> nodeFromJson(const json& obj) {
    auto meta = metaFromJson(obj, "node");
    if (!meta) return std::unexpected(meta.error());
    NodeInfo n;
    n.name = std::move(meta->name);
    n.uid = std::move(meta->uid);
    n.resource_version = std::move(meta->rv);
    if (const json& addrs = child(child(obj, "status"), "addresses"); addrs.is_array()) {
        for (const auto& a : addrs) {
            const std::string type = str(a, "type");
            if (type != "InternalIP" && type != "ExternalIP") continue;  // not Hostname, InternalDNS, ...
            if (auto ip = util::parseAddr(str(a, "address"))) n.addrs.push_back(*ip);
        }
    }
    const auto labels = labelsOf(child(obj, "metadata"));
    for (const char* key : {"topology.kubernetes.io/zone", "failure-domain.beta.kubernetes.io/zone"})
        if (auto z = labels.find(key); z != labels.end() && !z->second.empty()) {
            n.zone = z->second;
            break;
        }
    const json& spec = child(obj, "spec");
    std::vector<std::string> cidrs;
    if (const json& list = child(spec, "podCIDRs"); list.is_array()) {
        for (const auto& c : list)
            if (c.is_string()) cidrs.push_back(c.get<std::string>());
    } else if (const std::string one = str(spec, "podCIDR"); !one.empty()) {
        cidrs.push_back(one);
    }
    for (const auto& c : cidrs)  // a malformed range is left out (the node itself is fine)
        if (auto p = parseIpPrefix(c)) n.pod_cidrs.emplace_back(p->addr, p->len);
    return n;
}

// ---- PodStore ----

void PodStore::eraseLocked(const std::string& uid) {
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end()) return;
    for (const auto& ip : it->second.ips) {
        auto i = by_ip_.find(ip);
        if (i != by_ip_.end() && i->second == uid) by_ip_.erase(i);
    }
    for (const auto& c : it->second.container_ids) {
        auto i = by_container_.find(c);
        if (i != by_container_.end() && i->second == uid) by_container_.erase(i);
    }
    by_uid_.erase(it);
}

void PodStore::insertLocked(PodInfo pod) {
    // The newest pod owning an IP wins (a terminating pod's IP can be handed to a new one).
    if (!pod.host_network)
        for (const auto& ip : pod.ips) by_ip_.insert_or_assign(ip, pod.uid);
    for (const auto& c : pod.container_ids) by_container_.insert_or_assign(c, pod.uid);
    std::string uid = pod.uid;
    by_uid_.insert_or_assign(std::move(uid), std::move(pod));
}

void PodStore::replaceAll(std::vector<PodInfo> pods) {
    std::unique_lock lock(mu_);
    by_uid_.clear();
    by_ip_.clear();
    by_container_.clear();
    for (auto& p : pods) insertLocked(std::move(p));
    generation_.fetch_add(1, std::memory_order_release);
}

void PodStore::upsert(PodInfo pod) {
    std::unique_lock lock(mu_);
    eraseLocked(pod.uid);
    insertLocked(std::move(pod));
    generation_.fetch_add(1, std::memory_order_release);
}

void PodStore::remove(std::string_view uid) {
    std::unique_lock lock(mu_);
    eraseLocked(std::string(uid));
    generation_.fetch_add(1, std::memory_order_release);
}

std::optional<PodInfo> PodStore::byIp(const util::Addr16& addr) const {
    std::shared_lock lock(mu_);
    auto i = by_ip_.find(addr);
    if (i == by_ip_.end()) return std::nullopt;
    auto p = by_uid_.find(i->second);
    if (p == by_uid_.end()) return std::nullopt;
    return p->second;
}

std::optional<PodInfo> PodStore::byUid(std::string_view uid) const {
    std::shared_lock lock(mu_);
    auto p = by_uid_.find(std::string(uid));
    if (p == by_uid_.end()) return std::nullopt;
    return p->second;
}

std::optional<PodInfo> PodStore::byContainerId(std::string_view id) const {
    std::shared_lock lock(mu_);
    auto i = by_container_.find(std::string(id));
    if (i == by_container_.end()) return std::nullopt;
    auto p = by_uid_.find(i->second);
    if (p == by_uid_.end()) return std::nullopt;
    return p->second;
}

std::vector<PodInfo> PodStore::all() const {
    std::shared_lock lock(mu_);
    std::vector<PodInfo> out;
    out.reserve(by_uid_.size());
    for (const auto& [uid, p] : by_uid_) out.push_back(p);
    std::sort(out.begin(), out.end(),
              [](const PodInfo& a, const PodInfo& b) { return std::tie(a.ns, a.name) < std::tie(b.ns, b.name); });
    return out;
}

PodStore::Sizes PodStore::sizes() const {
    std::shared_lock lock(mu_);
    return {by_uid_.size(), by_ip_.size(), by_container_.size()};
}

// ---- ServiceStore ----

void ServiceStore::eraseLocked(const std::string& uid) {
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end()) return;
    for (const auto& ip : it->second.cluster_ips) {
        auto i = by_ip_.find(ip);
        if (i != by_ip_.end() && i->second == uid) by_ip_.erase(i);
    }
    by_uid_.erase(it);
}

void ServiceStore::insertLocked(ServiceInfo svc) {
    for (const auto& ip : svc.cluster_ips) by_ip_.insert_or_assign(ip, svc.uid);
    std::string uid = svc.uid;
    by_uid_.insert_or_assign(std::move(uid), std::move(svc));
}

void ServiceStore::replaceAll(std::vector<ServiceInfo> services) {
    std::unique_lock lock(mu_);
    by_uid_.clear();
    by_ip_.clear();
    for (auto& s : services) insertLocked(std::move(s));
}

void ServiceStore::upsert(ServiceInfo svc) {
    std::unique_lock lock(mu_);
    eraseLocked(svc.uid);
    insertLocked(std::move(svc));
}

void ServiceStore::remove(std::string_view uid) {
    std::unique_lock lock(mu_);
    eraseLocked(std::string(uid));
}

std::optional<ServiceMatch> ServiceStore::byClusterIp(const util::Addr16& addr, std::uint16_t port,
                                                      std::uint8_t protocol) const {
    std::shared_lock lock(mu_);
    auto i = by_ip_.find(addr);
    if (i == by_ip_.end()) return std::nullopt;
    auto s = by_uid_.find(i->second);
    if (s == by_uid_.end()) return std::nullopt;
    for (const auto& p : s->second.ports)
        if (p.port == port && p.protocol == protocol) return ServiceMatch{s->second, p};
    return std::nullopt;
}

std::optional<ServiceInfo> ServiceStore::byUid(std::string_view uid) const {
    std::shared_lock lock(mu_);
    auto s = by_uid_.find(std::string(uid));
    if (s == by_uid_.end()) return std::nullopt;
    return s->second;
}

std::vector<ServiceInfo> ServiceStore::all() const {
    std::shared_lock lock(mu_);
    std::vector<ServiceInfo> out;
    out.reserve(by_uid_.size());
    for (const auto& [uid, s] : by_uid_) out.push_back(s);
    std::sort(out.begin(), out.end(),
              [](const ServiceInfo& a, const ServiceInfo& b) { return std::tie(a.ns, a.name) < std::tie(b.ns, b.name); });
    return out;
}

ServiceStore::Sizes ServiceStore::sizes() const {
    std::shared_lock lock(mu_);
    return {by_uid_.size(), by_ip_.size()};
}

}  // namespace netprobe::k8s

namespace netprobe::k8s {

// ---- EndpointStore ----

Result<EndpointSliceInfo> endpointSliceFromJson(const json& obj) {
    auto meta = metaFromJson(obj, "endpointslice");
    if (!meta) return std::unexpected(meta.error());
    EndpointSliceInfo e;
    e.ns = std::move(meta->ns);
    e.name = std::move(meta->name);
    e.uid = std::move(meta->uid);
    e.service = str(child(child(obj, "metadata"), "labels"), "kubernetes.io/service-name");
    if (str(obj, "addressType") == "FQDN") return e;  // no IPs to index
    if (const json& eps = child(obj, "endpoints"); eps.is_array()) {
        for (const auto& ep : eps) {
            const json& addrs = child(ep, "addresses");
            if (!addrs.is_array()) continue;
            for (const auto& a : addrs)
                if (a.is_string())
                    if (auto ip = util::parseAddr(a.get<std::string>())) e.addresses.push_back(*ip);
        }
    }
    if (const json& ports = child(obj, "ports"); ports.is_array()) {
        for (const auto& pj : ports) {
            const json& port = child(pj, "port");
            if (!port.is_number_integer()) continue;
            auto v = port.get<std::int64_t>();
            if (v <= 0 || v > 65535) continue;
            e.ports.push_back(ServicePort{static_cast<std::uint16_t>(v), protocolNumber(str(pj, "protocol")), str(pj, "name")});
        }
    }
    return e;
}

std::size_t EndpointStore::KeyHash::operator()(const Key& k) const noexcept {
    return AddrHash{}(k.addr) ^ (static_cast<std::size_t>(k.port) << 8 | k.protocol) * 0x9E3779B97F4A7C15ULL;
}

void EndpointStore::eraseLocked(const std::string& uid) {
    auto it = by_uid_.find(uid);
    if (it == by_uid_.end()) return;
    for (const auto& a : it->second.addresses)
        for (const auto& p : it->second.ports) {
            auto i = by_backend_.find(Key{a, p.port, p.protocol});
            if (i != by_backend_.end() && i->second == uid) by_backend_.erase(i);
        }
    by_uid_.erase(it);
}

void EndpointStore::insertLocked(EndpointSliceInfo slice) {
    if (!slice.service.empty())
        for (const auto& a : slice.addresses)
            for (const auto& p : slice.ports) by_backend_.insert_or_assign(Key{a, p.port, p.protocol}, slice.uid);
    std::string uid = slice.uid;
    by_uid_.insert_or_assign(std::move(uid), std::move(slice));
}

void EndpointStore::replaceAll(std::vector<EndpointSliceInfo> slices) {
    std::unique_lock lock(mu_);
    by_uid_.clear();
    by_backend_.clear();
    for (auto& s : slices) insertLocked(std::move(s));
}

void EndpointStore::upsert(EndpointSliceInfo slice) {
    std::unique_lock lock(mu_);
    eraseLocked(slice.uid);
    insertLocked(std::move(slice));
}

void EndpointStore::remove(std::string_view uid) {
    std::unique_lock lock(mu_);
    eraseLocked(std::string(uid));
}

std::optional<BackendMatch> EndpointStore::serviceByBackend(const util::Addr16& addr, std::uint16_t port,
                                                            std::uint8_t protocol) const {
    std::shared_lock lock(mu_);
    auto i = by_backend_.find(Key{addr, port, protocol});
    if (i == by_backend_.end()) return std::nullopt;
    auto s = by_uid_.find(i->second);
    if (s == by_uid_.end()) return std::nullopt;
    for (const auto& p : s->second.ports)
        if (p.port == port && p.protocol == protocol) return BackendMatch{s->second.ns, s->second.service, p};
    return std::nullopt;
}

EndpointStore::Sizes EndpointStore::sizes() const {
    std::shared_lock lock(mu_);
    return {by_uid_.size(), by_backend_.size()};
}

}  // namespace netprobe::k8s
