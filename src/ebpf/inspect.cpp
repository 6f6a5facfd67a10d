#include "netprobe/ebpf/inspect.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>
#include <set>
#include <vector>

#include "ebpf/attach.hpp"
#include "netprobe/util/fd.hpp"

namespace netprobe::ebpf {

namespace {

using util::UniqueFd;

// Kernel values newer than Debian 12's uapi headers.
constexpr std::uint32_t kLinkNetfilter = 10, kLinkTcx = 11, kLinkNetkit = 13;
constexpr std::uint32_t kAttachTcxIngress = 46, kAttachTcxEgress = 47;

std::string linkTypeName(std::uint32_t t) {
    switch (t) {
        case BPF_LINK_TYPE_RAW_TRACEPOINT: return "raw_tracepoint";
        case BPF_LINK_TYPE_TRACING: return "tracing";
        case BPF_LINK_TYPE_CGROUP: return "cgroup";
        case BPF_LINK_TYPE_ITER: return "iter";
        case BPF_LINK_TYPE_NETNS: return "netns";
        case BPF_LINK_TYPE_XDP: return "xdp";
        case BPF_LINK_TYPE_PERF_EVENT: return "perf_event";
        case BPF_LINK_TYPE_KPROBE_MULTI: return "kprobe_multi";
        case BPF_LINK_TYPE_STRUCT_OPS: return "struct_ops";
        case kLinkNetfilter: return "netfilter";
        case kLinkTcx: return "tcx";
        case kLinkNetkit: return "netkit";
        default: return "type " + std::to_string(t);
    }
}

std::string nfHookName(std::uint32_t pf, std::uint32_t hook) {
    static const char* hooks[] = {"prerouting", "local_in", "forward", "local_out", "postrouting"};
    const std::string fam = pf == 2 ? "ipv4" : pf == 10 ? "ipv6" : "pf" + std::to_string(pf);
    return fam + " " + (hook < 5 ? hooks[hook] : "hook" + std::to_string(hook));
}

// Iterates the ids of one object kind; fn(id) for each.
template <class Next, class Fn>
void forIds(Next next, Fn fn) {
    __u32 id = 0;
    while (next(id, &id) == 0) fn(id);
}

}  // namespace

Result<std::vector<ProgInfo>> listPrograms(const std::string& prefix) {
    std::vector<ProgInfo> out;
    int last_error = 0;
    forIds(bpf_prog_get_next_id, [&](__u32 id) {
        UniqueFd fd(bpf_prog_get_fd_by_id(id));
        if (!fd) {
            last_error = errno;  // gone meanwhile, or no permission
            return;
        }
        bpf_prog_info info{};
        __u32 len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return;
        if (!std::string_view(info.name).starts_with(prefix)) return;
        ProgInfo p;
        p.id = info.id;
        p.name = info.name;
        p.type = info.type;
        const char* tn = libbpf_bpf_prog_type_str(static_cast<bpf_prog_type>(info.type));
        p.type_name = tn ? tn : info.type == 32 ? "netfilter" : "type " + std::to_string(info.type);
        p.run_time_ns = info.run_time_ns;
        p.run_cnt = info.run_cnt;
        // Second call for the map ids and the first function's BTF record: the full
        // name (the kernel's name field holds 15 characters, as bpftool shows too).
        std::vector<__u32> ids(info.nr_map_ids);
        bpf_func_info func{};
        bpf_prog_info again{};
        again.nr_map_ids = info.nr_map_ids;
        again.map_ids = reinterpret_cast<std::uintptr_t>(ids.data());
        if (info.btf_id && info.nr_func_info > 0) {
            again.nr_func_info = 1;
            again.func_info_rec_size = sizeof func;
            again.func_info = reinterpret_cast<std::uintptr_t>(&func);
        }
        __u32 l2 = sizeof again;
        if (bpf_obj_get_info_by_fd(fd.get(), &again, &l2) == 0) {
            ids.resize(std::min<std::size_t>(ids.size(), again.nr_map_ids));
            p.map_ids.assign(ids.begin(), ids.end());
            if (info.btf_id && info.nr_func_info > 0 && again.func_info_rec_size == sizeof func) {
                if (btf* b = btf__load_from_kernel_by_id(info.btf_id); b && !libbpf_get_error(b)) {
                    if (const btf_type* t = btf__type_by_id(b, func.type_id))
                        if (const char* n = btf__name_by_offset(b, t->name_off); n && std::string_view(n).starts_with(p.name))
                            p.name = n;
                    btf__free(b);
                }
            }
        }
        out.push_back(std::move(p));
    });
    if (out.empty() && last_error == EPERM) return std::unexpected(errnoError(EPERM, "list BPF programs (needs CAP_SYS_ADMIN)"));
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

Result<std::vector<LinkInfo>> listLinks(const std::vector<ProgInfo>& progs) {
    std::set<std::uint32_t> ours;
    for (const auto& p : progs) ours.insert(p.id);
    std::vector<LinkInfo> out;
    forIds(bpf_link_get_next_id, [&](__u32 id) {
        UniqueFd fd(bpf_link_get_fd_by_id(id));
        if (!fd) return;
        // Newer kernels' bpf_link_info is larger than this uapi's: read it as bytes.
        alignas(8) unsigned char buf[256] = {};
        __u32 len = sizeof buf;
        if (bpf_obj_get_info_by_fd(fd.get(), buf, &len) != 0) return;
        auto u32 = [&](std::size_t off) {
            std::uint32_t v;
            std::memcpy(&v, buf + off, sizeof v);
            return v;
        };
        LinkInfo l;
        l.type = u32(0);
        l.id = u32(4);
        l.prog_id = u32(8);
        if (!ours.contains(l.prog_id)) return;
        l.type_name = linkTypeName(l.type);
        // The union starts at offset 16 (8-byte aligned).
        if (l.type == kLinkTcx) {
            l.ifindex = u32(16);
            l.attach = u32(20) == kAttachTcxIngress ? "ingress" : u32(20) == kAttachTcxEgress ? "egress" : "?";
        } else if (l.type == BPF_LINK_TYPE_XDP) {
            l.ifindex = u32(16);
        } else if (l.type == kLinkNetfilter) {
            std::int32_t prio;
            std::memcpy(&prio, buf + 24, sizeof prio);
            l.attach = nfHookName(u32(16), u32(20)) + " priority " + std::to_string(prio);
        } else if (l.type == BPF_LINK_TYPE_CGROUP) {
            std::memcpy(&l.cgroup_id, buf + 16, sizeof l.cgroup_id);
            const char* at = libbpf_bpf_attach_type_str(static_cast<bpf_attach_type>(u32(24)));
            l.attach = at ? at : std::to_string(u32(24));
        }
        out.push_back(std::move(l));
    });
    std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    return out;
}

Result<std::vector<MapInfo>> listMaps(const std::vector<ProgInfo>& progs, bool count_entries) {
    std::set<std::uint32_t> ids;
    for (const auto& p : progs) ids.insert(p.map_ids.begin(), p.map_ids.end());
    std::vector<MapInfo> out;
    for (auto id : ids) {
        UniqueFd fd(bpf_map_get_fd_by_id(id));
        if (!fd) continue;
        bpf_map_info info{};
        __u32 len = sizeof info;
        if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) continue;
        MapInfo m;
        m.id = info.id;
        m.name = info.name;
        m.type = info.type;
        const char* tn = libbpf_bpf_map_type_str(static_cast<bpf_map_type>(info.type));
        m.type_name = tn ? tn : "type " + std::to_string(info.type);
        m.key_size = info.key_size;
        m.value_size = info.value_size;
        m.max_entries = info.max_entries;
        const bool hashlike = info.type == BPF_MAP_TYPE_HASH || info.type == BPF_MAP_TYPE_PERCPU_HASH ||
                              info.type == BPF_MAP_TYPE_LRU_HASH || info.type == BPF_MAP_TYPE_LRU_PERCPU_HASH ||
                              info.type == BPF_MAP_TYPE_LPM_TRIE;
        if (count_entries && hashlike && info.key_size > 0) {
            // Walk the keys (a one-shot CLI; at most max_entries steps).
            std::vector<unsigned char> key(info.key_size), next(info.key_size);
            std::uint64_t n = 0;
            const void* prev = nullptr;
            while (n <= info.max_entries && bpf_map_get_next_key(fd.get(), prev, next.data()) == 0) {
                ++n;
                key.swap(next);
                prev = key.data();
            }
            m.entries = n;
        }
        out.push_back(std::move(m));
    }
    return out;
}

HookPrograms hookPrograms(std::uint32_t ifindex) {
    HookPrograms h;
    bpf_xdp_query_opts xo{};
    xo.sz = sizeof xo;
    if (bpf_xdp_query(static_cast<int>(ifindex), 0, &xo) == 0) {
        h.xdp_driver = xo.drv_prog_id;
        h.xdp_generic = xo.skb_prog_id;
        h.xdp_offload = xo.hw_prog_id;
    }
    for (bool ingress : {true, false}) {
        bpf_tc_hook hook{};
        hook.sz = sizeof hook;
        hook.ifindex = static_cast<int>(ifindex);
        hook.attach_point = ingress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
        bpf_tc_opts o{};
        o.sz = sizeof o;
        o.handle = kClsactHandle;
        o.priority = kClsactPriority;
        if (bpf_tc_query(&hook, &o) == 0) (ingress ? h.clsact_ingress : h.clsact_egress) = o.prog_id;
        // BPF_PROG_QUERY of the tcx hook (BPF_TCX_INGRESS/EGRESS = 46/47; the ifindex goes
        // where the target fd would, as the kernel's union has it)
        std::array<std::uint32_t, 64> ids{};
        std::uint32_t count = ids.size();
        if (bpf_prog_query(static_cast<int>(ifindex), static_cast<bpf_attach_type>(ingress ? 46 : 47), 0, nullptr,
                           ids.data(), &count) == 0)
            (ingress ? h.tcx_ingress : h.tcx_egress).assign(ids.begin(), ids.begin() + std::min<std::size_t>(count, ids.size()));
    }
    return h;
}

}  // namespace netprobe::ebpf
