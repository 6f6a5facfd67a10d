// Internal: the kernel's list of TCP sockets (NETLINK_SOCK_DIAG), and the
// reconciliation of the stack monitor's connection records with it.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "netprobe/util/error.hpp"
#include "netprobe/util/fd.hpp"

namespace netprobe::ebpf {

// A NETLINK_SOCK_DIAG socket of the network namespace at netns_path ("" = the
// caller's). A socket belongs to the namespace it was created in, so a short-lived
// thread enters the namespace (setns affects only that thread), creates it, and ends.
Result<util::UniqueFd> sockDiagSocket(const std::string& netns_path);

// Adds the cookie of every full TCP socket of the socket's namespace (both families;
// the states conn_table can hold; timewait mini-sockets left out whatever their state)
// to cookies.
Result<void> dumpTcpCookies(int fd, std::unordered_set<std::uint64_t>& cookies);

// A listening TCP socket and its accept queue (inet_diag: for a LISTEN socket idiag_rqueue
// is the accept queue's length, idiag_wqueue the backlog it may reach).
struct TcpListener {
    std::array<std::uint8_t, 16> addr{};  // IPv4 stored IPv4-mapped
    std::uint8_t family = 4;
    std::uint16_t port = 0;
    std::uint32_t queued = 0;
    std::uint32_t backlog = 0;
};
// Appends the listening TCP sockets of the socket's namespace (both families) to out. A
// dump of listeners only: the kernel walks its listening hash, not the established one.
Result<void> dumpTcpListeners(int fd, std::vector<TcpListener>& out);

// Files that open network namespaces, by inode: the caller's own, the names under
// /run/netns, and the processes' (first found wins).
std::unordered_map<std::uint32_t, std::string> netnsPaths();

// Removes conn_table records whose socket no longer exists (its CLOSE was missed by
// the kernel's recursion guard). A record is removed only when its socket (by cookie)
// was absent from two consecutive dumps of its namespace, and only if it still
// carries that cookie right before the delete. Run from a background task.
class ConnReconciler {
public:
    explicit ConnReconciler(std::string netns_path) : netns_path_(std::move(netns_path)) {}
    void run(int conn_table_fd);
    // run() when it can find something: missed (the state-change program's miss count;
    // nullopt: unknown) moved since the last run, records are under suspicion, or
    // full_interval passed since the last run. Each dump walks the kernel's whole TCP
    // hash table per namespace and family (tcp_diag_dump and its copies were ~30% of
    // the agent's perf samples under iperf3 load when it ran every 2 s).
    void runIfDue(int conn_table_fd, std::optional<std::uint64_t> missed, std::chrono::steady_clock::time_point now,
                  std::chrono::steady_clock::duration full_interval);

    std::atomic<std::uint64_t> removed{0};
    std::atomic<std::uint64_t> runs{0};
    std::atomic<std::uint64_t> skipped{0};  // checks that found nothing to compare
    std::atomic<std::uint64_t> failures{0};  // namespaces that could not be checked
    std::atomic<std::uint64_t> delete_failures{0};

private:
    std::string netns_path_;  // --socket-netns: every record is of this namespace
    std::unordered_map<std::uint64_t, std::uint64_t> suspects_;  // key -> cookie, absent in the last run
    bool warned_ = false;
    std::optional<std::uint64_t> last_missed_;
    std::optional<std::chrono::steady_clock::time_point> last_run_;
};

}  // namespace netprobe::ebpf
