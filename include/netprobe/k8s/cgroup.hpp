// Containers and pods from cgroup v2 paths: the kubelet's cgroup layouts (systemd and
// cgroupfs drivers), plain Docker, and an index from cgroup v2 ids (the inode number of
// the cgroup directory = bpf_get_current_cgroup_id()) to paths and containers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>

#include <netprobe/util/error.hpp>

namespace netprobe::k8s {

enum class Runtime : std::uint8_t { Unknown, Containerd, Crio, Docker };
// None: not a Kubernetes pod (plain Docker container).
enum class QosClass : std::uint8_t { None, Guaranteed, Burstable, BestEffort };

[[nodiscard]] std::string_view runtimeName(Runtime r);  // "containerd", "cri-o", "docker", "unknown"
[[nodiscard]] std::string_view qosName(QosClass q);     // "Guaranteed", "Burstable", "BestEffort", ""

struct ContainerRef {
    std::string container_id;  // 64 lowercase hex digits
    Runtime runtime = Runtime::Unknown;  // Unknown: cgroupfs driver (the path does not say)
    std::string pod_uid;       // 8-4-4-4-12 with dashes; empty when not a pod
    QosClass qos = QosClass::None;

    bool operator==(const ContainerRef&) const = default;
};

// The container (and pod) a cgroup path belongs to, for any prefix before the kubelet's
// tree (nested hierarchies, cgroup namespaces). Cgroups below a container's cgroup
// belong to that container. Pod-level and QoS-level cgroups without a container, and
// unrelated paths, give nullopt. Pure.
//   systemd:  .../kubepods.slice[/kubepods-<qos>.slice]/kubepods[-<qos>]-pod<uid_with_underscores>.slice/
//             {cri-containerd,crio,docker}-<id>.scope
//   cgroupfs: .../kubepods[/<qos>]/pod<uid>/<id>
//   docker:   .../docker/<id>, .../system.slice/docker-<id>.scope
[[nodiscard]] std::optional<ContainerRef> parseCgroupPath(std::string_view path);

// "1234abcd_..." -> "1234abcd-...", validated as a UUID (lowercase hex); nullopt otherwise.
[[nodiscard]] std::optional<std::string> normalizePodUid(std::string_view uid);

// cgroup v2 id -> path (relative to the mount, starting with '/') and container.
// refresh() walks the hierarchy and swaps the whole map, so removed cgroups disappear;
// lookups take a shared lock and never wait for a walk. Thread-safe.
class CgroupIndex {
public:
    struct Options {
        std::string mount;               // the cgroup v2 mount point
        std::size_t max_entries = 65536; // bound on the map (the walk stops indexing past it)
        bool containers_only = false;    // index only cgroups that parse as containers
        int max_depth = 32;
    };
    struct Entry {
        std::string path;
        std::optional<ContainerRef> container;
    };
    struct RefreshStats {
        std::size_t visited = 0;   // directories seen
        std::size_t indexed = 0;   // entries in the map after the walk
        std::size_t dropped = 0;   // not indexed because of max_entries
    };

    explicit CgroupIndex(Options options);

    // Walks the hierarchy (blocking; call it from a background thread or at startup).
    // An error only when the mount itself cannot be read; cgroups that vanish during
    // the walk are skipped.
    Result<RefreshStats> refresh();

    [[nodiscard]] std::optional<Entry> lookup(std::uint64_t cgroup_id) const;
    [[nodiscard]] std::size_t size() const;
    [[nodiscard]] const Options& options() const { return options_; }

private:
    Options options_;
    mutable std::shared_mutex mu_;
    std::unordered_map<std::uint64_t, Entry> map_;
};

}  // namespace netprobe::k8s
