// Pod traffic from a snapshot's flows: /api/v1/pods and the netprobe_pod_* metrics.
#include <netprobe/metrics/attribution.hpp>

#include <algorithm>
#include <bit>
#include <cstring>
#include <map>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include <netprobe/metrics/exposition.hpp>

#include "export/json_api.hpp"

namespace netprobe::metrics {

namespace {

util::Addr16 addrOf(const np_addr& a) { return std::bit_cast<util::Addr16>(a); }

struct Tuple {
    util::Addr16 src, dst;
    std::uint16_t sport, dport;
    std::uint8_t proto;
    auto operator<=>(const Tuple&) const = default;
};

struct Seen {
    std::uint64_t packets = 0, bytes = 0;
};

}  // namespace

namespace {

// Per pod, the traffic of the flows whose source (tx) or destination (rx) is one of
// its IPs, counting each 5-tuple once (its largest observation across hook points);
// interval: the last interval's deltas instead of the cumulative values.
std::vector<PodTraffic> sumPodTraffic(const collector::Snapshot& s, const std::vector<LocalPod>& pods, bool interval) {
    std::vector<PodTraffic> out(pods.size());
    std::map<util::Addr16, std::size_t> by_ip;
    for (std::size_t i = 0; i < pods.size(); ++i) {
        out[i].pod = &pods[i];
        if (pods[i].host_network) continue;
        for (const auto& ip : pods[i].ips) by_ip.emplace(ip, i);
    }
    if (by_ip.empty()) return out;
    // The same packets are seen on each monitored hook they cross: keep one observation per 5-tuple.
    std::map<Tuple, Seen> tuples;
    for (const auto& f : s.flows) {
        const std::uint64_t pk = interval ? f.interval_packets : f.packets;
        const std::uint64_t by = interval ? f.interval_bytes : f.bytes;
        if (pk == 0) continue;
        Tuple t{addrOf(f.key.src_ip), addrOf(f.key.dst_ip), f.key.src_port, f.key.dst_port, f.key.proto};
        if (!by_ip.contains(t.src) && !by_ip.contains(t.dst)) continue;
        auto& seen = tuples[t];
        seen.packets = std::max(seen.packets, pk);
        seen.bytes = std::max(seen.bytes, by);
    }
    for (const auto& [t, seen] : tuples) {
        if (auto it = by_ip.find(t.src); it != by_ip.end()) {
            out[it->second].tx_packets += seen.packets;
            out[it->second].tx_bytes += seen.bytes;
        }
        if (auto it = by_ip.find(t.dst); it != by_ip.end()) {
            out[it->second].rx_packets += seen.packets;
            out[it->second].rx_bytes += seen.bytes;
        }
    }
    return out;
}

}  // namespace

std::vector<PodTraffic> podTraffic(const collector::Snapshot& s, const std::vector<LocalPod>& pods) {
    return sumPodTraffic(s, pods, false);
}

void PodCounters::observe(const collector::Snapshot& s, const std::vector<LocalPod>& pods) {
    auto delta = sumPodTraffic(s, pods, true);
    std::lock_guard lock(mu_);
    if (s.sequence != 0 && s.sequence == last_sequence_) return;
    last_sequence_ = s.sequence;
    std::unordered_map<std::string, Totals> next;
    next.reserve(pods.size());
    for (const auto& d : delta) {
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
    std::lock_guard lock(mu_);
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

std::string renderPodMetrics(const std::vector<PodTraffic>& traffic, const PodMetricsOptions& options) {
    if (!options.enabled) return {};
    std::vector<const PodTraffic*> sel;
    for (const auto& t : traffic)
        if (t.pod && !t.pod->host_network) sel.push_back(&t);
    std::sort(sel.begin(), sel.end(), [](const PodTraffic* a, const PodTraffic* b) {
        auto ta = a->rx_bytes + a->tx_bytes, tb = b->rx_bytes + b->tx_bytes;
        if (ta != tb) return ta > tb;
        return std::tie(a->pod->ns, a->pod->name) < std::tie(b->pod->ns, b->pod->name);
    });
    PodTraffic other;
    const bool has_other = sel.size() > options.limit;
    for (std::size_t i = options.limit; i < sel.size(); ++i) {
        other.rx_packets += sel[i]->rx_packets;
        other.rx_bytes += sel[i]->rx_bytes;
        other.tx_packets += sel[i]->tx_packets;
        other.tx_bytes += sel[i]->tx_bytes;
    }
    const std::size_t n = std::min(sel.size(), options.limit);
    ExpositionWriter w;
    struct Fam {
        const char* name;
        const char* help;
        std::uint64_t PodTraffic::*field;
    };
    static constexpr Fam fams[] = {
        {"netprobe_pod_rx_packets_total", "Packets of flows to a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::rx_packets},
        {"netprobe_pod_rx_bytes_total", "Bytes of flows to a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::rx_bytes},
        {"netprobe_pod_tx_packets_total", "Packets of flows from a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::tx_packets},
        {"netprobe_pod_tx_bytes_total", "Bytes of flows from a local pod (beyond the series budget: pod=\"other\").",
         &PodTraffic::tx_bytes},
    };
    for (const auto& f : fams) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < n; ++i)
            w.sample(f.name, {{"namespace", sel[i]->pod->ns}, {"pod", sel[i]->pod->name}}, sel[i]->*f.field);
        if (has_other) w.sample(f.name, {{"namespace", "other"}, {"pod", "other"}}, other.*f.field);
    }
    return w.take();
}

void WorkloadCounters::observe(const collector::Snapshot& s, const Attribution& attribution) {
    {
        std::lock_guard lock(mu_);
        if (s.sequence != 0 && s.sequence == last_sequence_) return;
        last_sequence_ = s.sequence;
    }
    // One observation per 5-tuple (a packet crossing two monitored veths is seen twice).
    struct Obs {
        const flow_key* key = nullptr;
        Seen seen;
    };
    std::map<Tuple, Obs> tuples;
    for (const auto& f : s.flows) {
        if (f.interval_packets == 0) continue;
        Tuple t{addrOf(f.key.src_ip), addrOf(f.key.dst_ip), f.key.src_port, f.key.dst_port, f.key.proto};
        auto& o = tuples[t];
        if (!o.key) o.key = &f.key;
        o.seen.packets = std::max(o.seen.packets, f.interval_packets);
        o.seen.bytes = std::max(o.seen.bytes, f.interval_bytes);
    }
    std::map<WorkloadPair, Seen> delta;
    // Attribution depends on the addresses, the destination port and the protocol, not on
    // the source port: the many connections between two pods share one lookup.
    std::map<Tuple, std::optional<WorkloadPair>> memo;
    for (const auto& [t, o] : tuples) {
        Tuple mk = t;
        mk.sport = 0;
        auto it = memo.find(mk);
        if (it == memo.end()) {
            auto l = attribution.flow(*o.key);
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
        d.packets += o.seen.packets;
        d.bytes += o.seen.bytes;
    }
    auto known = attribution.workloads();
    std::sort(known.begin(), known.end());
    auto live = [&](const WorkloadRef& w) {
        return (w.ns.empty() && w.name == kExternalWorkload) || std::binary_search(known.begin(), known.end(), w);
    };
    const WorkloadPair overflow{{"other", "other"}, {"other", "other"}};
    std::lock_guard lock(mu_);
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
    std::lock_guard lock(mu_);
    std::vector<WorkloadTraffic> out;
    out.reserve(by_pair_.size());
    for (const auto& [p, t] : by_pair_) out.push_back(t);
    return out;
}

std::string renderWorkloadMetrics(const std::vector<WorkloadTraffic>& traffic, const WorkloadMetricsOptions& options) {
    if (!options.enabled) return {};
    const WorkloadPair overflow{{"other", "other"}, {"other", "other"}};
    std::vector<const WorkloadTraffic*> sel;
    WorkloadTraffic other;
    bool has_other = false;
    for (const auto& t : traffic) {
        if (t.pair == overflow) {  // WorkloadCounters' own overflow (max_pairs)
            other.packets += t.packets;
            other.bytes += t.bytes;
            has_other = true;
        } else {
            sel.push_back(&t);
        }
    }
    std::sort(sel.begin(), sel.end(), [](const WorkloadTraffic* a, const WorkloadTraffic* b) {
        if (a->bytes != b->bytes) return a->bytes > b->bytes;
        return a->pair < b->pair;
    });
    const std::size_t n = std::min(sel.size(), options.limit);
    for (std::size_t i = n; i < sel.size(); ++i) {
        other.packets += sel[i]->packets;
        other.bytes += sel[i]->bytes;
        has_other = true;
    }
    // the budgeted series keep a stable order (by pair) in the output
    std::sort(sel.begin(), sel.begin() + static_cast<std::ptrdiff_t>(n),
              [](const WorkloadTraffic* a, const WorkloadTraffic* b) { return a->pair < b->pair; });
    ExpositionWriter w;
    struct Fam {
        const char* name;
        const char* help;
        std::uint64_t WorkloadTraffic::*field;
    };
    static constexpr Fam fams[] = {
        {"netprobe_workload_traffic_packets_total",
         "Packets from one workload to another (an end without a pod: workload=\"external\"; beyond the series "
         "budget: \"other\").",
         &WorkloadTraffic::packets},
        {"netprobe_workload_traffic_bytes_total",
         "Bytes from one workload to another (an end without a pod: workload=\"external\"; beyond the series "
         "budget: \"other\").",
         &WorkloadTraffic::bytes},
    };
    for (const auto& f : fams) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& p = sel[i]->pair;
            w.sample(f.name,
                     {{"src_namespace", p.src.ns}, {"src_workload", p.src.name}, {"dst_namespace", p.dst.ns},
                      {"dst_workload", p.dst.name}},
                     sel[i]->*f.field);
        }
        if (has_other)
            w.sample(f.name,
                     {{"src_namespace", "other"}, {"src_workload", "other"}, {"dst_namespace", "other"},
                      {"dst_workload", "other"}},
                     other.*f.field);
    }
    return w.take();
}

std::string podsJson(const collector::Snapshot& s, const std::vector<PodTraffic>& traffic, bool enabled, bool synced) {
    auto arr = nlohmann::json::array();
    for (const auto& t : traffic) {
        if (!t.pod) continue;
        const auto& p = *t.pod;
        auto ips = nlohmann::json::array();
        for (const auto& ip : p.ips) ips.push_back(util::formatAddr(ip));
        auto host_ifs = nlohmann::json::array();
        for (const auto& i : p.host_interfaces) host_ifs.push_back(i);
        arr.push_back({
            {"namespace", p.ns},
            {"name", p.name},
            {"uid", p.uid},
            {"node", p.node},
            {"ips", std::move(ips)},
            {"host_network", p.host_network},
            {"workload", p.workload},
            {"workload_kind", p.workload_kind},
            {"host_interfaces", std::move(host_ifs)},
            {"rx_packets", t.rx_packets},
            {"rx_bytes", t.rx_bytes},
            {"tx_packets", t.tx_packets},
            {"tx_bytes", t.tx_bytes},
        });
    }
    std::sort(arr.begin(), arr.end(), [](const nlohmann::json& a, const nlohmann::json& b) {
        return std::tie(a["namespace"].get_ref<const std::string&>(), a["name"].get_ref<const std::string&>()) <
               std::tie(b["namespace"].get_ref<const std::string&>(), b["name"].get_ref<const std::string&>());
    });
    nlohmann::json doc = {{"collected_at", rfc3339(s.taken_at)},
                          {"enabled", enabled},
                          {"synced", synced},
                          {"total", arr.size()},
                          {"pods", std::move(arr)}};
    return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace netprobe::metrics
