#include <netprobe/k8s/cgroup.hpp>

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

// /proc/mounts escapes ' ', '\t', '\n' and '\\' as \ooo.
std::string unescapeMountField(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size(); ++i) {
        auto oct = [](char c) { return c >= '0' && c <= '7'; };
        if (s[i] == '\\' && i + 3 < s.size() && oct(s[i + 1]) && oct(s[i + 2]) && oct(s[i + 3])) {
            out.push_back(static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0')));
            i += 3;
            continue;
        }
        out.push_back(s[i]);
    }
    return out;
}

std::vector<std::string_view> splitFields(std::string_view line) {
    std::vector<std::string_view> out;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        std::size_t j = i;
        while (j < line.size() && line[j] != ' ' && line[j] != '\t') ++j;
        if (j > i) out.push_back(line.substr(i, j - i));
        i = j;
    }
    return out;
}

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

std::optional<std::string> findCgroup2Mount(std::string_view text) {
    while (!text.empty()) {
        auto nl = text.find('\n');
        std::string_view line = text.substr(0, nl);
        text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
        auto f = splitFields(line);
        if (f.size() >= 3 && f[2] == "cgroup2") return unescapeMountField(f[1]);
    }
    return std::nullopt;
}

Result<std::string> cgroup2Mount() {
    std::ifstream in("/proc/mounts");
    if (!in) return std::unexpected(errnoError(errno, "read /proc/mounts"));
    std::stringstream ss;
    ss << in.rdbuf();
    auto m = findCgroup2Mount(ss.str());
    if (!m) return std::unexpected(makeError("no cgroup2 mount in /proc/mounts"));
    return *m;
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

namespace {
struct DirCloser {
    void operator()(DIR* d) const { closedir(d); }
};
using DirPtr = std::unique_ptr<DIR, DirCloser>;
}  // namespace

Result<CgroupIndex::RefreshStats> CgroupIndex::refresh() {
    RefreshStats stats;
    std::unordered_map<std::uint64_t, Entry> fresh;

    struct Pending {
        std::string rel;  // "/" for the root
        int depth;
    };
    std::vector<Pending> stack;
    {
        struct stat st{};
        if (::stat(options_.mount.c_str(), &st) != 0)
            return std::unexpected(errnoError(errno, "stat cgroup mount " + options_.mount));
        if (!S_ISDIR(st.st_mode)) return std::unexpected(makeError("cgroup mount " + options_.mount + " is not a directory"));
        ++stats.visited;
        if (!options_.containers_only) fresh.emplace(st.st_ino, Entry{"/", std::nullopt});
    }
    stack.push_back({"/", 0});
    bool root = true;
    while (!stack.empty()) {
        Pending cur = std::move(stack.back());
        stack.pop_back();
        std::string abs = options_.mount + (cur.rel == "/" ? std::string() : cur.rel);
        int fd = ::open(abs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
            if (root) return std::unexpected(errnoError(errno, "open cgroup mount " + abs));
            continue;  // vanished or unreadable: skip this subtree
        }
        root = false;
        DirPtr dir(::fdopendir(fd));
        if (!dir) {
            ::close(fd);
            continue;
        }
        while (dirent* de = ::readdir(dir.get())) {
            std::string_view name = de->d_name;
            if (name == "." || name == "..") continue;
            if (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN) continue;
            struct stat st{};
            if (::fstatat(::dirfd(dir.get()), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
            if (!S_ISDIR(st.st_mode)) continue;
            ++stats.visited;
            std::string rel = (cur.rel == "/" ? std::string() : cur.rel) + "/" + std::string(name);
            auto ref = parseCgroupPath(rel);
            if (!options_.containers_only || ref) {
                if (fresh.size() < options_.max_entries) {
                    fresh.insert_or_assign(static_cast<std::uint64_t>(st.st_ino), Entry{rel, std::move(ref)});
                } else {
                    ++stats.dropped;
                }
            }
            if (cur.depth + 1 < options_.max_depth) stack.push_back({std::move(rel), cur.depth + 1});
        }
    }
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
