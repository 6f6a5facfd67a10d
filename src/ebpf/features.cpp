#include "netprobe/ebpf/features.hpp"

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <memory>
#include <string_view>

namespace netprobe::ebpf {

namespace {

struct BtfFree {
    void operator()(btf* b) const { btf__free(b); }
};

// An enumerator of the kernel's BTF ("BPF_LINK_TYPE_TCX" in enum bpf_link_type).
bool hasEnumValue(const btf* b, std::string_view value) {
    if (!b) return false;
    const int n = static_cast<int>(btf__type_cnt(b));
    for (int id = 1; id < n; ++id) {
        const btf_type* t = btf__type_by_id(b, static_cast<__u32>(id));
        if (!t || !btf_is_enum(t)) continue;
        const struct btf_enum* e = btf_enum(t);
        for (int i = 0; i < btf_vlen(t); ++i, ++e) {
            const char* name = btf__name_by_offset(b, e->name_off);
            if (name && value == name) return true;
        }
    }
    return false;
}

bool progType(bpf_prog_type t) { return libbpf_probe_bpf_prog_type(t, nullptr) == 1; }

}  // namespace

const KernelFeature* KernelInfo::find(std::string_view name) const {
    for (const auto& f : features)
        if (f.name == name) return &f;
    return nullptr;
}

KernelInfo probeKernel() {
    KernelInfo k;
    utsname u{};
    if (uname(&u) == 0) {
        k.release = u.release;
        k.machine = u.machine;
    }
    std::unique_ptr<btf, BtfFree> vmlinux(btf__load_vmlinux_btf());
    if (libbpf_get_error(vmlinux.get())) vmlinux.release();
    const btf* b = vmlinux.get();
    const bool has_btf = b != nullptr;
    auto add = [&](std::string name, std::string min, std::string used, std::string without, bool available,
                   bool required = false) {
        k.features.push_back({std::move(name), std::move(min), std::move(used), std::move(without), available, required});
    };
    add("btf", "5.4", "CO-RE relocation of every program against the running kernel (/sys/kernel/btf/vmlinux)",
        "the agent cannot load its programs", has_btf, true);
    add("sched_cls", "4.1", "TC programs: per-interface, protocol and flow counters", "the agent cannot start",
        progType(BPF_PROG_TYPE_SCHED_CLS), true);
    add("tcx", "6.6", "TC programs as BPF links (--tc-mode=auto prefers them)", "clsact qdisc + filters instead",
        hasEnumValue(b, "BPF_TCX_INGRESS"));
    add("xdp", "4.8", "XDP counters and the mitigation blocklist (native on physical NICs, generic on veth)",
        "no XDP counters, no mitigation (--xdp-mode=off)", progType(BPF_PROG_TYPE_XDP));
    add("xdp_link", "5.9", "XDP attached as a BPF link (gone with the process)", "the agent cannot attach XDP",
        hasEnumValue(b, "BPF_LINK_TYPE_XDP"));
    add("ringbuf", "5.8", "security records (new flows, TCP flags) and connection events", "the agent cannot start",
        libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, nullptr) == 1, true);
    add("batch_ops", "5.6", "BPF_MAP_LOOKUP_BATCH reads of the flow and connection tables",
        "one-by-one reads (slower; still exact)", hasEnumValue(b, "BPF_MAP_LOOKUP_BATCH"));
    add("tp_btf", "5.5", "socket-layer, TCP and drop tracepoints (stack monitor)", "no socket monitor (one warning)",
        // tp_btf programs attach to the btf_trace_* typedefs of the kernel's BTF.
        progType(BPF_PROG_TYPE_RAW_TRACEPOINT) && has_btf &&
            btf__find_by_name_kind(b, "btf_trace_kfree_skb", BTF_KIND_TYPEDEF) > 0);
    add("kfree_skb_reason", "5.17", "drop reasons (netprobe_drops_total{reason})", "drops without a reason",
        hasEnumValue(b, "SKB_DROP_REASON_NOT_SPECIFIED"));
    add("netfilter_link", "6.4", "netfilter hook counters (netprobe_netfilter_*)", "no netfilter counters",
        hasEnumValue(b, "BPF_LINK_TYPE_NETFILTER"));
    add("cgroup_skb_link", "5.7", "per-cgroup (container) traffic of every protocol", "no netprobe_container_* series",
        progType(BPF_PROG_TYPE_CGROUP_SKB) && hasEnumValue(b, "BPF_LINK_TYPE_CGROUP"));
    add("ktime_get_coarse_ns", "5.11", "flow timestamps on the per-packet path (cheaper than bpf_ktime_get_ns)",
        "the datapath does not load", libbpf_probe_bpf_helper(BPF_PROG_TYPE_SCHED_CLS, static_cast<bpf_func_id>(160), nullptr) == 1,
        true);
    return k;
}

}  // namespace netprobe::ebpf
