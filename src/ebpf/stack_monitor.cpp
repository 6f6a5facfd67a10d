#include "netprobe/ebpf/stack_monitor.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <climits>
#include <cerrno>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <utility>

#include "ebpf/kernel_symbols.hpp"
#include "ebpf/sock_diag.hpp"
#include "netprobe/ebpf/map_io.hpp"
#include "stack.skel.h"

namespace netprobe::ebpf {

namespace {

// Kernel values absent from Debian 12's uapi headers (6.4+).
constexpr int kProgTypeNetfilter = 32;  // BPF_PROG_TYPE_NETFILTER
constexpr int kAttachNetfilter = 45;    // BPF_NETFILTER
constexpr std::uint32_t kNfprotoIpv4 = 2;
constexpr std::uint32_t kNfprotoIpv6 = 10;
// Before raw (-300), conntrack (-200), mangle, nat and filter (0): every packet
// reaching the hook is counted, including those a later rule drops.
constexpr std::int32_t kNfPriority = -1000;

// bpf_attr.link_create as the kernel's uapi defines it for netfilter links
// (include/uapi/linux/bpf.h, 6.4+): prog_fd, target_fd, attach_type, flags, then
// the netfilter member of the union.
struct NfLinkCreateAttr {
    std::uint32_t prog_fd;
    std::uint32_t target_fd;
    std::uint32_t attach_type;
    std::uint32_t flags;
    std::uint32_t pf;
    std::uint32_t hooknum;
    std::int32_t priority;
    std::uint32_t nf_flags;
    std::uint8_t zero_tail[32];  // rest of the union: must be zero
};
static_assert(offsetof(NfLinkCreateAttr, pf) == 16);
static_assert(offsetof(NfLinkCreateAttr, priority) == 24);

// Packet path tracing: the first priority a link may take (NF_IP_PRI_FIRST + 1), before
// defragmentation and everything else, so a rule's drop is seen at its hook first.
constexpr std::int32_t kNfTracePriority = INT32_MIN + 1;

Result<UniqueFd> attachNetfilter(int prog_fd, std::uint32_t pf, std::uint32_t hook,
                                 std::int32_t priority = kNfPriority) {
    NfLinkCreateAttr attr{};
    attr.prog_fd = static_cast<std::uint32_t>(prog_fd);
    attr.attach_type = kAttachNetfilter;
    attr.pf = pf;
    attr.hooknum = hook;
    attr.priority = priority;
    long fd = ::syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof attr);
    if (fd < 0) return std::unexpected(errnoError(errno, "netfilter link"));
    return UniqueFd(static_cast<int>(fd));
}

using BtfPtr = Owned<btf, btf__free>;
using LinkPtr = Owned<bpf_link, bpf_link__destroy>;
using StackSkel = Owned<stack_bpf, stack_bpf__destroy>;

Result<std::uint32_t> netnsInode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::unexpected(errnoError(errno, "network namespace " + path));
    return static_cast<std::uint32_t>(st.st_ino);
}

// Sums of every slot of a per-CPU array of V (np_counter or __u64).
template <class V>
Result<void> readSums(int fd, std::uint32_t n, std::vector<V>& sums) {
    sums.assign(n, V{});
    return readPerCpuArray<V>(fd, n, [&](std::uint32_t i, std::span<const V> v) {
        for (const auto& x : v) {
            if constexpr (std::is_same_v<V, np_counter>) {
                sums[i].packets += x.packets;
                sums[i].bytes += x.bytes;
            } else {
                sums[i] += x;
            }
        }
    });
}

// CLOCK_MONOTONIC ns -> wall time, computed per conversion batch.
struct Clock {
    WallClock::time_point wall_now;
    std::uint64_t mono_now;
    [[nodiscard]] WallClock::time_point wall(std::uint64_t mono_ns) const {
        if (mono_ns == 0) return {};
        auto age = std::chrono::nanoseconds(static_cast<std::int64_t>(mono_now) - static_cast<std::int64_t>(mono_ns));
        return std::chrono::time_point_cast<WallClock::duration>(wall_now - age);
    }
    static Clock now() {
        timespec ts{};
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return {WallClock::now(),
                static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ull + static_cast<std::uint64_t>(ts.tv_nsec)};
    }
};

Connection toConnection(const np_conn& c, const Clock& clk) {
    Connection o;
    std::memcpy(o.src_ip.data(), &c.saddr, 16);
    std::memcpy(o.dst_ip.data(), &c.daddr, 16);
    o.src_port = c.sport;
    o.dst_port = c.dport;
    o.family = c.family;
    o.origin = c.origin;
    o.tcp_state = c.state;
    o.open = c.end_ns == 0;
    o.failed = c.failed != 0;
    o.pid = c.pid;
    o.comm.assign(c.comm, strnlen(c.comm, sizeof c.comm));
    o.cgroup_id = c.cgroup_id;
    o.netns = c.netns;
    o.bytes_sent = c.bytes_acked;
    o.bytes_received = c.bytes_received;
    o.retransmits = c.retransmits;
    o.srtt_us = c.srtt_us;
    o.snd_cwnd = c.snd_cwnd;
    o.start = clk.wall(c.start_ns);
    o.established = clk.wall(c.established_ns);
    o.end = clk.wall(c.end_ns);
    o.sock = c.sock;
    o.cookie = c.cookie;
    return o;
}

}  // namespace

std::uint64_t Log2Histogram::count() const {
    std::uint64_t n = 0;
    for (auto b : buckets) n += b;
    return n;
}

const char* tcpStateName(int state) {
    static constexpr const char* names[] = {"UNKNOWN",   "ESTABLISHED", "SYN_SENT",   "SYN_RECV",
                                            "FIN_WAIT1", "FIN_WAIT2",   "TIME_WAIT",  "CLOSE",
                                            "CLOSE_WAIT", "LAST_ACK",   "LISTEN",     "CLOSING",
                                            "NEW_SYN_RECV", "BOUND_INACTIVE"};
    if (state < 0 || static_cast<std::size_t>(state) >= std::size(names)) return "UNKNOWN";
    return names[state];
}

const char* netfilterHookName(int hook) {
    static constexpr const char* names[NP_NF_HOOK_MAX] = {"prerouting", "input", "forward", "output",
                                                          "postrouting"};
    return hook >= 0 && hook < NP_NF_HOOK_MAX ? names[hook] : "unknown";
}

namespace {
// The kernel's count of a program's runs skipped by the recursion guard; nullopt when
// the program's info cannot be read.
std::optional<std::uint64_t> recursionMisses(int prog_fd) {
    bpf_prog_info pi{};
    __u32 len = sizeof pi;
    if (bpf_obj_get_info_by_fd(prog_fd, &pi, &len) != 0) return std::nullopt;
    return pi.recursion_misses;
}

// New drop_flows entries each CPU may create per NP_DROP_FLOW_WINDOW_NS: what the table
// holds between two reads, shared by the CPUs, at least 16; 0 (no budget) without an
// interval.
std::uint32_t dropFlowBudget(std::chrono::nanoseconds read_interval) {
    if (read_interval.count() <= 0) return 0;
    const auto cpus = static_cast<std::uint64_t>(std::max(libbpf_num_possible_cpus(), 1));
    const auto windows = std::max<std::uint64_t>(
        static_cast<std::uint64_t>(read_interval.count()) / NP_DROP_FLOW_WINDOW_NS, 1);
    return static_cast<std::uint32_t>(std::max<std::uint64_t>(NP_DROP_FLOW_MAX / windows / cpus, 16));
}
}  // namespace

Result<std::uint32_t> parseNetfilterHooks(std::string_view text) {
    if (text == "all") return (1u << NP_NF_HOOK_MAX) - 1;
    if (text == "none") return 0u;
    std::uint32_t mask = 0;
    std::size_t start = 0;
    while (start <= text.size()) {
        const std::size_t comma = std::min(text.find(',', start), text.size());
        const std::string_view name = text.substr(start, comma - start);
        int found = -1;
        for (int h = 0; h < NP_NF_HOOK_MAX; ++h)
            if (name == netfilterHookName(h)) found = h;
        if (found < 0)
            return std::unexpected(makeError("unknown netfilter hook \"" + std::string(name) +
                                             "\": expected all, none or a list of prerouting, input, forward, "
                                             "output, postrouting"));
        mask |= 1u << found;
        start = comma + 1;
    }
    return mask;
}

const char* netfilterProtoName(int proto) {
    static constexpr const char* names[NP_NF_PROTO_MAX] = {"tcp", "udp", "icmp", "other"};
    return proto >= 0 && proto < NP_NF_PROTO_MAX ? names[proto] : "other";
}

Result<std::vector<std::string>> dropReasonNamesFromKernelBtf() {
    BtfPtr vmlinux(btf__load_vmlinux_btf());
    if (!vmlinux) return std::unexpected(errnoError(errno, "load the kernel's BTF"));
    int id = btf__find_by_name_kind(vmlinux.get(), "skb_drop_reason", BTF_KIND_ENUM);
    if (id < 0) return std::unexpected(makeError("the kernel's BTF has no enum skb_drop_reason"));
    const btf_type* t = btf__type_by_id(vmlinux.get(), static_cast<__u32>(id));
    const struct btf_enum* e = btf_enum(t);
    std::vector<std::string> names;
    constexpr std::string_view kPrefix = "SKB_DROP_REASON_";
    for (int i = 0; i < btf_vlen(t); ++i) {
        const char* raw = btf__name_by_offset(vmlinux.get(), e[i].name_off);
        if (!raw || e[i].val < 0 || e[i].val >= NP_DROP_REASON_MAX - 1) continue;
        std::string_view n(raw);
        if (n.starts_with(kPrefix)) n.remove_prefix(kPrefix.size());
        if (n == "MAX") continue;
        auto v = static_cast<std::size_t>(e[i].val);
        if (names.size() <= v) names.resize(v + 1);
        names[v] = std::string(n);
    }
    return names;
}

struct StackMonitor::Impl {
    StackMonitorOptions opts;
    StackSkel skel;
    std::vector<LinkPtr> links;
    std::vector<UniqueFd> nf_links;
    // packet path tracing: attached only while a trace is active
    bool trace_nf = false, trace_sock = false;  // loaded
    std::vector<UniqueFd> trace_nf_links;
    std::vector<LinkPtr> trace_sock_links;
    std::vector<const bpf_program*> attached;  // programs with at least one link
    StackFeatures features;
    std::vector<std::string> drop_names;
    KernelSymbols ksyms;
    util::Scheduler* scheduler = nullptr;
    std::vector<util::Scheduler::TaskId> tasks;  // cancelled before the state they use goes
    std::optional<util::Scheduler::TaskId> symbols_task;
    ConnReconciler reconciler;
    std::unique_ptr<RingReader> ring;  // close records; destroyed first (its thread uses `closed`)

    mutable std::mutex closed_mu;
    std::deque<Connection> closed;  // newest at the front
    std::uint64_t closed_evicted = 0;

    explicit Impl(StackMonitorOptions o) : opts(std::move(o)), reconciler(opts.netns_path) {}
    ~Impl() {
        if (scheduler)
            for (auto id : tasks) scheduler->cancel(id);
        ring.reset();
    }

    void onClose(std::span<const std::byte> rec) {
        if (rec.size() < sizeof(np_conn)) return;
        np_conn c;
        std::memcpy(&c, rec.data(), sizeof c);
        Connection conn = toConnection(c, Clock::now());
        std::lock_guard lock(closed_mu);
        closed.push_front(std::move(conn));
        while (closed.size() > opts.max_closed) {
            closed.pop_back();
            ++closed_evicted;
        }
    }

    [[nodiscard]] std::string dropReasonName(std::uint32_t reason) const {
        if (reason < drop_names.size() && !drop_names[reason].empty()) return drop_names[reason];
        return "REASON_" + std::to_string(reason);
    }
};

StackMonitor::StackMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StackMonitor::~StackMonitor() = default;

const StackFeatures& StackMonitor::features() const { return impl_->features; }

Result<std::unique_ptr<StackMonitor>> StackMonitor::create(StackMonitorOptions options, util::Scheduler* scheduler) {
    auto im = std::make_unique<Impl>(options);

    BtfPtr vmlinux(btf__load_vmlinux_btf());
    if (!vmlinux) return std::unexpected(errnoError(errno, "stack monitor: load the kernel's BTF"));
    auto hasTracepoint = [&](const char* tp) {
        std::string name = std::string("btf_trace_") + tp;
        return btf__find_by_name_kind(vmlinux.get(), name.c_str(), BTF_KIND_TYPEDEF) > 0;
    };

    struct Tp {
        bpf_program* prog;
        const char* tracepoint;
        const char* what;
        bool StackFeatures::*feature;
    };
    std::vector<Tp> enabled;
    const bool nf_supported = btf__find_by_name_kind(vmlinux.get(), "bpf_nf_ctx", BTF_KIND_STRUCT) > 0;
    auto skel = loadSkeleton<stack_bpf, stack_bpf__open, stack_bpf__load, stack_bpf__destroy>(
        "stack monitor", [&](stack_bpf& sk) -> Result<void> {
            if (!options.netns_path.empty()) {
                auto ino = netnsInode(options.netns_path);
                if (!ino) return std::unexpected(ino.error());
                sk.rodata->np_netns_filter = *ino;
                spdlog::info("stack monitor: socket and drop events of network namespace {} ({}) only", *ino,
                             options.netns_path);
            }
            sk.rodata->np_drop_flow_budget = dropFlowBudget(options.drop_flow_read_interval);
            if (int err = bpf_map__set_max_entries(sk.maps.conn_table, std::max<std::uint32_t>(options.conn_table_size, 1)))
                return std::unexpected(errnoError(-err, "stack monitor: size conn_table"));
            const Tp tps[] = {
                {sk.progs.netprobe_sk_state, "inet_sock_set_state", "TCP connection tracking", &StackFeatures::connections},
                {sk.progs.netprobe_tcp_retx, "tcp_retransmit_skb", "TCP retransmit counting", &StackFeatures::retransmits},
                {sk.progs.netprobe_tcp_rst_tx, "tcp_send_reset", "TCP reset counting", &StackFeatures::resets},
                {sk.progs.netprobe_tcp_rst_rx, "tcp_receive_reset", "TCP reset counting", &StackFeatures::resets},
                {sk.progs.netprobe_tcp_probe, "tcp_probe", "TCP RTT/cwnd histograms", &StackFeatures::tcp_probe},
                {sk.progs.netprobe_kfree_skb, "kfree_skb", "packet drop reasons", &StackFeatures::drops},
            };
            for (const auto& tp : tps) {
                if (hasTracepoint(tp.tracepoint)) {
                    enabled.push_back(tp);
                    continue;
                }
                bpf_program__set_autoload(tp.prog, false);
                spdlog::warn("stack monitor: {} disabled: the kernel has no tracepoint {} (no btf_trace_{} in its BTF)",
                             tp.what, tp.tracepoint, tp.tracepoint);
            }
            // packet path tracing: loaded now, attached while a trace is active
            if (nf_supported) {
                bpf_program__set_type(sk.progs.netprobe_nf_trace, static_cast<bpf_prog_type>(kProgTypeNetfilter));
                bpf_program__set_expected_attach_type(sk.progs.netprobe_nf_trace,
                                                      static_cast<bpf_attach_type>(kAttachNetfilter));
                im->trace_nf = true;
            } else {
                bpf_program__set_autoload(sk.progs.netprobe_nf_trace, false);
            }
            im->trace_sock = hasTracepoint("sock_recv_length") && hasTracepoint("sock_send_length");
            if (!im->trace_sock) {
                bpf_program__set_autoload(sk.progs.netprobe_sock_recv, false);
                bpf_program__set_autoload(sk.progs.netprobe_sock_send, false);
                spdlog::info("stack monitor: packet traces show no processes: the kernel has no sock_recv_length/"
                             "sock_send_length tracepoints (Linux 6.3+)");
            }
            if (nf_supported && im->opts.netfilter_hooks == 0) {
                bpf_program__set_autoload(sk.progs.netprobe_nf, false);
                spdlog::info("stack monitor: netfilter hook counters off (--netfilter-hooks=none)");
            } else if (nf_supported) {
                bpf_program__set_type(sk.progs.netprobe_nf, static_cast<bpf_prog_type>(kProgTypeNetfilter));
                bpf_program__set_expected_attach_type(sk.progs.netprobe_nf,
                                                      static_cast<bpf_attach_type>(kAttachNetfilter));
            } else {
                bpf_program__set_autoload(sk.progs.netprobe_nf, false);
                spdlog::warn("stack monitor: netfilter hook counters disabled: the kernel has no netfilter BPF "
                             "programs (no struct bpf_nf_ctx in its BTF; needs Linux 6.4+)");
            }
            return {};
        });
    if (!skel) return std::unexpected(skel.error());
    im->skel = std::move(*skel);
    auto* s = im->skel.get();

    for (const Tp& tp : enabled) {
        LinkPtr l(bpf_program__attach(tp.prog));
        if (!l) {
            int e = errno;
            spdlog::warn("stack monitor: {} disabled: attaching to tracepoint {} failed: {}", tp.what,
                         tp.tracepoint, std::strerror(e));
            continue;
        }
        im->links.push_back(std::move(l));
        im->attached.push_back(tp.prog);
        im->features.*(tp.feature) = true;
    }
    // Both reset tracepoints or neither counts as the feature.
    if (im->features.resets && !(hasTracepoint("tcp_send_reset") && hasTracepoint("tcp_receive_reset")))
        im->features.resets = false;

    if (nf_supported && im->opts.netfilter_hooks != 0) {
        int prog_fd = bpf_program__fd(s->progs.netprobe_nf);
        int ok = 0;
        std::string first_err;
        for (std::uint32_t pf : {kNfprotoIpv4, kNfprotoIpv6}) {
            for (std::uint32_t hook = 0; hook < NP_NF_HOOK_MAX; ++hook) {
                if (!(im->opts.netfilter_hooks & (1u << hook))) continue;
                auto l = attachNetfilter(prog_fd, pf, hook);
                if (!l) {
                    if (first_err.empty())
                        first_err = std::string(pf == kNfprotoIpv4 ? "ipv4 " : "ipv6 ") + netfilterHookName(static_cast<int>(hook)) +
                                    ": " + l.error().what();
                    continue;
                }
                im->nf_links.push_back(std::move(*l));
                im->features.netfilter_hooks |= 1u << hook;
                ++ok;
            }
        }
        im->features.netfilter = ok > 0;
        if (ok > 0) im->attached.push_back(s->progs.netprobe_nf);
        if (ok == 0) spdlog::warn("stack monitor: netfilter hook counters disabled: {}", first_err);
        else if (ok < 2 * std::popcount(im->opts.netfilter_hooks))
            spdlog::warn("stack monitor: {} of {} netfilter hooks attached (first failure: {})", ok,
                         2 * std::popcount(im->opts.netfilter_hooks), first_err);
    }

    if (im->features.drops) {
        auto names = dropReasonNamesFromKernelBtf();
        if (names) im->drop_names = std::move(*names);
        else spdlog::warn("stack monitor: drop reasons will be numbers: {}", names.error().what());
    }

    if (im->features.connections) {
        auto ring = RingReader::start(bpf_map__fd(s->maps.conn_events), "stack monitor",
                                      [raw = im.get()](std::span<const std::byte> rec) { raw->onClose(rec); });
        if (!ring) return std::unexpected(ring.error());
        im->ring = std::move(*ring);
    }
    if (scheduler) {
        im->scheduler = scheduler;
        if (im->features.connections && options.reconcile_interval.count() > 0) {
            const int conn_fd = bpf_map__fd(s->maps.conn_table);
            const int state_prog = bpf_program__fd(s->progs.netprobe_sk_state);
            const auto full = options.reconcile_full_interval;
            im->tasks.push_back(scheduler->every("stack: reconcile connection records", options.reconcile_interval,
                                                 [raw = im.get(), conn_fd, state_prog, full] {
                                                     raw->reconciler.runIfDue(conn_fd, recursionMisses(state_prog),
                                                                              std::chrono::steady_clock::now(), full);
                                                 }));
        }
        if (im->features.drops)
        {
            im->symbols_task = scheduler->every("stack: name drop locations", std::chrono::seconds(30),
                                                [raw = im.get()] { raw->ksyms.resolvePending(); });
            im->tasks.push_back(*im->symbols_task);
        }
    }

    const auto& f = im->features;
    spdlog::info("stack monitor: connections {}, retransmits {}, resets {}, rtt/cwnd {}, drops {}, netfilter {} ({} links)",
                 f.connections ? "on" : "off", f.retransmits ? "on" : "off", f.resets ? "on" : "off",
                 f.tcp_probe ? "on" : "off", f.drops ? "on" : "off", f.netfilter ? "on" : "off",
                 im->nf_links.size());
    return std::unique_ptr<StackMonitor>(new StackMonitor(std::move(im)));
}

Result<TraceMaps> StackMonitor::traceMaps() const {
    auto* s = impl_->skel.get();
    TraceMaps m;
    struct {
        const bpf_map* map;
        UniqueFd TraceMaps::*fd;
    } const parts[] = {{s->maps.data_trace, &TraceMaps::on},         {s->maps.trace_specs, &TraceMaps::specs},
                       {s->maps.trace_counts, &TraceMaps::counts},   {s->maps.trace_drops, &TraceMaps::drops},
                       {s->maps.trace_ifaces, &TraceMaps::ifaces},   {s->maps.trace_procs, &TraceMaps::procs},
                       {s->maps.trace_errors, &TraceMaps::errors}};
    for (const auto& p : parts) {
        UniqueFd fd(::fcntl(bpf_map__fd(p.map), F_DUPFD_CLOEXEC, 0));
        if (!fd) return std::unexpected(errnoError(errno, std::string("duplicate the fd of map ") + bpf_map__name(p.map)));
        m.*(p.fd) = std::move(fd);
    }
    return m;
}

Result<void> StackMonitor::setTraceHooks(bool on) {
    auto& im = *impl_;
    auto* s = im.skel.get();
    im.trace_nf_links.clear();
    im.trace_sock_links.clear();
    if (!on) return {};
    if (im.trace_nf) {
        const int prog_fd = bpf_program__fd(s->progs.netprobe_nf_trace);
        for (std::uint32_t pf : {kNfprotoIpv4, kNfprotoIpv6})
            for (std::uint32_t hook = 0; hook < NP_NF_HOOK_MAX; ++hook) {
                auto l = attachNetfilter(prog_fd, pf, hook, kNfTracePriority);
                if (!l) {
                    im.trace_nf_links.clear();
                    return std::unexpected(makeError(std::string("packet trace: netfilter ") + netfilterHookName(static_cast<int>(hook)) +
                                                     ": " + l.error().what()));
                }
                im.trace_nf_links.push_back(std::move(*l));
            }
    }
    if (im.trace_sock) {
        for (bpf_program* p : {s->progs.netprobe_sock_recv, s->progs.netprobe_sock_send}) {
            LinkPtr l(bpf_program__attach(p));
            if (!l) {
                const int e = errno;
                im.trace_nf_links.clear();
                im.trace_sock_links.clear();
                return std::unexpected(errnoError(e, std::string("packet trace: attach ") + bpf_program__name(p)));
            }
            im.trace_sock_links.push_back(std::move(l));
        }
    }
    return {};
}

std::size_t StackMonitor::traceLinks() const { return impl_->trace_nf_links.size() + impl_->trace_sock_links.size(); }

Result<StackStats> StackMonitor::read() const {
    const auto& im = *impl_;
    auto* s = im.skel.get();
    StackStats st;
    st.features = im.features;

    std::vector<std::uint64_t> u;
    if (auto r = readSums(bpf_map__fd(s->maps.tcp_counters), NP_TCP_COUNTER_MAX, u); !r)
        return std::unexpected(r.error());
    st.opened_active = u[NP_TCP_OPENED_ACTIVE];
    st.opened_passive = u[NP_TCP_OPENED_PASSIVE];
    st.closed = u[NP_TCP_CLOSED];
    st.failed = u[NP_TCP_FAILED];
    st.retransmits = u[NP_TCP_RETRANS_SEGS];
    st.resets_sent = u[NP_TCP_RST_SENT];
    st.resets_received = u[NP_TCP_RST_RECEIVED];
    // per-CPU +1/-1 (as unsigned wrap-around): the sum is the number tracked, less
    // the stale records user space removed (their -1 never happened in the kernel)
    st.records_reconciled = im.reconciler.removed.load();
    st.reconcile_runs = im.reconciler.runs.load();
    st.reconcile_skipped = im.reconciler.skipped.load();
    st.reconcile_failures = im.reconciler.failures.load();
    st.reconcile_delete_failures = im.reconciler.delete_failures.load();
    st.tracked_open = u[NP_TCP_TRACKED_DELTA] - st.records_reconciled;
    if (static_cast<std::int64_t>(st.tracked_open) < 0) st.tracked_open = 0;

    if (auto r = readSums(bpf_map__fd(s->maps.stack_errors), NP_STACK_ERR_MAX, u); !r)
        return std::unexpected(r.error());
    st.conn_insert_failures = u[NP_STACK_ERR_CONN_INSERT];
    st.drop_location_failures = u[NP_STACK_ERR_DROP_LOC];
    st.drop_flow_failures = u[NP_STACK_ERR_DROP_FLOW];
    st.drop_flow_over_budget = u[NP_STACK_ERR_DROP_FLOW_BUDGET];
    st.drop_flow_budget = s->rodata->np_drop_flow_budget;
    st.ringbuf_reserve_failures = u[NP_STACK_ERR_RINGBUF];

    if (auto r = readSums(bpf_map__fd(s->maps.tcp_hist), NP_HIST_MAX * NP_HIST_SLOTS, u); !r)
        return std::unexpected(r.error());
    for (std::size_t b = 0; b < NP_HIST_BUCKETS; ++b) {
        st.srtt_us.buckets[b] = u[NP_HIST_SRTT_US * NP_HIST_SLOTS + b];
        st.cwnd.buckets[b] = u[NP_HIST_CWND * NP_HIST_SLOTS + b];
    }
    st.srtt_us.sum = u[NP_HIST_SRTT_US * NP_HIST_SLOTS + NP_HIST_BUCKETS];
    st.cwnd.sum = u[NP_HIST_CWND * NP_HIST_SLOTS + NP_HIST_BUCKETS];

    if (im.features.drops) {
        if (auto r = readSums(bpf_map__fd(s->maps.drop_reasons), NP_DROP_REASON_MAX, u); !r)
            return std::unexpected(r.error());
        for (std::uint32_t i = 0; i < NP_DROP_REASON_MAX; ++i) {
            if (!u[i]) continue;
            DropCount d;
            d.reason = i;
            d.count = u[i];
            d.name = i == NP_DROP_REASON_MAX - 1 ? "OTHER" : im.dropReasonName(i);
            st.drops.push_back(std::move(d));
        }

        std::vector<std::pair<std::uint64_t, np_drop_loc_key>> locs;
        auto r = readPerCpuHash<np_drop_loc_key, std::uint64_t>(
            bpf_map__fd(s->maps.drop_locations), [&](const np_drop_loc_key& k, std::span<const std::uint64_t> v) {
                if (auto t = sumValues(v)) locs.emplace_back(t, k);
            });
        if (!r) return std::unexpected(r.error());
        const std::size_t top = std::min(locs.size(), StackStats::kTopDropLocations);
        std::partial_sort(locs.begin(), locs.begin() + static_cast<std::ptrdiff_t>(top), locs.end(),
                          [](const auto& a, const auto& b) { return a.first > b.first; });
        bool queued = false;
        for (std::size_t i = 0; i < top; ++i) {
            const auto& [count, key] = locs[i];
            bool q = false;
            st.drop_locations.push_back({im.dropReasonName(key.reason), im.ksyms.name(key.location, q), count});
            queued |= q;
        }
        if (queued && im.symbols_task) im.scheduler->wake(*im.symbols_task);

        auto rf = readPerCpuHash<np_drop_flow_key, std::uint64_t>(
            bpf_map__fd(s->maps.drop_flows), [&](const np_drop_flow_key& k, std::span<const std::uint64_t> v) {
                DropFlow d;
                std::memcpy(d.src.data(), &k.saddr, 16);
                std::memcpy(d.dst.data(), &k.daddr, 16);
                d.sport = k.sport;
                d.dport = k.dport;
                d.proto = k.proto;
                d.family = k.family;
                d.reason = k.reason;
                d.packets = sumValues(v);
                if (d.packets) st.drop_flows.push_back(d);
            });
        if (!rf) return std::unexpected(rf.error());
    }

    if (im.features.netfilter) {
        std::vector<np_counter> nf;
        if (auto r = readSums(bpf_map__fd(s->maps.nf_stats), NP_NF_HOOK_MAX * NP_NF_FAMILY_MAX * NP_NF_PROTO_MAX, nf); !r)
            return std::unexpected(r.error());
        for (std::size_t h = 0; h < NP_NF_HOOK_MAX; ++h)
            for (std::size_t f = 0; f < NP_NF_FAMILY_MAX; ++f)
                for (std::size_t p = 0; p < NP_NF_PROTO_MAX; ++p) {
                    const auto& c = nf[(h * NP_NF_FAMILY_MAX + f) * NP_NF_PROTO_MAX + p];
                    st.netfilter[h][f][p] = Counter{c.packets, c.bytes};
                }
    }

    for (const bpf_program* prog : im.attached)
        if (auto m = recursionMisses(bpf_program__fd(prog))) st.missed_events.emplace_back(bpf_program__name(prog), *m);

    if (im.features.connections) {
        const auto clk = Clock::now();
        auto r = readHash<std::uint64_t, np_conn>(bpf_map__fd(s->maps.conn_table), [&](const std::uint64_t&, const np_conn& c) {
            if (st.connections.size() < im.opts.max_open) st.connections.push_back(toConnection(c, clk));
        });
        if (!r) return std::unexpected(r.error());
        std::sort(st.connections.begin(), st.connections.end(),
                  [](const Connection& a, const Connection& b) { return a.start < b.start; });
        std::lock_guard lock(im.closed_mu);
        st.connections.insert(st.connections.end(), im.closed.begin(), im.closed.end());
        st.closed_evicted = im.closed_evicted;
    }
    return st;
}

}  // namespace netprobe::ebpf
