// The per-container export: netprobe_container_* and /api/v1/containers.
#include <netprobe/metrics/render.hpp>

#include <algorithm>
#include <bit>
#include <map>
#include <tuple>

#include <netprobe/metrics/exposition.hpp>

#include <set>

#include "metrics/json_api.hpp"

namespace netprobe::metrics {

using analysis::ContainerTraffic;

namespace {
util::Addr16 addrOf(const np_addr& a) { return std::bit_cast<util::Addr16>(a); }
}  // namespace

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

nlohmann::json containersJson(const Views& v, const Attribution* attribution) {
    const auto& s = *v.snapshot;
    const bool connections_enabled = attribution && s.stack && s.stack->features.connections;
    const bool cgroup_traffic_enabled = attribution && s.cgroup_traffic;
    const bool enabled = connections_enabled || cgroup_traffic_enabled;
    struct Entry {
        ContainerLabels labels;
        std::set<std::uint64_t> cgroups;
        std::set<std::string> paths;
        std::set<std::uint32_t> netns;
        std::uint64_t open = 0, closed = 0;
        std::uint64_t tx_packets = 0, tx_bytes = 0, rx_packets = 0, rx_bytes = 0;
        const ContainerTraffic* traffic = nullptr;  // every protocol, from the cgroup counters
    };
    std::map<std::string, Entry> by_id;                 // container id -> entry
    std::map<std::uint64_t, std::string> container_of;  // cgroup id -> container id ("" = none)
    static const std::vector<ContainerTraffic> kNone;
    const auto& cg_traffic = v.groups ? v.groups->containers : kNone;
    for (const auto& t : cg_traffic) {
        auto& e = by_id[t.container_id];
        e.labels = t.labels;
        e.traffic = &t;
        for (auto id : t.cgroup_ids) {
            e.cgroups.insert(id);
            container_of.emplace(id, t.container_id);
        }
        e.paths.insert(t.cgroup_paths.begin(), t.cgroup_paths.end());
    }
    if (connections_enabled) {
        for (const auto& c : s.stack->connections) {
            if (!c.cgroup_id) continue;
            auto it = container_of.find(c.cgroup_id);
            if (it == container_of.end()) {
                auto l = attribution->container(c.cgroup_id);
                std::string id = l && !l->container_id.empty() ? l->container_id : "";
                if (!id.empty()) {
                    auto& e = by_id[id];
                    if (e.labels.container_id.empty() || (e.labels.pod.empty() && !l->pod.empty())) e.labels = *l;
                    e.cgroups.insert(c.cgroup_id);
                    e.paths.insert(l->cgroup_path);
                }
                it = container_of.emplace(c.cgroup_id, id).first;
            }
            if (it->second.empty()) continue;
            auto& e = by_id[it->second];
            (c.open ? e.open : e.closed) += 1;
            e.netns.insert(c.netns);
        }
    }
    if (!by_id.empty() && v.groups && v.flows) {
        const auto& conns = v.groups->connections;
        struct Obs {
            std::uint64_t packets = 0, bytes = 0;
            std::string src, dst;  // container ids
        };
        std::map<std::tuple<util::Addr16, util::Addr16, std::uint16_t, std::uint16_t>, Obs> tuples;
        auto containerOfCgroup = [&](std::uint64_t cg) -> std::string {
            auto it = container_of.find(cg);
            return it == container_of.end() ? std::string() : it->second;
        };
        for (const auto& f : v.flows->records) {
            if (f.key.proto != 6) continue;
            const auto src = addrOf(f.key.src_ip), dst = addrOf(f.key.dst_ip);
            auto& o = tuples[{src, dst, f.key.src_port, f.key.dst_port}];
            if (o.packets == 0 && o.bytes == 0) {
                o.src = containerOfCgroup(conns.cgroupOf(src, f.key.src_port, dst, f.key.dst_port));
                o.dst = containerOfCgroup(conns.cgroupOf(dst, f.key.dst_port, src, f.key.src_port));
            }
            o.packets = std::max(o.packets, f.packets);
            o.bytes = std::max(o.bytes, f.bytes);
        }
        for (const auto& [t, o] : tuples) {
            if (auto it = by_id.find(o.src); !o.src.empty() && it != by_id.end()) {
                it->second.tx_packets += o.packets;
                it->second.tx_bytes += o.bytes;
            }
            if (auto it = by_id.find(o.dst); !o.dst.empty() && it != by_id.end()) {
                it->second.rx_packets += o.packets;
                it->second.rx_bytes += o.bytes;
            }
        }
    }
    std::map<std::uint32_t, std::string> veth_of_netns;
    if (!by_id.empty())
        for (const auto& l : attribution->interfaceLinks())
            if (l.peer_netns_inode) veth_of_netns.emplace(l.peer_netns_inode, l.name);
    auto arr = nlohmann::json::array();
    for (const auto& [id, e] : by_id) {
        auto netns = nlohmann::json::array();
        auto veths = nlohmann::json::array();
        // All protocols, from the monitored host-side veths of its namespaces: what enters
        // the host side (ingress) left the namespace.
        std::uint64_t ns_tx_packets = 0, ns_tx_bytes = 0, ns_rx_packets = 0, ns_rx_bytes = 0;
        bool ns_monitored = false;
        for (auto n : e.netns) {
            netns.push_back(n);
            auto v = veth_of_netns.find(n);
            if (v == veth_of_netns.end()) continue;
            veths.push_back(v->second);
            for (const auto& i : s.interfaces) {
                if (i.name != v->second) continue;
                ns_monitored = true;
                ns_tx_packets += i.ingress_packets;
                ns_tx_bytes += i.ingress_bytes;
                ns_rx_packets += i.egress_packets;
                ns_rx_bytes += i.egress_bytes;
            }
        }
        nlohmann::json j = {
            {"container_id", id},
            {"pod_uid", e.labels.pod_uid.empty() ? nlohmann::json(nullptr) : nlohmann::json(e.labels.pod_uid)},
            {"cgroup_ids", e.cgroups},
            {"cgroup_paths", e.paths},
            {"netns", std::move(netns)},
            {"host_interfaces", std::move(veths)},
            {"connections_open", e.open},
            {"connections_closed", e.closed},
            {"tx_packets", e.tx_packets},
            {"tx_bytes", e.tx_bytes},
            {"rx_packets", e.rx_packets},
            {"rx_bytes", e.rx_bytes},
        };
        if (cgroup_traffic_enabled) {
            // Every protocol of its sockets (cgroup_skb on the cgroup v2 root); null when
            // its cgroups have had no traffic since the agent started.
            if (e.traffic) {
                nlohmann::json by_proto = nlohmann::json::object();
                ebpf::Counter rx_all = e.traffic->rx(), tx_all = e.traffic->tx();
                for (int p = 0; p < NP_CG_PROTO_MAX; ++p) {
                    const auto& rx = e.traffic->counters[NP_DIR_INGRESS][static_cast<std::size_t>(p)];
                    const auto& tx = e.traffic->counters[NP_DIR_EGRESS][static_cast<std::size_t>(p)];
                    by_proto[ebpf::cgroupProtoName(p)] = {{"rx_packets", rx.packets}, {"rx_bytes", rx.bytes},
                                                          {"tx_packets", tx.packets}, {"tx_bytes", tx.bytes}};
                }
                by_proto["all"] = {{"rx_packets", rx_all.packets}, {"rx_bytes", rx_all.bytes},
                                   {"tx_packets", tx_all.packets}, {"tx_bytes", tx_all.bytes}};
                j["traffic"] = std::move(by_proto);
            } else {
                j["traffic"] = nullptr;
            }
        }
        if (ns_monitored) {
            j["netns_tx_packets"] = ns_tx_packets;
            j["netns_tx_bytes"] = ns_tx_bytes;
            j["netns_rx_packets"] = ns_rx_packets;
            j["netns_rx_bytes"] = ns_rx_bytes;
        }
        if (!e.labels.pod.empty()) {
            j["namespace"] = e.labels.ns;
            j["pod"] = e.labels.pod;
            j["workload"] = e.labels.workload;
        }
        arr.push_back(std::move(j));
    }
    return {{"collected_at", rfc3339(s.taken_at)},
            {"enabled", enabled},
            {"connections_enabled", connections_enabled},
            {"cgroup_traffic_enabled", cgroup_traffic_enabled},
            {"total", arr.size()},
            {"containers", std::move(arr)}};
}

}  // namespace netprobe::metrics
