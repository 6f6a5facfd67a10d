// netprobe::ebpf::L7Capture - loads bpf/progs/l7.bpf.c, attaches its syscall tracepoints
// (the raw sys_exit; close(2)'s own, else the raw sys_enter) and drains its ring on a
// thread of its own.
#include <netprobe/ebpf/l7_capture.hpp>

#include <linux/perf_event.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include <spdlog/spdlog.h>

#include <netprobe/ebpf/map_io.hpp>
#include <netprobe/ebpf/tls_probes.hpp>
#include <netprobe/ebpf/tracefs.hpp>

#include "l7.skel.h"

namespace netprobe::ebpf {
namespace {

using LinkPtr = Owned<bpf_link, bpf_link__destroy>;
using SkelPtr = Owned<l7_bpf, l7_bpf__destroy>;
using BtfPtr = Owned<btf, btf__free>;

struct SyscallKind {
    long nr;
    np_l7_syscall kind;
};

// The syscalls captured, by this architecture's numbers.
constexpr SyscallKind kSyscalls[] = {
#ifdef SYS_read
    {SYS_read, NP_L7_SC_READ},
#endif
#ifdef SYS_write
    {SYS_write, NP_L7_SC_WRITE},
#endif
#ifdef SYS_readv
    {SYS_readv, NP_L7_SC_READV},
#endif
#ifdef SYS_writev
    {SYS_writev, NP_L7_SC_WRITEV},
#endif
#ifdef SYS_recvfrom
    {SYS_recvfrom, NP_L7_SC_RECVFROM},
#endif
#ifdef SYS_sendto
    {SYS_sendto, NP_L7_SC_SENDTO},
#endif
#ifdef SYS_recvmsg
    {SYS_recvmsg, NP_L7_SC_RECVMSG},
#endif
#ifdef SYS_sendmsg
    {SYS_sendmsg, NP_L7_SC_SENDMSG},
#endif
#ifdef SYS_recvmmsg
    {SYS_recvmmsg, NP_L7_SC_RECVMMSG},
#endif
#ifdef SYS_sendmmsg
    {SYS_sendmmsg, NP_L7_SC_SENDMMSG},
#endif
#ifdef SYS_sendfile
    {SYS_sendfile, NP_L7_SC_SENDFILE},
#endif
#ifdef SYS_close
    {SYS_close, NP_L7_SC_CLOSE},
#endif
};

bool isPowerOfTwo(std::uint32_t v) { return v && (v & (v - 1)) == 0; }

}  // namespace

struct L7Capture::Impl {
    SkelPtr skel;
    std::vector<LinkPtr> links;
    std::mutex tls_mu;
    std::vector<LinkPtr> tls_links;         // guarded by tls_mu
    std::vector<TlsLibrary> tls_libraries;  // guarded by tls_mu
    bool tls = false;
    TlsProbeMode tls_probes = TlsProbeMode::Auto;
    const char* close_hook = "sys_enter";
    std::unique_ptr<RingReader> ring;
    Handler handler;
};

L7Capture::L7Capture(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

L7Capture::~L7Capture() {
    if (!impl_) return;
    {
        std::lock_guard lock(impl_->tls_mu);
        impl_->tls_links.clear();
    }
    impl_->links.clear();  // no new records
    impl_->ring.reset();   // then stop the reader
}

namespace {
// prog attached to the tracepoint syscalls:<name> (its id from tracefs, mounted privately
// when it is not mounted: ebpf/tracefs.hpp). A tracepoint's BPF programs run on every CPU,
// whichever CPU its perf event was opened on.
Result<LinkPtr> attachSyscallTracepoint(bpf_program* prog, const std::string& name) {
    auto id = tracepointId("syscalls", name);
    if (!id) return std::unexpected(id.error());
    perf_event_attr attr{};
    attr.size = sizeof attr;
    attr.type = PERF_TYPE_TRACEPOINT;
    attr.config = static_cast<std::uint64_t>(id->id);
    attr.sample_period = 1;
    attr.wakeup_events = 1;
    int pfd = static_cast<int>(::syscall(__NR_perf_event_open, &attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
    if (pfd < 0) return std::unexpected(errnoError(errno, "perf_event_open of tracepoint syscalls:" + name));
    LinkPtr l(bpf_program__attach_perf_event(prog, pfd));
    if (!l) {
        int e = errno;
        ::close(pfd);
        return std::unexpected(errnoError(e, "attach " + std::string(bpf_program__name(prog)) + " to syscalls:" + name));
    }
    return l;  // the link owns the perf event's descriptor
}
}  // namespace

Result<std::unique_ptr<L7Capture>> L7Capture::create(L7CaptureOptions options, Handler on_message) {
    if (!isPowerOfTwo(options.ring_bytes) || options.ring_bytes < static_cast<std::uint32_t>(getpagesize()))
        return std::unexpected(makeError("L7 capture: ring size " + std::to_string(options.ring_bytes) +
                                         " is not a power of two of at least a page"));
    {
        BtfPtr vmlinux(btf__load_vmlinux_btf());
        if (!vmlinux) return std::unexpected(errnoError(errno, "L7 capture: kernel BTF"));
        for (const char* tp : {"btf_trace_sys_enter", "btf_trace_sys_exit"})
            if (btf__find_by_name_kind(vmlinux.get(), tp, BTF_KIND_TYPEDEF) <= 0)
                return std::unexpected(makeError(std::string("L7 capture: the kernel has no raw tracepoint ") +
                                                 (tp + 10) + " (no " + tp + " in its BTF)"));
    }
    if (std::size(kSyscalls) < 12)
        return std::unexpected(makeError("L7 capture: this architecture's syscall numbers are not all known"));

    auto impl = std::make_unique<Impl>();
    impl->handler = std::move(on_message);
    impl->tls = options.tls;
    impl->tls_probes = options.tls_probes;
    auto skel = loadSkeleton<l7_bpf, l7_bpf__open, l7_bpf__load, l7_bpf__destroy>(
        "L7 capture", [&](l7_bpf& sk) -> Result<void> {
            if (options.exclude_self) sk.rodata->np_self_tgid = static_cast<__u32>(getpid());
            for (const auto& s : kSyscalls) {
                if (s.nr < 0 || s.nr >= NP_L7_SYSCALL_TABLE)
                    return std::unexpected(makeError("L7 capture: syscall number " + std::to_string(s.nr) +
                                                     " outside the program's table"));
                sk.rodata->np_syscall_kind[s.nr] = static_cast<__u8>(s.kind);
            }
            if (int err = bpf_map__set_max_entries(sk.maps.l7_events, options.ring_bytes))
                return std::unexpected(errnoError(-err, "L7 capture: size l7_events"));
            if (int err = bpf_map__set_max_entries(sk.maps.l7_conns, std::max<std::uint32_t>(options.max_connections, 1)))
                return std::unexpected(errnoError(-err, "L7 capture: size l7_conns"));
            return {};
        });
    if (!skel) return std::unexpected(skel.error());
    impl->skel = std::move(*skel);
    auto* s = impl->skel.get();

    // One message object for every record (the ring thread alone calls this): its strings
    // keep their capacity, so a record's bytes are copied without an allocation.
    auto ring = RingReader::start(bpf_map__fd(s->maps.l7_events), "l7",
                                  [raw = impl.get(), m = L7Message{}](std::span<const std::byte> rec) mutable {
        constexpr std::size_t kHeader = offsetof(np_l7_event, data);
        constexpr std::size_t kCloseHeader = offsetof(np_l7_event, tail);
        if (rec.size() < kCloseHeader) return;
        // The header is copied (aligned); the data is read in place.
        np_l7_event e;
        std::memcpy(&e, rec.data(), std::min(rec.size(), kHeader));
        m.ts_ns = e.ts_ns;
        m.sock = e.sock;
        m.pid = static_cast<std::uint32_t>(e.pid_tgid >> 32);
        m.tid = static_cast<std::uint32_t>(e.pid_tgid);
        m.cgroup_id = e.cgroup_id;
        std::memcpy(m.local.data(), &e.local, 16);
        std::memcpy(m.remote.data(), &e.remote, 16);
        m.local_port = e.local_port;
        m.remote_port = e.remote_port;
        m.family = e.family;
        m.ip_proto = e.ip_proto ? e.ip_proto : 6;
        m.direction = e.direction;
        m.protocol = e.protocol;
        m.syscall = e.syscall;
        m.flags = e.flags;
        m.fd = e.fd;
        m.len = e.len;
        m.head.clear();
        m.tail.clear();
        m.pieces.clear();
        if (rec.size() >= kHeader) {
            const auto* base = reinterpret_cast<const char*>(rec.data());
            const std::size_t n = std::min<std::size_t>({e.captured, rec.size() - kHeader, NP_L7_HEAD_MAX});
            m.head.assign(base + kHeader, n);
            m.tail.assign(base + offsetof(np_l7_event, tail), std::min<std::size_t>(e.tail_len, NP_L7_TAIL_MAX));
            const std::size_t p = std::min<std::size_t>({e.pieces_len, rec.size() - kHeader - n, NP_L7_PIECES_BYTES});
            if (p) m.pieces.assign(base + kHeader + n, p);
        }
        raw->handler(m);
    });
    if (!ring) return std::unexpected(ring.error());
    impl->ring = std::move(*ring);

    // close(2) at its own tracepoint where tracefs has it (every other syscall's entry then
    // runs no program), else at the raw sys_enter.
    bpf_program* enter = s->progs.np_l7_enter;
    if (options.close_tracepoint) {
        if (auto l = attachSyscallTracepoint(s->progs.np_l7_enter_close, "sys_enter_close")) {
            impl->links.push_back(std::move(*l));
            impl->close_hook = "syscalls:sys_enter_close";
            enter = nullptr;
        } else {
            spdlog::info("L7 capture: close(2) is seen at the raw sys_enter tracepoint, a program run at every "
                         "syscall's entry ({})",
                         l.error().message);
        }
    }
    for (bpf_program* prog : {enter, s->progs.np_l7_exit, s->progs.np_l7_sk_close}) {
        if (!prog) continue;
        // The uprobe programs are attached per library (attachTlsLibraries).
        LinkPtr l(bpf_program__attach(prog));
        if (!l) {
            int e = errno;
            return std::unexpected(errnoError(e, std::string("L7 capture: attach ") + bpf_program__name(prog)));
        }
        impl->links.push_back(std::move(l));
    }
    return std::unique_ptr<L7Capture>(new L7Capture(std::move(impl)));
}

const char* L7Capture::closeHook() const { return impl_->close_hook; }

Result<std::size_t> L7Capture::attachTlsLibraries(const std::string& proc) {
    auto& im = *impl_;
    if (!im.tls) return std::size_t{0};
    // Candidate files: every libssl.so* in a process's maps, opened through its root.
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::string> found;
    struct stat own_root {};
    ::stat("/", &own_root);
    const std::string self = std::to_string(getpid());
    std::error_code ec;
    for (const auto& d : std::filesystem::directory_iterator(proc, ec)) {
        const std::string pid = d.path().filename().string();
        if (pid.empty() || !std::all_of(pid.begin(), pid.end(), ::isdigit)) continue;
        if (pid == self) continue;
        std::ifstream maps(d.path() / "maps");
        std::string line;
        std::optional<bool> same_root;  // the process's root is ours (asked once, when it maps a libssl)
        while (std::getline(maps, line)) {
            auto slash = line.find('/');
            if (slash == std::string::npos) continue;
            std::string file = line.substr(slash);
            auto base = file.substr(file.rfind('/') + 1);
            if (!base.starts_with("libssl.so") || file.ends_with(" (deleted)")) continue;
            std::string path = d.path().string() + "/root" + file;
            struct stat st {};
            if (::stat(path.c_str(), &st) != 0) continue;
            // A process of our own root: the plain path (for the log); else through its root.
            if (!same_root) {
                struct stat root {};
                same_root = ::stat((d.path() / "root").c_str(), &root) == 0 && root.st_dev == own_root.st_dev &&
                            root.st_ino == own_root.st_ino;
            }
            found.emplace(std::make_pair(static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino)),
                          *same_root ? file : path);
        }
    }
    std::lock_guard lock(im.tls_mu);
    std::size_t added = 0;
    auto* s = im.skel.get();
    for (const auto& [key, path] : found) {
        if (std::any_of(im.tls_libraries.begin(), im.tls_libraries.end(),
                        [&](const TlsLibrary& l) { return l.dev == key.first && l.ino == key.second; }))
            continue;
        TlsLibrary lib{path, key.first, key.second, 0};
        auto probes = tlsProbes(path, im.tls_probes);
        if (!probes) {
            spdlog::warn("L7 capture: {}", probes.error().message);
            im.tls_libraries.push_back(lib);  // not retried every scan
            continue;
        }
        std::vector<LinkPtr> links;
        std::string names;
        for (const auto& p : *probes) {
            bpf_program* entry = nullptr;
            switch (p.call) {
                case TlsCall::Read: entry = s->progs.np_ssl_read; break;
                case TlsCall::ReadEx: entry = s->progs.np_ssl_read_ex; break;
                case TlsCall::Write: entry = s->progs.np_ssl_write; break;
                case TlsCall::WriteEx: entry = s->progs.np_ssl_write_ex; break;
            }
            if (!entry) continue;
            LIBBPF_OPTS(bpf_uprobe_opts, entry_opts);
            LinkPtr in(bpf_program__attach_uprobe_opts(entry, -1, path.c_str(), p.offset, &entry_opts));
            if (!in) continue;
            LIBBPF_OPTS(bpf_uprobe_opts, ret_opts, .retprobe = true);
            LinkPtr out(bpf_program__attach_uprobe_opts(s->progs.np_ssl_ret, -1, path.c_str(), p.offset, &ret_opts));
            if (!out) continue;  // without its return probe the entry would only fill the call table
            links.push_back(std::move(in));
            links.push_back(std::move(out));
            ++lib.functions;
            names += (names.empty() ? "" : ", ") + p.function;
        }
        if (lib.functions == 0) {
            spdlog::warn("L7 capture: no TLS function of {} could be probed (uprobe attach failed)", path);
            im.tls_libraries.push_back(lib);  // not retried every scan
            continue;
        }
        for (auto& l : links) im.tls_links.push_back(std::move(l));
        spdlog::info("L7 capture: TLS plaintext of {} (probed: {})", path, names);
        im.tls_libraries.push_back(std::move(lib));
        ++added;
    }
    if (!im.tls_links.empty()) s->bss->np_tls_active = 1;
    return added;
}

std::vector<TlsLibrary> L7Capture::tlsLibraries() const {
    std::lock_guard lock(impl_->tls_mu);
    return impl_->tls_libraries;
}

Result<L7KernelCounters> L7Capture::counters() const {
    L7KernelCounters out{};
    auto r = readPerCpuArray<std::uint64_t>(bpf_map__fd(impl_->skel->maps.l7_counters), NP_L7_CNT_MAX,
                                            [&](std::uint32_t i, std::span<const std::uint64_t> v) {
                                                if (i < out.size()) out[i] = sumValues(v);
                                            });
    if (!r) return std::unexpected(r.error());
    return out;
}

const char* l7ProtocolName(std::uint8_t protocol) {
    switch (protocol) {
        case NP_L7_HTTP1: return "http";
        case NP_L7_HTTP2: return "http2";
        case NP_L7_DNS: return "dns";
        case NP_L7_TLS: return "tls";
        case NP_L7_REDIS: return "redis";
        case NP_L7_POSTGRES: return "postgres";
        case NP_L7_MYSQL: return "mysql";
        case NP_L7_KAFKA: return "kafka";
        case NP_L7_AMQP: return "amqp";
        case NP_L7_NONE: return "none";
        default: return "unknown";
    }
}

const char* l7CounterName(std::uint32_t counter) {
    switch (counter) {
        case NP_L7_CNT_SOCKET_SYSCALLS: return "socket_syscalls";
        case NP_L7_CNT_EVENTS: return "events";
        case NP_L7_CNT_RING_FULL: return "ring_full";
        case NP_L7_CNT_ARGS_FULL: return "args_full";
        case NP_L7_CNT_CONNS_FULL: return "conns_full";
        case NP_L7_CNT_READ_FAILED: return "read_failed";
        case NP_L7_CNT_SKIPPED_NONE: return "skipped_unclassified";
        case NP_L7_CNT_TLS_NO_SOCKET: return "tls_no_socket";
        default: return "unknown";
    }
}

}  // namespace netprobe::ebpf
