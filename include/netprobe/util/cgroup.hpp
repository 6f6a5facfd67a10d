// The cgroup v2 hierarchy: where it is mounted and a walk over its directories (the
// one parser of /proc/mounts and the one cgroup walker of the project).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <netprobe/util/error.hpp>
#include <netprobe/util/fd.hpp>

namespace netprobe::util {

// The mount point of the cgroup v2 hierarchy in /proc/mounts text (fstype "cgroup2"),
// with octal escapes (\040) decoded; nullopt when there is none. Pure.
[[nodiscard]] std::optional<std::string> findCgroup2Mount(std::string_view proc_mounts_text);
// findCgroup2Mount over /proc/mounts.
[[nodiscard]] Result<std::string> cgroup2Mount();

// A cgroup v2 hierarchy as a path. `held` is open when the path goes through it.
struct CgroupHierarchy {
    std::string path;
    UniqueFd held;
};
// cgroup2Mount(); else (a mount namespace without it, as `ip netns exec` makes) the
// nearest ancestor process's mount, reached through /proc/PID/root and held open, so
// the path ("/proc/self/fd/N/.") stays valid after that ancestor exits.
[[nodiscard]] Result<CgroupHierarchy> findCgroupHierarchy();

struct CgroupWalkStats {
    std::size_t visited = 0;   // directories seen, the root included
    std::size_t vanished = 0;  // directories gone (or unreadable) before they could be read
};
// Visits the root and every cgroup directory below it, depth first, down to max_depth
// levels below the root: visit(relative path ("/" for the root, else "/a/b"), cgroup
// id (= the directory's inode)). Directories removed during the walk are skipped and
// counted. An error only when the root itself cannot be read. No fd outlives the call.
Result<CgroupWalkStats> walkCgroupTree(const std::string& root, int max_depth,
                                       const std::function<void(std::string_view rel, std::uint64_t id)>& visit);

}  // namespace netprobe::util
