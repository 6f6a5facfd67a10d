#include "netprobe/analysis/grouping.hpp"

#include <algorithm>
#include <bit>
#include <optional>
#include <tuple>

namespace netprobe::analysis {

namespace {

util::Addr16 addrOf(const np_addr& a) { return std::bit_cast<util::Addr16>(a); }

struct Tuple {
    util::Addr16 src, dst;
    std::uint16_t sport, dport;
    std::uint8_t proto;
    auto operator<=>(const Tuple&) const = default;
};

Tuple tupleOf(const flow_key& k) {
    return {addrOf(k.src_ip), addrOf(k.dst_ip), k.src_port, k.dst_port, k.proto};
}

}  // namespace

// ---- one observation per 5-tuple ----

PodVeths podVeths(const std::vector<LocalPod>& pods, const std::vector<collector::InterfaceStats>& interfaces) {
    PodVeths out;
    for (const auto& p : pods) {
        if (p.host_network) continue;
        for (const auto& name : p.host_interfaces)
            for (const auto& i : interfaces)
                if (i.name == name) {
                    auto& ips = out[i.index];
                    ips.insert(ips.end(), p.ips.begin(), p.ips.end());
                }
    }
    return out;
}

std::vector<TupleTraffic> perTuple(std::span<const collector::FlowSample> samples, const PodVeths& veths) {
    // A pod IP -> the ifindex of its pod's monitored host veth.
    std::map<util::Addr16, std::uint32_t> own;
    for (const auto& [ifindex, ips] : veths)
        for (const auto& ip : ips) own.emplace(ip, ifindex);
    // The one place a tuple is counted, the same in every interval: where the packets
    // leave the sending pod (its veth, host-side ingress), else where they enter the
    // receiving pod (its veth, host-side egress). A sample elsewhere is the same packets
    // seen again. Without either, the largest sample of the interval.
    auto designated = [&](const flow_key& k) -> std::optional<std::pair<std::uint32_t, std::uint8_t>> {
        if (auto it = own.find(addrOf(k.src_ip)); it != own.end()) return std::pair{it->second, std::uint8_t{NP_DIR_INGRESS}};
        if (auto it = own.find(addrOf(k.dst_ip)); it != own.end()) return std::pair{it->second, std::uint8_t{NP_DIR_EGRESS}};
        return std::nullopt;
    };
    std::map<Tuple, TupleTraffic> by;
    for (const auto& f : samples) {
        if (f.packets == 0) continue;
        if (!own.empty()) {
            if (auto d = designated(f.key); d && (f.key.ifindex != d->first || f.key.direction != d->second)) continue;
        }
        auto& t = by[tupleOf(f.key)];
        if (f.packets > t.packets) t = {f.key, f.packets, f.bytes};
    }
    std::vector<TupleTraffic> out;
    out.reserve(by.size());
    for (auto& [_, t] : by) out.push_back(t);
    return out;
}

// ---- pods ----

std::vector<PodTraffic> podTraffic(std::span<const TupleTraffic> tuples, const std::vector<LocalPod>& pods) {
    std::vector<PodTraffic> out(pods.size());
    std::map<util::Addr16, std::size_t> by_ip;
    for (std::size_t i = 0; i < pods.size(); ++i) {
        out[i].pod = &pods[i];
        if (pods[i].host_network) continue;
        for (const auto& ip : pods[i].ips) by_ip.emplace(ip, i);
    }
    if (by_ip.empty()) return out;
    for (const auto& t : tuples) {
        if (auto it = by_ip.find(addrOf(t.key.src_ip)); it != by_ip.end()) {
            out[it->second].tx_packets += t.packets;
            out[it->second].tx_bytes += t.bytes;
        }
        if (auto it = by_ip.find(addrOf(t.key.dst_ip)); it != by_ip.end()) {
            out[it->second].rx_packets += t.packets;
            out[it->second].rx_bytes += t.bytes;
        }
    }
    return out;
}

void PodCounters::observe(std::span<const TupleTraffic> tuples, const std::vector<LocalPod>& pods) {
    std::unordered_map<std::string, Totals> next;
    next.reserve(pods.size());
    for (const auto& d : podTraffic(tuples, pods)) {
        if (!d.pod || d.pod->host_network) continue;
        Totals t;
        if (auto it = by_uid_.find(d.pod->uid); it != by_uid_.end()) t = it->second;
        t.rx_packets += d.rx_packets;
        t.rx_bytes += d.rx_bytes;
        t.tx_packets += d.tx_packets;
        t.tx_bytes += d.tx_bytes;
        next[d.pod->uid] = t;
    }
    by_uid_ = std::move(next);  // pods no longer known are forgotten
}

std::vector<PodTraffic> PodCounters::traffic(const std::vector<LocalPod>& pods) const {
    std::vector<PodTraffic> out(pods.size());
    for (std::size_t i = 0; i < pods.size(); ++i) {
        out[i].pod = &pods[i];
        auto it = by_uid_.find(pods[i].uid);
        if (it == by_uid_.end()) continue;
        out[i].rx_packets = it->second.rx_packets;
        out[i].rx_bytes = it->second.rx_bytes;
        out[i].tx_packets = it->second.tx_packets;
        out[i].tx_bytes = it->second.tx_bytes;
    }
    return out;
}

// ---- workloads ----

void WorkloadCounters::observe(std::span<const TupleTraffic> tuples, const Attribution& attribution) {
    struct Sum {
        std::uint64_t packets = 0, bytes = 0;
    };
    std::map<WorkloadPair, Sum> delta;
    // Attribution depends on the addresses, the destination port and the protocol, not on
    // the source port: the many connections between two pods share one lookup.
    std::map<Tuple, std::optional<WorkloadPair>> memo;
    for (const auto& o : tuples) {
        Tuple mk = tupleOf(o.key);
        mk.sport = 0;
        auto it = memo.find(mk);
        if (it == memo.end()) {
            auto l = attribution.flow(o.key);
            std::optional<WorkloadPair> p;
            if (!l.src_workload.empty() || !l.dst_workload.empty()) {  // else no pod at either end
                p = WorkloadPair{{l.src_namespace, l.src_workload}, {l.dst_namespace, l.dst_workload}};
                if (l.src_workload.empty()) p->src = {"", kExternalWorkload};
                if (l.dst_workload.empty()) p->dst = {"", kExternalWorkload};
            }
            it = memo.emplace(mk, std::move(p)).first;
        }
        if (!it->second) continue;
        auto& d = delta[*it->second];
        d.packets += o.packets;
        d.bytes += o.bytes;
    }
    auto known = attribution.workloads();
    std::sort(known.begin(), known.end());
    auto live = [&](const WorkloadRef& w) {
        return (w.ns.empty() && w.name == kExternalWorkload) || std::binary_search(known.begin(), known.end(), w);
    };
    const WorkloadPair overflow{{"other", "other"}, {"other", "other"}};
    for (const auto& [p, d] : delta) {
        auto it = by_pair_.find(p);
        if (it == by_pair_.end())
            it = by_pair_.size() < max_pairs_ ? by_pair_.emplace(p, WorkloadTraffic{p, 0, 0}).first
                                              : by_pair_.try_emplace(overflow, WorkloadTraffic{overflow, 0, 0}).first;
        it->second.packets += d.packets;
        it->second.bytes += d.bytes;
    }
    std::erase_if(by_pair_, [&](const auto& e) {
        return e.first != overflow && (!live(e.first.src) || !live(e.first.dst));
    });
}

std::vector<WorkloadTraffic> WorkloadCounters::traffic() const {
    std::vector<WorkloadTraffic> out;
    out.reserve(by_pair_.size());
    for (const auto& [p, t] : by_pair_) out.push_back(t);
    return out;
}

// ---- containers ----

ebpf::Counter ContainerTraffic::rx() const {
    ebpf::Counter c;
    for (const auto& p : counters[NP_DIR_INGRESS]) c += p;
    return c;
}

ebpf::Counter ContainerTraffic::tx() const {
    ebpf::Counter c;
    for (const auto& p : counters[NP_DIR_EGRESS]) c += p;
    return c;
}

std::vector<ContainerTraffic> containerTraffic(const collector::Snapshot& s, const Attribution* attribution) {
    std::vector<ContainerTraffic> out;
    if (!s.cgroup_traffic || !attribution) return out;
    std::map<std::string, ContainerTraffic> by_id;
    for (const auto& cg : s.cgroup_traffic->cgroups) {
        if (!cg.cgroup_id) continue;
        auto l = attribution->container(cg.cgroup_id);
        if (!l || l->container_id.empty()) continue;
        auto& t = by_id[l->container_id];
        if (t.container_id.empty() || (t.labels.pod.empty() && !l->pod.empty())) {
            t.container_id = l->container_id;
            t.labels = *l;
        }
        t.cgroup_ids.push_back(cg.cgroup_id);
        if (std::find(t.cgroup_paths.begin(), t.cgroup_paths.end(), l->cgroup_path) == t.cgroup_paths.end())
            t.cgroup_paths.push_back(l->cgroup_path);
        for (std::size_t d = 0; d < NP_DIR_MAX; ++d)
            for (std::size_t p = 0; p < NP_CG_PROTO_MAX; ++p) t.counters[d][p] += cg.counters[d][p];
    }
    out.reserve(by_id.size());
    for (auto& [_, t] : by_id) out.push_back(std::move(t));
    return out;
}

// ---- connections ----

ConnectionIndex::ConnectionIndex(const collector::Snapshot& s) {
    if (!s.stack) return;
    for (const auto& c : s.stack->connections) {
        if (!c.cgroup_id || !c.src_port) continue;
        // open records come first, then the newest closed ones: the first record wins
        by_tuple_.emplace(Key{c.src_ip, c.dst_ip, c.src_port, c.dst_port}, c.cgroup_id);
    }
}

std::uint64_t ConnectionIndex::cgroupOf(const util::Addr16& ip, std::uint16_t port, const util::Addr16& peer_ip,
                                        std::uint16_t peer_port) const {
    auto it = by_tuple_.find(Key{ip, peer_ip, port, peer_port});
    return it == by_tuple_.end() ? 0 : it->second;
}

// ---- the stage ----

Grouping::Grouping(std::shared_ptr<const Attribution> attribution, GroupingOptions options)
    : attribution_(std::move(attribution)), options_(options), workloads_(options.max_workload_pairs) {}

void Grouping::run(const collector::Snapshot& s, Views& views) {
    auto v = std::make_shared<GroupView>();
    v->connections = ConnectionIndex(s);
    v->attribution = attribution_ != nullptr;
    if (attribution_) {
        v->kubernetes = attribution_->kubernetes();
        v->containers = containerTraffic(s, attribution_.get());
        if (v->kubernetes) {
            v->synced = attribution_->synced();
            v->pods = attribution_->localPods();
            const auto tuples = perTuple(s.flows, podVeths(v->pods, s.interfaces));
            pods_.observe(tuples, v->pods);
            v->pod_traffic = pods_.traffic(v->pods);
            if (options_.workloads) {
                v->workloads_enabled = true;
                workloads_.observe(tuples, *attribution_);
                v->workloads = workloads_.traffic();
            }
        }
    }
    views.groups = std::move(v);
}

}  // namespace netprobe::analysis
