#include "netprobe/ebpf/stack_monitor.hpp"

#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <thread>
#include <utility>

#include "ebpf/datapath.hpp"
#include "ebpf/fd.hpp"
#include "netprobe/util/logging.hpp"
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

Result<UniqueFd> attachNetfilter(int prog_fd, std::uint32_t pf, std::uint32_t hook) {
    NfLinkCreateAttr attr{};
    attr.prog_fd = static_cast<std::uint32_t>(prog_fd);
    attr.attach_type = kAttachNetfilter;
    attr.pf = pf;
    attr.hooknum = hook;
    attr.priority = kNfPriority;
    long fd = ::syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof attr);
    if (fd < 0) return std::unexpected(errnoError(errno, "netfilter link"));
    return UniqueFd(static_cast<int>(fd));
}

struct SkelDeleter {
    void operator()(stack_bpf* s) const { stack_bpf__destroy(s); }
};
struct LinkDeleter {
    void operator()(bpf_link* l) const { bpf_link__destroy(l); }
};
struct RingDeleter {
    void operator()(ring_buffer* r) const { ring_buffer__free(r); }
};
struct BtfDeleter {
    void operator()(btf* b) const { btf__free(b); }
};

Result<std::uint32_t> netnsInode(const std::string& path) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) return std::unexpected(errnoError(errno, "network namespace " + path));
    return static_cast<std::uint32_t>(st.st_ino);
}

template <class V>
Result<void> readArray(int fd, std::uint32_t n, std::vector<V>& sums) {
    const int ncpu = possibleCpus();
    std::vector<V> vals(static_cast<std::size_t>(ncpu));
    sums.assign(n, V{});
    for (std::uint32_t i = 0; i < n; ++i) {
        if (bpf_map_lookup_elem(fd, &i, vals.data()) != 0)
            return std::unexpected(errnoError(errno, "read per-CPU array"));
        for (const auto& v : vals) {
            if constexpr (std::is_same_v<V, np_counter>) {
                sums[i].packets += v.packets;
                sums[i].bytes += v.bytes;
            } else {
                sums[i] += v;
            }
        }
    }
    return {};
}

// Kernel text symbols from /proc/kallsyms, for drop locations. Only the few
// addresses that drops actually come from are resolved, each once: a new address
// costs one pass over /proc/kallsyms, and nothing else is kept (holding every
// symbol cost ~19 MiB of resident memory). Addresses stay numeric when hidden
// (kptr_restrict).
class KernelSymbols {
public:
    void load() { enabled_ = true; }

    [[nodiscard]] std::string resolve(std::uint64_t addr) const {
        std::lock_guard lock(mu_);
        if (auto it = cache_.find(addr); it != cache_.end()) return it->second;
        std::string name = enabled_ ? lookup(addr) : std::string();
        if (name.empty()) {
            char buf[32];
            std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(addr));
            name = buf;
        }
        if (cache_.size() < kMaxCached) cache_.emplace(addr, name);
        return name;
    }

private:
    static constexpr std::size_t kMaxCached = 4096;

    // The text symbol with the greatest address <= addr, as "name+0xoff".
    static std::string lookup(std::uint64_t addr) {
        std::FILE* f = std::fopen("/proc/kallsyms", "re");
        if (!f) return {};
        char line[512];
        unsigned long long best = 0;
        std::string best_name;
        while (std::fgets(line, sizeof line, f)) {
            unsigned long long a = 0;
            char type = 0;
            char name[256];
            if (std::sscanf(line, "%llx %c %255s", &a, &type, name) != 3 || a == 0) continue;
            if ((type != 't' && type != 'T') || a > addr || a < best) continue;
            best = a;
            best_name = name;
        }
        std::fclose(f);
        if (best_name.empty()) return {};
        char off[32];
        std::snprintf(off, sizeof off, "+0x%llx", static_cast<unsigned long long>(addr - best));
        return best_name + off;
    }

    bool enabled_ = false;
    mutable std::mutex mu_;
    mutable std::unordered_map<std::uint64_t, std::string> cache_;
};

// ---- the kernel's socket list (NETLINK_SOCK_DIAG) ----------------------------

// A NETLINK_SOCK_DIAG socket of the network namespace at netns_path ("" = the
// caller's). A socket belongs to the namespace it was created in, so a short-lived
// thread enters the namespace (setns affects only that thread), creates it, and ends.
Result<UniqueFd> sockDiagSocket(const std::string& netns_path) {
    auto make = [] { return ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG); };
    if (netns_path.empty()) {
        int fd = make();
        if (fd < 0) return std::unexpected(errnoError(errno, "sock_diag socket"));
        return UniqueFd(fd);
    }
    int fd = -1, err = 0;
    std::string what;
    std::thread([&] {
        UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns) { err = errno; what = "open " + netns_path; return; }
        if (::setns(ns.get(), CLONE_NEWNET) != 0) { err = errno; what = "enter " + netns_path; return; }
        fd = make();
        if (fd < 0) { err = errno; what = "sock_diag socket in " + netns_path; }
    }).join();
    if (fd < 0) return std::unexpected(errnoError(err, what));
    return UniqueFd(fd);
}

// Adds the cookie of every TCP socket of the namespace (both families, every state
// but LISTEN, TIME_WAIT and NEW_SYN_RECV: those are never in conn_table) to cookies.
Result<void> dumpTcpCookies(int fd, std::unordered_set<std::uint64_t>& cookies) {
    for (std::uint8_t family : {std::uint8_t{AF_INET}, std::uint8_t{AF_INET6}}) {
        struct {
            nlmsghdr nlh;
            inet_diag_req_v2 req;
        } msg{};
        msg.nlh.nlmsg_len = sizeof msg;
        msg.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
        msg.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
        msg.nlh.nlmsg_seq = family;
        msg.req.sdiag_family = family;
        msg.req.sdiag_protocol = IPPROTO_TCP;
        msg.req.idiag_states = 0xfff & ~((1u << 10) /*LISTEN*/ | (1u << 6) /*TIME_WAIT*/);  // NEW_SYN_RECV = bit 12
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        if (::sendto(fd, &msg, sizeof msg, 0, reinterpret_cast<sockaddr*>(&kernel), sizeof kernel) < 0)
            return std::unexpected(errnoError(errno, "sock_diag request"));
        alignas(nlmsghdr) char buf[32768];
        bool done = false;
        while (!done) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n < 0) {
                if (errno == EINTR) continue;
                return std::unexpected(errnoError(errno, "sock_diag dump"));
            }
            if (n == 0) break;
            int len = static_cast<int>(n);
            for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
                if (h->nlmsg_type == NLMSG_DONE) { done = true; break; }
                if (h->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                    return std::unexpected(errnoError(-e->error, "sock_diag dump"));
                }
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
                    continue;
                const auto* m = static_cast<const inet_diag_msg*>(NLMSG_DATA(h));
                cookies.insert(std::uint64_t{m->id.idiag_cookie[0]} | (std::uint64_t{m->id.idiag_cookie[1]} << 32));
            }
        }
    }
    return {};
}

// Files that open network namespaces, by inode: the monitor's own, the names under
// /run/netns, and the processes' (first found wins). Built once per reconciliation.
std::unordered_map<std::uint32_t, std::string> netnsPaths() {
    std::unordered_map<std::uint32_t, std::string> paths;
    auto add = [&paths](const std::string& p) {
        struct stat st {};
        if (::stat(p.c_str(), &st) == 0) paths.try_emplace(static_cast<std::uint32_t>(st.st_ino), p);
    };
    add("/proc/self/ns/net");
    std::error_code ec;
    for (const char* dir : {"/run/netns", "/var/run/netns"})
        for (const auto& e : std::filesystem::directory_iterator(dir, ec)) add(e.path().string());
    for (const auto& e : std::filesystem::directory_iterator("/proc", ec)) {
        const auto name = e.path().filename().string();
        if (name.empty() || name.find_first_not_of("0123456789") != std::string::npos) continue;
        add(e.path().string() + "/ns/net");
    }
    return paths;
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

const char* netfilterProtoName(int proto) {
    static constexpr const char* names[NP_NF_PROTO_MAX] = {"tcp", "udp", "icmp", "other"};
    return proto >= 0 && proto < NP_NF_PROTO_MAX ? names[proto] : "other";
}

Result<std::vector<std::string>> dropReasonNamesFromKernelBtf() {
    std::unique_ptr<btf, BtfDeleter> vmlinux(btf__load_vmlinux_btf());
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
    std::unique_ptr<stack_bpf, SkelDeleter> skel;
    std::vector<std::unique_ptr<bpf_link, LinkDeleter>> links;
    std::vector<UniqueFd> nf_links;
    std::vector<const bpf_program*> attached;  // programs with at least one link
    StackFeatures features;
    std::vector<std::string> drop_names;
    KernelSymbols ksyms;
    std::unique_ptr<ring_buffer, RingDeleter> ring;
    std::thread ring_thread;
    std::atomic<bool> stopping{false};

    // Reconciliation of conn_table with the kernel's sockets (see reconcile()).
    std::mutex reconcile_mu;
    std::chrono::steady_clock::time_point next_reconcile{};
    std::unordered_map<std::uint64_t, std::uint64_t> suspects;  // key -> cookie, absent in the last run
    std::atomic<std::uint64_t> reconciled{0};
    std::atomic<std::uint64_t> reconcile_runs{0};
    std::atomic<std::uint64_t> reconcile_failures{0};
    bool reconcile_warned = false;

    // Compares the open-connection records with the sockets that exist. A record
    // whose socket (by cookie) was absent from two consecutive dumps is stale: its
    // CLOSE was missed by the kernel's recursion guard. Two runs, because connect()
    // records SYN_SENT just before the socket is hashed (and so visible to
    // inet_diag). The record is looked up again right before its deletion, and
    // deleted only if it still carries the same cookie.
    void reconcile() {
        const int fd = bpf_map__fd(skel->maps.conn_table);
        struct Rec {
            std::uint64_t key, cookie;
        };
        std::map<std::uint32_t, std::vector<Rec>> by_ns;  // netns inode -> records
        std::uint64_t key = 0, next = 0;
        const std::uint64_t* prev = nullptr;
        np_conn c{};
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
            if (bpf_map_lookup_elem(fd, &next, &c) == 0 && c.cookie) by_ns[c.netns].push_back({next, c.cookie});
            key = next;
            prev = &key;
        }
        std::unordered_map<std::uint64_t, std::uint64_t> still;  // suspects of this run
        std::uint64_t removed = 0;
        bool failed = false;
        std::unordered_map<std::uint32_t, std::string> paths;  // without --socket-netns: all namespaces
        if (opts.netns_path.empty() && !by_ns.empty()) paths = netnsPaths();
        for (const auto& [ns, recs] : by_ns) {
            std::string path = opts.netns_path;
            if (path.empty())
                if (auto it = paths.find(ns); it != paths.end()) path = it->second;
            Result<void> ok = {};
            std::unordered_set<std::uint64_t> cookies;
            if (path.empty()) {
                ok = std::unexpected(makeError("no file opens network namespace " + std::to_string(ns)));
            } else if (auto nl = sockDiagSocket(path); !nl) {
                ok = std::unexpected(nl.error());
            } else {
                ok = dumpTcpCookies(nl->get(), cookies);
            }
            if (!ok) {  // unverifiable: keep the records and their suspicion
                failed = true;
                reconcile_failures.fetch_add(1);
                if (!reconcile_warned)
                    spdlog::warn("stack monitor: cannot check {} connection records against the kernel's sockets: {}",
                                 recs.size(), ok.error().what());
                reconcile_warned = true;
                for (const auto& r : recs)
                    if (auto it = suspects.find(r.key); it != suspects.end()) still.insert(*it);
                continue;
            }
            for (const auto& r : recs) {
                if (cookies.contains(r.cookie)) continue;
                auto it = suspects.find(r.key);
                if (it == suspects.end() || it->second != r.cookie) {
                    still.emplace(r.key, r.cookie);
                    continue;
                }
                np_conn cur{};
                if (bpf_map_lookup_elem(fd, &r.key, &cur) == 0 && cur.cookie == r.cookie &&
                    bpf_map_delete_elem(fd, &r.key) == 0)
                    ++removed;
            }
        }
        suspects = std::move(still);
        if (!failed) reconcile_warned = false;
        reconcile_runs.fetch_add(1);
        if (removed) {
            reconciled.fetch_add(removed);
            spdlog::info("stack monitor: removed {} connection records whose socket no longer exists (missed close "
                         "events)",
                         removed);
        }
    }

    void maybeReconcile() {
        if (opts.reconcile_interval.count() <= 0 || !features.connections) return;
        std::unique_lock lock(reconcile_mu, std::try_to_lock);
        if (!lock.owns_lock()) return;  // another reader is doing it
        const auto now = std::chrono::steady_clock::now();
        if (now < next_reconcile) return;
        next_reconcile = now + opts.reconcile_interval;
        reconcile();
    }

    mutable std::mutex closed_mu;
    std::deque<Connection> closed;  // newest at the front
    std::uint64_t closed_evicted = 0;

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

    static Connection toConnection(const np_conn& c, const Clock& clk) {
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
        return o;
    }

    static int onEvent(void* ctx, void* data, size_t size) {
        auto* self = static_cast<Impl*>(ctx);
        if (size < sizeof(np_conn)) return 0;
        np_conn c;
        std::memcpy(&c, data, sizeof c);
        Connection conn = toConnection(c, Clock::now());
        std::lock_guard lock(self->closed_mu);
        self->closed.push_front(std::move(conn));
        while (self->closed.size() > self->opts.max_closed) {
            self->closed.pop_back();
            ++self->closed_evicted;
        }
        return 0;
    }

    ~Impl() {
        stopping = true;
        if (ring_thread.joinable()) ring_thread.join();
        ring.reset();
        nf_links.clear();
        links.clear();
        skel.reset();
    }
};

StackMonitor::StackMonitor(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
StackMonitor::~StackMonitor() = default;

const StackFeatures& StackMonitor::features() const { return impl_->features; }

Result<std::unique_ptr<StackMonitor>> StackMonitor::create(StackMonitorOptions options) {
    auto im = std::make_unique<Impl>();
    im->opts = options;

    std::unique_ptr<btf, BtfDeleter> vmlinux(btf__load_vmlinux_btf());
    if (!vmlinux) return std::unexpected(errnoError(errno, "stack monitor: load the kernel's BTF"));
    auto hasTracepoint = [&](const char* tp) {
        std::string name = std::string("btf_trace_") + tp;
        return btf__find_by_name_kind(vmlinux.get(), name.c_str(), BTF_KIND_TYPEDEF) > 0;
    };

    im->skel.reset(stack_bpf__open());
    if (!im->skel) return std::unexpected(errnoError(errno, "stack monitor: open BPF object"));
    auto* s = im->skel.get();
    if (!options.netns_path.empty()) {
        auto ino = netnsInode(options.netns_path);
        if (!ino) return std::unexpected(ino.error());
        s->rodata->np_netns_filter = *ino;
        spdlog::info("stack monitor: socket and drop events of network namespace {} ({}) only", *ino,
                     options.netns_path);
    }
    bpf_map__set_max_entries(s->maps.conn_table, std::max<std::uint32_t>(options.conn_table_size, 1));

    struct Tp {
        bpf_program* prog;
        const char* tracepoint;
        const char* what;
        bool StackFeatures::*feature;
    };
    const Tp tps[] = {
        {s->progs.netprobe_sk_state, "inet_sock_set_state", "TCP connection tracking", &StackFeatures::connections},
        {s->progs.netprobe_tcp_retx, "tcp_retransmit_skb", "TCP retransmit counting", &StackFeatures::retransmits},
        {s->progs.netprobe_tcp_rst_tx, "tcp_send_reset", "TCP reset counting", &StackFeatures::resets},
        {s->progs.netprobe_tcp_rst_rx, "tcp_receive_reset", "TCP reset counting", &StackFeatures::resets},
        {s->progs.netprobe_tcp_probe, "tcp_probe", "TCP RTT/cwnd histograms", &StackFeatures::tcp_probe},
        {s->progs.netprobe_kfree_skb, "kfree_skb", "packet drop reasons", &StackFeatures::drops},
    };
    std::vector<const Tp*> enabled;
    for (const auto& tp : tps) {
        if (hasTracepoint(tp.tracepoint)) {
            enabled.push_back(&tp);
            continue;
        }
        bpf_program__set_autoload(tp.prog, false);
        spdlog::warn("stack monitor: {} disabled: the kernel has no tracepoint {} (no btf_trace_{} in its BTF)",
                     tp.what, tp.tracepoint, tp.tracepoint);
    }
    const bool nf_supported = btf__find_by_name_kind(vmlinux.get(), "bpf_nf_ctx", BTF_KIND_STRUCT) > 0;
    if (nf_supported) {
        bpf_program__set_type(s->progs.netprobe_nf, static_cast<bpf_prog_type>(kProgTypeNetfilter));
        bpf_program__set_expected_attach_type(s->progs.netprobe_nf, static_cast<bpf_attach_type>(kAttachNetfilter));
    } else {
        bpf_program__set_autoload(s->progs.netprobe_nf, false);
        spdlog::warn("stack monitor: netfilter hook counters disabled: the kernel has no netfilter BPF programs "
                     "(no struct bpf_nf_ctx in its BTF; needs Linux 6.4+)");
    }
    if (int err = stack_bpf__load(s); err) {
        int e = -err;
        std::string ctx = "stack monitor: load BPF programs";
        if (e == EPERM || e == EACCES) ctx += " (needs CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON, or root)";
        return std::unexpected(errnoError(e, ctx));
    }

    for (const Tp* tp : enabled) {
        bpf_link* l = bpf_program__attach(tp->prog);
        if (!l) {
            int e = errno;
            spdlog::warn("stack monitor: {} disabled: attaching to tracepoint {} failed: {}", tp->what,
                         tp->tracepoint, std::strerror(e));
            continue;
        }
        im->links.emplace_back(l);
        im->attached.push_back(tp->prog);
        im->features.*(tp->feature) = true;
    }
    // Both reset tracepoints or neither counts as the feature.
    if (im->features.resets && !(hasTracepoint("tcp_send_reset") && hasTracepoint("tcp_receive_reset")))
        im->features.resets = false;

    if (nf_supported) {
        int prog_fd = bpf_program__fd(s->progs.netprobe_nf);
        int ok = 0;
        std::string first_err;
        for (std::uint32_t pf : {kNfprotoIpv4, kNfprotoIpv6}) {
            for (std::uint32_t hook = 0; hook < NP_NF_HOOK_MAX; ++hook) {
                auto l = attachNetfilter(prog_fd, pf, hook);
                if (!l) {
                    if (first_err.empty())
                        first_err = std::string(pf == kNfprotoIpv4 ? "ipv4 " : "ipv6 ") + netfilterHookName(static_cast<int>(hook)) +
                                    ": " + l.error().what();
                    continue;
                }
                im->nf_links.push_back(std::move(*l));
                ++ok;
            }
        }
        im->features.netfilter = ok > 0;
        if (ok > 0) im->attached.push_back(s->progs.netprobe_nf);
        if (ok == 0) spdlog::warn("stack monitor: netfilter hook counters disabled: {}", first_err);
        else if (ok < 2 * NP_NF_HOOK_MAX)
            spdlog::warn("stack monitor: {} of {} netfilter hooks attached (first failure: {})", ok,
                         2 * NP_NF_HOOK_MAX, first_err);
    }

    if (im->features.drops) {
        auto names = dropReasonNamesFromKernelBtf();
        if (names) im->drop_names = std::move(*names);
        else spdlog::warn("stack monitor: drop reasons will be numbers: {}", names.error().what());
        im->ksyms.load();
    }

    if (im->features.connections) {
        im->ring.reset(ring_buffer__new(bpf_map__fd(s->maps.conn_events), &Impl::onEvent, im.get(), nullptr));
        if (!im->ring) return std::unexpected(errnoError(errno, "stack monitor: ring buffer"));
        im->ring_thread = std::thread([raw = im.get()] {
            while (!raw->stopping.load()) {
                int n = ring_buffer__poll(raw->ring.get(), 200);
                if (n < 0 && n != -EINTR) {
                    spdlog::warn("stack monitor: ring buffer poll: {}", std::strerror(-n));
                    std::this_thread::sleep_for(std::chrono::milliseconds(200));
                }
            }
        });
    }

    const auto& f = im->features;
    spdlog::info("stack monitor: connections {}, retransmits {}, resets {}, rtt/cwnd {}, drops {}, netfilter {} ({} links)",
                 f.connections ? "on" : "off", f.retransmits ? "on" : "off", f.resets ? "on" : "off",
                 f.tcp_probe ? "on" : "off", f.drops ? "on" : "off", f.netfilter ? "on" : "off",
                 im->nf_links.size());
    return std::unique_ptr<StackMonitor>(new StackMonitor(std::move(im)));
}

Result<StackStats> StackMonitor::read() const {
    impl_->maybeReconcile();  // before the counters, so the gauge reflects its removals
    const auto& im = *impl_;
    auto* s = im.skel.get();
    StackStats st;
    st.features = im.features;

    std::vector<std::uint64_t> u;
    if (auto r = readArray(bpf_map__fd(s->maps.tcp_counters), NP_TCP_COUNTER_MAX, u); !r)
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
    st.records_reconciled = im.reconciled.load();
    st.reconcile_runs = im.reconcile_runs.load();
    st.reconcile_failures = im.reconcile_failures.load();
    st.tracked_open = u[NP_TCP_TRACKED_DELTA] - st.records_reconciled;
    if (static_cast<std::int64_t>(st.tracked_open) < 0) st.tracked_open = 0;

    if (auto r = readArray(bpf_map__fd(s->maps.stack_errors), NP_STACK_ERR_MAX, u); !r)
        return std::unexpected(r.error());
    st.conn_insert_failures = u[NP_STACK_ERR_CONN_INSERT];
    st.drop_location_failures = u[NP_STACK_ERR_DROP_LOC];
    st.ringbuf_reserve_failures = u[NP_STACK_ERR_RINGBUF];

    if (auto r = readArray(bpf_map__fd(s->maps.tcp_hist), NP_HIST_MAX * NP_HIST_SLOTS, u); !r)
        return std::unexpected(r.error());
    for (std::size_t b = 0; b < NP_HIST_BUCKETS; ++b) {
        st.srtt_us.buckets[b] = u[NP_HIST_SRTT_US * NP_HIST_SLOTS + b];
        st.cwnd.buckets[b] = u[NP_HIST_CWND * NP_HIST_SLOTS + b];
    }
    st.srtt_us.sum = u[NP_HIST_SRTT_US * NP_HIST_SLOTS + NP_HIST_BUCKETS];
    st.cwnd.sum = u[NP_HIST_CWND * NP_HIST_SLOTS + NP_HIST_BUCKETS];

    if (im.features.drops) {
        if (auto r = readArray(bpf_map__fd(s->maps.drop_reasons), NP_DROP_REASON_MAX, u); !r)
            return std::unexpected(r.error());
        for (std::uint32_t i = 0; i < NP_DROP_REASON_MAX; ++i) {
            if (!u[i]) continue;
            DropCount d;
            d.reason = i;
            d.count = u[i];
            if (i == NP_DROP_REASON_MAX - 1) d.name = "OTHER";
            else if (i < im.drop_names.size() && !im.drop_names[i].empty()) d.name = im.drop_names[i];
            else d.name = "REASON_" + std::to_string(i);
            st.drops.push_back(std::move(d));
        }
    }

    if (im.features.drops) {
        const int ncpu = possibleCpus();
        std::vector<std::uint64_t> vals(static_cast<std::size_t>(ncpu));
        std::vector<std::pair<std::uint64_t, np_drop_loc_key>> locs;
        int fd = bpf_map__fd(s->maps.drop_locations);
        np_drop_loc_key k{}, next{};
        const np_drop_loc_key* prev = nullptr;
        while (bpf_map_get_next_key(fd, prev, &next) == 0) {
            if (bpf_map_lookup_elem(fd, &next, vals.data()) == 0) {
                std::uint64_t t = 0;
                for (auto v : vals) t += v;
                if (t) locs.emplace_back(t, next);
            }
            k = next;
            prev = &k;
        }
        const std::size_t top = std::min(locs.size(), StackStats::kTopDropLocations);
        std::partial_sort(locs.begin(), locs.begin() + static_cast<std::ptrdiff_t>(top), locs.end(),
                          [](const auto& a, const auto& b) { return a.first > b.first; });
        for (std::size_t i = 0; i < top; ++i) {
            const auto& [count, key] = locs[i];
            DropLocation d;
            d.count = count;
            d.location = im.ksyms.resolve(key.location);
            if (key.reason < im.drop_names.size() && !im.drop_names[key.reason].empty()) d.reason = im.drop_names[key.reason];
            else d.reason = "REASON_" + std::to_string(key.reason);
            st.drop_locations.push_back(std::move(d));
        }
    }

    if (im.features.netfilter) {
        std::vector<np_counter> nf;
        if (auto r = readArray(bpf_map__fd(s->maps.nf_stats), NP_NF_HOOK_MAX * NP_NF_FAMILY_MAX * NP_NF_PROTO_MAX, nf); !r)
            return std::unexpected(r.error());
        for (std::size_t h = 0; h < NP_NF_HOOK_MAX; ++h)
            for (std::size_t f = 0; f < NP_NF_FAMILY_MAX; ++f)
                for (std::size_t p = 0; p < NP_NF_PROTO_MAX; ++p) {
                    const auto& c = nf[(h * NP_NF_FAMILY_MAX + f) * NP_NF_PROTO_MAX + p];
                    st.netfilter[h][f][p] = Counter{c.packets, c.bytes};
                }
    }

    for (const bpf_program* prog : im.attached) {
        bpf_prog_info pi{};
        __u32 psz = sizeof pi;
        if (bpf_obj_get_info_by_fd(bpf_program__fd(prog), &pi, &psz) == 0)
            st.missed_events.emplace_back(bpf_program__name(prog), pi.recursion_misses);
    }

    if (im.features.connections) {
        const auto clk = Impl::Clock::now();
        int fd = bpf_map__fd(s->maps.conn_table);
        std::uint64_t key = 0, next = 0;
        const std::uint64_t* prev = nullptr;
        np_conn c{};
        while (st.connections.size() < im.opts.max_open && bpf_map_get_next_key(fd, prev, &next) == 0) {
            if (bpf_map_lookup_elem(fd, &next, &c) == 0) st.connections.push_back(Impl::toConnection(c, clk));
            key = next;
            prev = &key;
        }
        std::sort(st.connections.begin(), st.connections.end(),
                  [](const Connection& a, const Connection& b) { return a.start < b.start; });
        std::lock_guard lock(im.closed_mu);
        st.connections.insert(st.connections.end(), im.closed.begin(), im.closed.end());
        st.closed_evicted = im.closed_evicted;
    }
    return st;
}

}  // namespace netprobe::ebpf
