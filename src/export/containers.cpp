#include <netprobe/metrics/containers.hpp>

#include <algorithm>
#include <map>
#include <tuple>

#include <netprobe/metrics/exposition.hpp>

namespace netprobe::metrics {

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

std::string renderContainerMetrics(const std::vector<ContainerTraffic>& traffic, const ContainerMetricsOptions& options) {
    if (!options.enabled) return {};
    struct Row {
        const ContainerTraffic* t;
        ebpf::Counter rx, tx;
    };
    std::vector<Row> rows;
    rows.reserve(traffic.size());
    for (const auto& t : traffic) rows.push_back({&t, t.rx(), t.tx()});
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
        auto ta = a.rx.bytes + a.tx.bytes, tb = b.rx.bytes + b.tx.bytes;
        if (ta != tb) return ta > tb;
        return a.t->container_id < b.t->container_id;
    });
    const std::size_t n = std::min(rows.size(), options.limit);
    const bool has_other = rows.size() > options.limit;
    ebpf::Counter other_rx, other_tx;
    for (std::size_t i = n; i < rows.size(); ++i) {
        other_rx += rows[i].rx;
        other_tx += rows[i].tx;
    }
    ExpositionWriter w;
    struct Fam {
        const char* name;
        const char* help;
        bool rx;
        bool bytes;
    };
    static constexpr Fam fams[] = {
        {"netprobe_container_rx_packets_total",
         "Packets of every protocol received by a container's sockets (cgroup_skb ingress; beyond the series budget: "
         "container_id=\"other\").",
         true, false},
        {"netprobe_container_rx_bytes_total",
         "IP bytes of every protocol received by a container's sockets (beyond the series budget: container_id=\"other\").",
         true, true},
        {"netprobe_container_tx_packets_total",
         "Packets of every protocol sent by a container's sockets (cgroup_skb egress; beyond the series budget: "
         "container_id=\"other\").",
         false, false},
        {"netprobe_container_tx_bytes_total",
         "IP bytes of every protocol sent by a container's sockets (beyond the series budget: container_id=\"other\").",
         false, true},
    };
    auto value = [](const ebpf::Counter& c, bool bytes) { return bytes ? c.bytes : c.packets; };
    for (const auto& f : fams) {
        w.family(f.name, MetricType::Counter, f.help);
        for (std::size_t i = 0; i < n; ++i) {
            const auto& r = rows[i];
            w.sample(f.name,
                     {{"container_id", r.t->container_id}, {"namespace", r.t->labels.ns}, {"pod", r.t->labels.pod}},
                     value(f.rx ? r.rx : r.tx, f.bytes));
        }
        if (has_other)
            w.sample(f.name, {{"container_id", "other"}, {"namespace", "other"}, {"pod", "other"}},
                     value(f.rx ? other_rx : other_tx, f.bytes));
    }
    return w.take();
}

}  // namespace netprobe::metrics
