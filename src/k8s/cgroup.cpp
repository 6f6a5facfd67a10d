#include <netprobe/k8s/cgroup.hpp>

#include <netprobe/util/cgroup.hpp>

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <vector>

namespace netprobe::k8s {

std::string_view runtimeName(Runtime r) {
    switch (r) {
        case Runtime::Containerd: return "containerd";
        case Runtime::Crio: return "cri-o";
        case Runtime::Docker: return "docker";
        case Runtime::Unknown: break;
    }
    return "unknown";
}

std::string_view qosName(QosClass q) {
    switch (q) {
        case QosClass::Guaranteed: return "Guaranteed";
        case QosClass::Burstable: return "Burstable";
        case QosClass::BestEffort: return "BestEffort";
        case QosClass::None: break;
    }
    return "";
}

namespace {

bool isLowerHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

bool isContainerId(std::string_view s) {
    if (s.size() != 64) return false;
    for (char c : s)
        if (!isLowerHex(c)) return false;
    return true;
}

bool consumePrefix(std::string_view& s, std::string_view p) {
    if (!s.starts_with(p)) return false;
    s.remove_prefix(p.size());
    return true;
}
bool consumeSuffix(std::string_view& s, std::string_view p) {
    if (!s.ends_with(p)) return false;
    s.remove_suffix(p.size());
    return true;
}

// "<runtime>-<id>.scope" (systemd driver, and Docker's own systemd scopes).
std::optional<ContainerRef> parseScope(std::string_view c) {
    if (!consumeSuffix(c, ".scope")) return std::nullopt;
    ContainerRef ref;
    if (consumePrefix(c, "cri-containerd-")) ref.runtime = Runtime::Containerd;
    else if (consumePrefix(c, "crio-")) ref.runtime = Runtime::Crio;
    else if (consumePrefix(c, "docker-")) ref.runtime = Runtime::Docker;
    else return std::nullopt;
    if (!isContainerId(c)) return std::nullopt;  // also rejects crio-conmon-<id>.scope
    ref.container_id = std::string(c);
    return ref;
}

struct PodLevel {
    std::string uid;
    QosClass qos = QosClass::Guaranteed;
};

std::optional<QosClass> qosFromWord(std::string_view w) {
    if (w == "burstable") return QosClass::Burstable;
    if (w == "besteffort") return QosClass::BestEffort;
    return std::nullopt;
}

// The pod component at index i and the QoS/kubepods components above it.
std::optional<PodLevel> parsePodLevel(const std::vector<std::string_view>& comp, std::size_t i) {
    std::string_view c = comp[i];
    PodLevel pod;
    if (consumePrefix(c, "kubepods-") && consumeSuffix(c, ".slice")) {
        // systemd: kubepods-pod<uid>.slice or kubepods-<qos>-pod<uid>.slice
        std::string_view uid = c;
        std::size_t above = 1;  // components between the pod slice and kubepods.slice
        if (!consumePrefix(uid, "pod")) {
            auto dash = c.find('-');
            if (dash == std::string_view::npos) return std::nullopt;
            auto qos = qosFromWord(c.substr(0, dash));
            if (!qos) return std::nullopt;
            uid = c.substr(dash + 1);
            if (!consumePrefix(uid, "pod")) return std::nullopt;
            pod.qos = *qos;
            if (i < 2 || comp[i - 1] != "kubepods-" + std::string(c.substr(0, dash)) + ".slice") return std::nullopt;
            above = 2;
        }
        if (i < above || comp[i - above] != "kubepods.slice") return std::nullopt;
        auto norm = normalizePodUid(uid);
        if (!norm) return std::nullopt;
        pod.uid = std::move(*norm);
        return pod;
    }
    c = comp[i];
    if (consumePrefix(c, "pod")) {
        // cgroupfs: kubepods/pod<uid> or kubepods/<qos>/pod<uid>
        if (c.find('_') != std::string_view::npos) return std::nullopt;
        auto norm = normalizePodUid(c);
        if (!norm || i < 1) return std::nullopt;
        if (comp[i - 1] == "kubepods") {
            pod.qos = QosClass::Guaranteed;
        } else if (auto qos = qosFromWord(comp[i - 1]); qos && i >= 2 && comp[i - 2] == "kubepods") {
            pod.qos = *qos;
        } else {
            return std::nullopt;
        }
        pod.uid = std::move(*norm);
        return pod;
    }
    return std::nullopt;
}

std::optional<ContainerRef> containerAt(const std::vector<std::string_view>& comp, std::size_t i) {
    if (auto ref = parseScope(comp[i])) {
        if (i >= 1) {
            if (auto pod = parsePodLevel(comp, i - 1)) {
                ref->pod_uid = std::move(pod->uid);
                ref->qos = pod->qos;
            }
        }
        return ref;
    }
    if (isContainerId(comp[i]) && i >= 1) {
        if (comp[i - 1] == "docker") return ContainerRef{std::string(comp[i]), Runtime::Docker, {}, QosClass::None};
        if (auto pod = parsePodLevel(comp, i - 1)) {
            return ContainerRef{std::string(comp[i]), Runtime::Unknown, std::move(pod->uid), pod->qos};
        }
    }
    return std::nullopt;
}

}  // namespace

std::optional<std::string> normalizePodUid(std::string_view uid) {
    if (uid.size() != 36) return std::nullopt;
    std::string out(uid);
    for (std::size_t i = 0; i < out.size(); ++i) {
        char& ch = out[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (ch != '-' && ch != '_') return std::nullopt;
            ch = '-';
            continue;
        }
        if (ch >= 'A' && ch <= 'F') ch = static_cast<char>(ch - 'A' + 'a');
        if (!isLowerHex(ch)) return std::nullopt;
    }
    return out;
}

std::optional<ContainerRef> parseCgroupPath(std::string_view path) {
    std::vector<std::string_view> comp;
    std::size_t i = 0;
    while (i < path.size()) {
        auto j = path.find('/', i);
        if (j == std::string_view::npos) j = path.size();
        if (j > i) comp.push_back(path.substr(i, j - i));
        i = j + 1;
    }
    // The deepest container component wins: cgroups below a container belong to it.
    for (std::size_t k = comp.size(); k-- > 0;) {
        if (auto ref = containerAt(comp, k)) return ref;
    }
    return std::nullopt;
}

// ---- CgroupIndex ----

CgroupIndex::CgroupIndex(Options options) : options_(std::move(options)) {}

Result<CgroupIndex::RefreshStats> CgroupIndex::refresh() {
    RefreshStats stats;
    std::unordered_map<std::uint64_t, Entry> fresh;
    auto walked = util::walkCgroupTree(options_.mount, options_.max_depth, [&](std::string_view rel, std::uint64_t id) {
        const bool root = rel == "/";
        auto ref = root ? std::nullopt : parseCgroupPath(rel);
        if (options_.containers_only && !ref) return;
        if (fresh.size() >= options_.max_entries) {
            ++stats.dropped;
            return;
        }
        fresh.insert_or_assign(id, Entry{std::string(rel), std::move(ref)});
    });
    if (!walked) return std::unexpected(walked.error());
    stats.visited = walked->visited;
    stats.indexed = fresh.size();
    std::unique_lock lock(mu_);
    map_.swap(fresh);
    lock.unlock();  // the old map is freed outside the lock
    return stats;
}

std::optional<CgroupIndex::Entry> CgroupIndex::lookup(std::uint64_t cgroup_id) const {
    std::shared_lock lock(mu_);
    auto it = map_.find(cgroup_id);
    if (it == map_.end()) return std::nullopt;
    return it->second;
}

std::size_t CgroupIndex::size() const {
    std::shared_lock lock(mu_);
    return map_.size();
}

}  // namespace netprobe::k8s
