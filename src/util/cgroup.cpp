#include "netprobe/util/cgroup.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <memory>
#include <sstream>
#include <vector>

namespace netprobe::util {

namespace {

// /proc/mounts escapes ' ', '\t', '\n' and '\\' as \ooo.
std::string unescapeMountField(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    auto oct = [](char c) { return c >= '0' && c <= '7'; };
    for (std::size_t i = 0; i < s.size(); ++i) {
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

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

struct DirCloser {
    void operator()(DIR* d) const { ::closedir(d); }
};

}  // namespace

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
    auto m = findCgroup2Mount(readFile("/proc/mounts"));
    if (!m) return std::unexpected(makeError("no cgroup2 mount in /proc/mounts"));
    return *m;
}

Result<CgroupHierarchy> findCgroupHierarchy() {
    auto own = cgroup2Mount();
    if (own) return CgroupHierarchy{*own, {}};
    pid_t pid = ::getppid();
    for (int hop = 0; hop < 32 && pid > 0; ++hop) {
        const std::string proc = "/proc/" + std::to_string(pid);
        if (auto m = findCgroup2Mount(readFile(proc + "/mounts"))) {
            UniqueFd fd(::open((proc + "/root" + *m).c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
            if (fd) {
                spdlog::info("cgroup v2 hierarchy: {} of process {} (none in this mount namespace)", *m, pid);
                // "/.": not itself a symlink (O_NOFOLLOW opens of it work)
                std::string path = "/proc/self/fd/" + std::to_string(fd.get()) + "/.";
                return CgroupHierarchy{std::move(path), std::move(fd)};
            }
        }
        if (pid == 1) break;
        // the next ancestor: field 4 of /proc/PID/stat (after the parenthesised comm)
        const std::string stat = readFile(proc + "/stat");
        auto close = stat.rfind(')');
        if (close == std::string::npos || close + 2 >= stat.size()) break;
        std::istringstream rest(stat.substr(close + 2));
        char state = 0;
        pid_t ppid = 0;
        rest >> state >> ppid;
        if (ppid == pid) break;
        pid = ppid;
    }
    return std::unexpected(own.error());
}

Result<CgroupWalkStats> walkCgroupTree(const std::string& root, int max_depth,
                                       const std::function<void(std::string_view, std::uint64_t)>& visit) {
    CgroupWalkStats stats;
    struct Pending {
        std::string rel;  // "" for the root
        int depth;
    };
    std::vector<Pending> stack{{"", 0}};
    while (!stack.empty()) {
        Pending cur = std::move(stack.back());
        stack.pop_back();
        const std::string abs = root + cur.rel;
        UniqueFd fd(::open(abs.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW));
        struct stat st {};
        if (!fd || ::fstat(fd.get(), &st) != 0) {
            if (cur.rel.empty()) return std::unexpected(errnoError(errno, "open cgroup hierarchy " + root));
            ++stats.vanished;  // removed meanwhile, or unreadable
            continue;
        }
        ++stats.visited;
        visit(cur.rel.empty() ? std::string_view("/") : std::string_view(cur.rel), st.st_ino);
        if (cur.depth >= max_depth) continue;
        std::unique_ptr<DIR, DirCloser> dir(::fdopendir(fd.get()));
        if (!dir) {
            ++stats.vanished;
            continue;
        }
        (void)fd.release();  // owned by dir now
        while (dirent* de = ::readdir(dir.get())) {
            const std::string_view name = de->d_name;
            if (name == "." || name == ".." || (de->d_type != DT_DIR && de->d_type != DT_UNKNOWN)) continue;
            if (de->d_type == DT_UNKNOWN) {
                struct stat cst {};
                if (::fstatat(::dirfd(dir.get()), de->d_name, &cst, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(cst.st_mode))
                    continue;
            }
            stack.push_back({cur.rel + "/" + std::string(name), cur.depth + 1});
        }
    }
    return stats;
}

}  // namespace netprobe::util
