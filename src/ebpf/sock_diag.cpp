#include "ebpf/sock_diag.hpp"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <linux/inet_diag.h>
#include <linux/netlink.h>
#include <linux/sock_diag.h>
#include <netinet/in.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>
#include <thread>
#include <vector>

#include "netprobe/abi.h"
#include "netprobe/ebpf/map_io.hpp"

namespace netprobe::ebpf {

Result<UniqueFd> sockDiagSocket(const std::string& netns_path) {
    auto make = [] { return ::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_SOCK_DIAG); };
    if (netns_path.empty()) {
        UniqueFd fd(make());
        if (!fd) return std::unexpected(errnoError(errno, "sock_diag socket"));
        return fd;
    }
    UniqueFd fd;
    int err = 0;
    std::string what;
    std::thread([&] {
        UniqueFd ns(::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC));
        if (!ns) {
            err = errno;
            what = "open " + netns_path;
            return;
        }
        if (::setns(ns.get(), CLONE_NEWNET) != 0) {
            err = errno;
            what = "enter " + netns_path;
            return;
        }
        fd.reset(make());
        if (!fd) {
            err = errno;
            what = "sock_diag socket in " + netns_path;
        }
    }).join();
    if (!fd) return std::unexpected(errnoError(err, what));
    return fd;
}

namespace {
// One SOCK_DIAG_BY_FAMILY dump of TCP sockets in `states` (bit per TCP state) for each
// family; each inet_diag_msg goes to f.
template <typename F>
Result<void> dumpTcp(int fd, std::uint32_t states, F&& f) {
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
        msg.req.idiag_states = states;
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
                if (h->nlmsg_type == NLMSG_DONE) {
                    done = true;
                    break;
                }
                if (h->nlmsg_type == NLMSG_ERROR) {
                    const auto* e = static_cast<const nlmsgerr*>(NLMSG_DATA(h));
                    return std::unexpected(errnoError(-e->error, "sock_diag dump"));
                }
                if (h->nlmsg_type != SOCK_DIAG_BY_FAMILY || h->nlmsg_len < NLMSG_LENGTH(sizeof(inet_diag_msg)))
                    continue;
                f(*static_cast<const inet_diag_msg*>(NLMSG_DATA(h)));
            }
        }
    }
    return {};
}
}  // namespace

Result<void> dumpTcpCookies(int fd, std::unordered_set<std::uint64_t>& cookies) {
    // every state but LISTEN and TIME_WAIT (never in conn_table); NEW_SYN_RECV = bit 12
    return dumpTcp(fd, 0xfff & ~((1u << 10) /*LISTEN*/ | (1u << 6) /*TIME_WAIT*/), [&](const inet_diag_msg& m) {
        // A timewait mini-socket (inet_twsk_diag_fill sets timer 3) is dumped with the
        // state of its substate - FIN_WAIT2 for an orphan whose FIN was acknowledged, for
        // tcp_fin_timeout (60 s) - and the cookie of the socket it replaced: that socket,
        // and its record, are gone. Not a live socket.
        if (m.idiag_timer == 3) return;
        cookies.insert(std::uint64_t{m.id.idiag_cookie[0]} | (std::uint64_t{m.id.idiag_cookie[1]} << 32));
    });
}

Result<void> dumpTcpListeners(int fd, std::vector<TcpListener>& out) {
    return dumpTcp(fd, 1u << 10 /*LISTEN*/, [&](const inet_diag_msg& m) {
        TcpListener l;
        l.family = m.idiag_family == AF_INET6 ? 6 : 4;
        if (l.family == 4) {
            l.addr[10] = l.addr[11] = 0xff;
            std::memcpy(&l.addr[12], &m.id.idiag_src[0], 4);
        } else {
            std::memcpy(l.addr.data(), m.id.idiag_src, 16);
        }
        l.port = ntohs(m.id.idiag_sport);
        l.queued = m.idiag_rqueue;
        l.backlog = m.idiag_wqueue;
        out.push_back(l);
    });
}

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

void ConnReconciler::runIfDue(int fd, std::optional<std::uint64_t> missed, std::chrono::steady_clock::time_point now,
                              std::chrono::steady_clock::duration full_interval) {
    const bool due = !missed || !last_missed_ || *missed != *last_missed_ || !suspects_.empty() || !last_run_ ||
                     now - *last_run_ >= full_interval;
    if (!due) {
        skipped.fetch_add(1);
        return;
    }
    last_missed_ = missed;  // read before the dumps: a miss during them moves it again
    last_run_ = now;
    run(fd);
}

void ConnReconciler::run(int fd) {
    struct Rec {
        std::uint64_t key, cookie;
    };
    std::map<std::uint32_t, std::vector<Rec>> by_ns;  // netns inode -> records
    auto read = readHash<std::uint64_t, np_conn>(fd, [&](const std::uint64_t& key, const np_conn& c) {
        if (c.cookie) by_ns[c.netns].push_back({key, c.cookie});
    });
    if (!read) {
        failures.fetch_add(1);
        if (!warned_) spdlog::warn("stack monitor: cannot read the connection records: {}", read.error().what());
        warned_ = true;
        return;
    }
    std::unordered_map<std::uint64_t, std::uint64_t> still;  // suspects of this run
    std::uint64_t n_removed = 0;
    bool failed = false;
    std::unordered_map<std::uint32_t, std::string> paths;  // without --socket-netns: all namespaces
    if (netns_path_.empty() && !by_ns.empty()) paths = netnsPaths();
    for (const auto& [ns, recs] : by_ns) {
        std::string path = netns_path_;
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
            failures.fetch_add(1);
            if (!warned_)
                spdlog::warn("stack monitor: cannot check {} connection records against the kernel's sockets: {}",
                             recs.size(), ok.error().what());
            warned_ = true;
            for (const auto& r : recs)
                if (auto it = suspects_.find(r.key); it != suspects_.end()) still.insert(*it);
            continue;
        }
        for (const auto& r : recs) {
            if (cookies.contains(r.cookie)) continue;
            auto it = suspects_.find(r.key);
            if (it == suspects_.end() || it->second != r.cookie) {
                still.emplace(r.key, r.cookie);
                continue;
            }
            np_conn cur{};
            if (bpf_map_lookup_elem(fd, &r.key, &cur) != 0 || cur.cookie != r.cookie) continue;  // closed or reused
            if (bpf_map_delete_elem(fd, &r.key) == 0) {
                ++n_removed;
            } else if (errno != ENOENT) {
                delete_failures.fetch_add(1);
                still.emplace(r.key, r.cookie);  // retried next run
            }
        }
    }
    suspects_ = std::move(still);
    if (!failed) warned_ = false;
    runs.fetch_add(1);
    if (n_removed) {
        removed.fetch_add(n_removed);
        spdlog::info("stack monitor: removed {} connection records whose socket no longer exists (missed close events)",
                     n_removed);
    }
}

}  // namespace netprobe::ebpf
