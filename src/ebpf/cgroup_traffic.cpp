#include "netprobe/ebpf/cgroup_traffic.hpp"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <unordered_set>

#include "cgroup_traffic.skel.h"
#include "ebpf/datapath.hpp"
#include "ebpf/fd.hpp"

namespace netprobe::ebpf {

namespace {

struct SkelDeleter {
    void operator()(cgroup_traffic_bpf* s) const { cgroup_traffic_bpf__destroy(s); }
};
struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};

// /proc/mounts octal escapes (\040 = space).
std::string unescapeMount(const std::string& s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\\' && i + 3 < s.size() + 0 && std::isdigit(static_cast<unsigned char>(s[i + 1]))) {
            out.push_back(static_cast<char>(std::stoi(s.substr(i + 1, 3), nullptr, 8)));
            i += 3;
        } else {
            out.push_back(s[i]);
        }
    }
    return out;
}

Result<std::string> firstCgroup2Mount() {
    std::ifstream in("/proc/mounts");
    if (!in) return std::unexpected(errnoError(errno, "read /proc/mounts"));
    std::string line;
    while (std::getline(in, line)) {
        std::istringstream ls(line);
        std::string dev, mnt, type;
        if (ls >> dev >> mnt >> type && type == "cgroup2") return unescapeMount(mnt);
    }
    return std::unexpected(makeError("no cgroup v2 hierarchy mounted (no cgroup2 entry in /proc/mounts)"));
}

// Inodes (= cgroup v2 ids) of every cgroup directory under root, root included.
void walkCgroups(int dirfd, std::unordered_set<std::uint64_t>& ids, int depth) {
    struct stat st {};
    if (::fstat(dirfd, &st) == 0) ids.insert(st.st_ino);
    if (depth > 64) return;
    DIR* d = ::fdopendir(dirfd);
    if (!d) {
        ::close(dirfd);
        return;
    }
    while (dirent* e = ::readdir(d)) {
        if (e->d_type != DT_DIR || std::strcmp(e->d_name, ".") == 0 || std::strcmp(e->d_name, "..") == 0) continue;
        int fd = ::openat(::dirfd(d), e->d_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) continue;  // removed meanwhile
        walkCgroups(fd, ids, depth + 1);
    }
    ::closedir(d);
}

}  // namespace

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
    std::unique_ptr<cgroup_traffic_bpf, SkelDeleter> skel;
    std::unique_ptr<bpf_link, LinkDeleter> link_in, link_eg;
    mutable std::mutex mu;
    // cgroup id -> when read() first saw an entry of it
    mutable std::map<std::uint64_t, std::chrono::steady_clock::time_point> first_seen;
    mutable std::chrono::steady_clock::time_point last_sweep{};
    mutable std::uint64_t removed_total = 0;
};

CgroupTrafficMonitor::CgroupTrafficMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CgroupTrafficMonitor::~CgroupTrafficMonitor() = default;

const std::string& CgroupTrafficMonitor::cgroupRoot() const { return impl_->root; }

Result<std::unique_ptr<CgroupTrafficMonitor>> CgroupTrafficMonitor::create(CgroupTrafficOptions options) {
    auto im = std::make_unique<Impl>();
    im->opts = options;
    if (options.cgroup_root.empty()) {
        auto m = firstCgroup2Mount();
        if (!m) return std::unexpected(m.error());
        im->root = *m;
    } else {
        im->root = options.cgroup_root;
    }
    UniqueFd cg(::open(im->root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!cg) return std::unexpected(errnoError(errno, "open cgroup v2 root " + im->root));

    im->skel.reset(cgroup_traffic_bpf__open());
    if (!im->skel) return std::unexpected(errnoError(errno, "cgroup traffic: open BPF object"));
    auto* s = im->skel.get();
    bpf_map__set_max_entries(s->maps.cgroup_traffic, std::max<std::uint32_t>(options.max_entries, 1));
    if (int err = cgroup_traffic_bpf__load(s); err) {
        int e = -err;
        std::string ctx = "cgroup traffic: load cgroup_skb programs";
        if (e == EPERM || e == EACCES) ctx += " (needs CAP_BPF and CAP_NET_ADMIN, or root)";
        return std::unexpected(errnoError(e, ctx));
    }
    // BPF links (BPF_F_ALLOW_MULTI semantics): other programs on the root (systemd's)
    // keep running; the links vanish with the process.
    im->link_in.reset(bpf_program__attach_cgroup(s->progs.netprobe_cg_in, cg.get()));
    if (!im->link_in) return std::unexpected(errnoError(errno, "cgroup traffic: attach ingress to " + im->root));
    im->link_eg.reset(bpf_program__attach_cgroup(s->progs.netprobe_cg_eg, cg.get()));
    if (!im->link_eg) return std::unexpected(errnoError(errno, "cgroup traffic: attach egress to " + im->root));
    spdlog::info("cgroup traffic: cgroup_skb ingress/egress attached to {} ({} entries)", im->root,
                 bpf_map__max_entries(s->maps.cgroup_traffic));
    return std::unique_ptr<CgroupTrafficMonitor>(new CgroupTrafficMonitor(std::move(im)));
}

Result<CgroupTrafficStats> CgroupTrafficMonitor::read() const {
    auto& im = *impl_;
    std::lock_guard lock(im.mu);
    const auto now = std::chrono::steady_clock::now();
    CgroupTrafficStats out;
    out.cgroup_root = im.root;
    auto* s = im.skel.get();
    out.capacity = bpf_map__max_entries(s->maps.cgroup_traffic);
    const int ncpu = possibleCpus();
    {
        std::vector<std::uint64_t> errs(static_cast<std::size_t>(ncpu));
        std::uint32_t idx = NP_CG_ERR_INSERT;
        if (bpf_map_lookup_elem(bpf_map__fd(s->maps.cgroup_errors), &idx, errs.data()) == 0)
            for (auto v : errs) out.insert_failures += v;
    }
    const int fd = bpf_map__fd(s->maps.cgroup_traffic);
    std::vector<np_counter> vals(static_cast<std::size_t>(ncpu));
    std::map<std::uint64_t, CgroupTraffic> by_id;
    np_cgroup_key key{}, next{};
    bool first = true;
    while (bpf_map_get_next_key(fd, first ? nullptr : &key, &next) == 0) {
        first = false;
        key = next;
        if (bpf_map_lookup_elem(fd, &key, vals.data()) != 0) continue;  // deleted meanwhile
        ++out.entries;
        if (key.direction >= NP_DIR_MAX || key.proto >= NP_CG_PROTO_MAX) continue;
        auto& t = by_id[key.cgroup_id];
        t.cgroup_id = key.cgroup_id;
        auto& c = t.counters[key.direction][key.proto];
        for (const auto& v : vals) {
            c.packets += v.packets;
            c.bytes += v.bytes;
        }
    }
    if (errno != ENOENT && !first)
        spdlog::debug("cgroup traffic: iteration ended early: {}", std::strerror(errno));
    for (const auto& [id, _] : by_id) im.first_seen.emplace(id, now);

    // Entries of removed cgroups: gone from a walk that began after their first read.
    if (now - im.last_sweep >= im.opts.sweep_interval && !by_id.empty()) {
        const auto walk_start = std::chrono::steady_clock::now();
        std::unordered_set<std::uint64_t> alive;
        int rootfd = ::open(im.root.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (rootfd >= 0) {
            walkCgroups(rootfd, alive, 0);
            im.last_sweep = walk_start;
            for (auto it = by_id.begin(); it != by_id.end();) {
                auto fs = im.first_seen.find(it->first);
                if (alive.contains(it->first) || fs == im.first_seen.end() || fs->second >= walk_start) {
                    ++it;
                    continue;
                }
                for (std::uint8_t d = 0; d < NP_DIR_MAX; ++d)
                    for (std::uint8_t p = 0; p < NP_CG_PROTO_MAX; ++p) {
                        np_cgroup_key k{};
                        k.cgroup_id = it->first;
                        k.direction = d;
                        k.proto = p;
                        if (bpf_map_delete_elem(fd, &k) == 0 && out.entries > 0) --out.entries;
                    }
                ++im.removed_total;
                im.first_seen.erase(fs);
                it = by_id.erase(it);
            }
        } else {
            spdlog::debug("cgroup traffic: open {}: {}", im.root, std::strerror(errno));
        }
    }
    // forget ids whose entries are gone (deleted elsewhere)
    for (auto it = im.first_seen.begin(); it != im.first_seen.end();)
        it = by_id.contains(it->first) ? std::next(it) : im.first_seen.erase(it);
    out.removed_total = im.removed_total;
    out.cgroups.reserve(by_id.size());
    for (auto& [_, t] : by_id) out.cgroups.push_back(t);
    return out;
}

}  // namespace netprobe::ebpf
