#include "netprobe/ebpf/cgroup_traffic.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cerrno>
#include <map>
#include <unordered_set>

#include "cgroup_traffic.skel.h"
#include "netprobe/ebpf/map_io.hpp"
#include "netprobe/util/cgroup.hpp"

namespace netprobe::ebpf {

const char* cgroupProtoName(int proto) {
    switch (proto) {
        case NP_CG_PROTO_TCP: return "tcp";
        case NP_CG_PROTO_UDP: return "udp";
        case NP_CG_PROTO_ICMP: return "icmp";
        default: return "other";
    }
}

Counter CgroupTraffic::total(int direction) const {
    Counter c;
    for (const auto& p : counters[static_cast<std::size_t>(direction)]) c += p;
    return c;
}

struct CgroupTrafficMonitor::Impl {
    CgroupTrafficOptions opts;
    std::string root;
    Owned<cgroup_traffic_bpf, cgroup_traffic_bpf__destroy> skel;
    Owned<bpf_link, bpf_link__destroy> link_in, link_eg;
    util::Scheduler* scheduler = nullptr;
    std::optional<util::Scheduler::TaskId> sweep_task;
    std::atomic<std::uint64_t> removed_total{0}, remove_failures{0};
    // sweep task only: cgroup id -> when a sweep first saw an entry of it
    std::map<std::uint64_t, std::chrono::steady_clock::time_point> first_seen;

    ~Impl() {
        if (sweep_task) scheduler->cancel(*sweep_task);
    }

    // Deletes the entries of cgroups that no longer exist.
    void sweep() {
        const int fd = bpf_map__fd(skel->maps.cgroup_traffic);
        const auto now = std::chrono::steady_clock::now();
        std::unordered_set<std::uint64_t> ids;
        auto r = forEachHashEntry(fd, sizeof(np_cgroup_key), 0 + sizeof(np_counter) * static_cast<std::size_t>(possibleCpus()),
                                  [&](const void* k, const void*) {
                                      ids.insert(static_cast<const np_cgroup_key*>(k)->cgroup_id);
                                  });
        if (!r) {
            spdlog::debug("cgroup traffic: sweep: {}", r.error().what());
            return;
        }
        for (auto it = first_seen.begin(); it != first_seen.end();)
            it = ids.contains(it->first) ? std::next(it) : first_seen.erase(it);
        for (auto id : ids) first_seen.emplace(id, now);
        const auto walk_start = std::chrono::steady_clock::now();
        std::unordered_set<std::uint64_t> alive;
        auto walked = util::walkCgroupTree(root, 64, [&](std::string_view, std::uint64_t id) { alive.insert(id); });
        if (!walked) {
            spdlog::debug("cgroup traffic: sweep: {}", walked.error().what());
            return;
        }
        for (auto it = first_seen.begin(); it != first_seen.end();) {
            if (alive.contains(it->first) || it->second >= walk_start) {
                ++it;
                continue;
            }
            bool all = true;
            for (std::uint8_t d = 0; d < NP_DIR_MAX; ++d)
                for (std::uint8_t p = 0; p < NP_CG_PROTO_MAX; ++p) {
                    np_cgroup_key k{};
                    k.cgroup_id = it->first;
                    k.direction = d;
                    k.proto = p;
                    if (bpf_map_delete_elem(fd, &k) != 0 && errno != ENOENT) {
                        all = false;
                        remove_failures.fetch_add(1);
                    }
                }
            if (!all) {  // retried at the next sweep
                ++it;
                continue;
            }
            removed_total.fetch_add(1);
            it = first_seen.erase(it);
        }
    }
};

CgroupTrafficMonitor::CgroupTrafficMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CgroupTrafficMonitor::~CgroupTrafficMonitor() = default;

const std::string& CgroupTrafficMonitor::cgroupRoot() const { return impl_->root; }

Result<std::unique_ptr<CgroupTrafficMonitor>> CgroupTrafficMonitor::create(CgroupTrafficOptions options,
                                                                           util::Scheduler* scheduler) {
    auto im = std::make_unique<Impl>();
    im->opts = options;
    if (options.cgroup_root.empty()) {
        auto m = util::cgroup2Mount();
        if (!m) return std::unexpected(m.error());
        im->root = *m;
    } else {
        im->root = options.cgroup_root;
    }
    UniqueFd cg(::open(im->root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg) return std::unexpected(errnoError(errno, "open cgroup v2 root " + im->root));

    auto skel = loadSkeleton<cgroup_traffic_bpf, cgroup_traffic_bpf__open, cgroup_traffic_bpf__load,
                             cgroup_traffic_bpf__destroy>("cgroup traffic", [&](cgroup_traffic_bpf& s) -> Result<void> {
        if (int err = bpf_map__set_max_entries(s.maps.cgroup_traffic, std::max<std::uint32_t>(options.max_entries, 1)))
            return std::unexpected(errnoError(-err, "cgroup traffic: size cgroup_traffic"));
        return {};
    });
    if (!skel) return std::unexpected(skel.error());
    im->skel = std::move(*skel);
    auto* s = im->skel.get();
    // BPF links (BPF_F_ALLOW_MULTI semantics): other programs on the root (systemd's)
    // keep running; the links vanish with the process.
    im->link_in.reset(bpf_program__attach_cgroup(s->progs.netprobe_cg_in, cg.get()));
    if (!im->link_in) return std::unexpected(errnoError(errno, "cgroup traffic: attach ingress to " + im->root));
    im->link_eg.reset(bpf_program__attach_cgroup(s->progs.netprobe_cg_eg, cg.get()));
    if (!im->link_eg) return std::unexpected(errnoError(errno, "cgroup traffic: attach egress to " + im->root));
    if (scheduler && options.sweep_interval.count() > 0) {
        im->scheduler = scheduler;
        im->sweep_task = scheduler->every("cgroup traffic: remove gone cgroups", options.sweep_interval,
                                          [raw = im.get()] { raw->sweep(); });
    }
    spdlog::info("cgroup traffic: cgroup_skb ingress/egress attached to {} ({} entries)", im->root,
                 bpf_map__max_entries(s->maps.cgroup_traffic));
    return std::unique_ptr<CgroupTrafficMonitor>(new CgroupTrafficMonitor(std::move(im)));
}

Result<CgroupTrafficStats> CgroupTrafficMonitor::read() const {
    const auto& im = *impl_;
    CgroupTrafficStats out;
    out.cgroup_root = im.root;
    auto* s = im.skel.get();
    out.capacity = bpf_map__max_entries(s->maps.cgroup_traffic);
    const std::uint32_t err_idx = NP_CG_ERR_INSERT;
    auto errs = lookupPerCpu<std::uint64_t>(bpf_map__fd(s->maps.cgroup_errors), err_idx, "cgroup_errors");
    if (!errs) return std::unexpected(errs.error());
    out.insert_failures = sumValues(*errs);
    std::map<std::uint64_t, CgroupTraffic> by_id;
    auto r = readPerCpuHash<np_cgroup_key, np_counter>(
        bpf_map__fd(s->maps.cgroup_traffic), [&](const np_cgroup_key& key, std::span<const np_counter> v) {
            if (key.direction >= NP_DIR_MAX || key.proto >= NP_CG_PROTO_MAX) return;
            auto& t = by_id[key.cgroup_id];
            t.cgroup_id = key.cgroup_id;
            t.counters[key.direction][key.proto] = sumCounters(v);
        });
    if (!r) return std::unexpected(r.error());
    out.entries = *r;
    out.removed_total = im.removed_total.load();
    out.remove_failures = im.remove_failures.load();
    out.cgroups.reserve(by_id.size());
    for (auto& [_, t] : by_id) out.cgroups.push_back(t);
    return out;
}

}  // namespace netprobe::ebpf
