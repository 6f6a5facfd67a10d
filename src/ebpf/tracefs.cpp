// netprobe::ebpf::tracepointId - see include/netprobe/ebpf/tracefs.hpp.
#include <netprobe/ebpf/tracefs.hpp>

#include <sched.h>
#include <sys/mount.h>

#include <cerrno>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <thread>

namespace netprobe::ebpf {
namespace {

// The id in root/events/category/name/id: > 0, or 0 when the file is missing (errno set)
// or does not hold a number.
int readId(const std::string& root, const std::string& category, const std::string& name) {
    std::ifstream in(root + "/events/" + category + "/" + name + "/id");
    if (!in) return 0;
    std::string text;
    std::getline(in, text);
    int id = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
    if (ec != std::errc{} || end != text.data() + text.size() || id <= 0) {
        errno = EINVAL;
        return 0;
    }
    return id;
}

bool validName(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!(c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
    return true;
}

}  // namespace

Result<TracepointId> tracepointId(const std::string& category, const std::string& name) {
    if (!validName(category) || !validName(name))
        return std::unexpected(makeError("tracepoint name '" + category + ":" + name + "' is not valid"));
    for (const char* root : {"/sys/kernel/tracing", "/sys/kernel/debug/tracing"}) {
        if (int id = readId(root, category, name)) return TracepointId{id, false};
        std::error_code ec;
        if (std::filesystem::is_directory(std::string(root) + "/events", ec))
            return std::unexpected(makeError("no tracepoint " + category + ":" + name + " in " + root + "/events"));
    }

    // tracefs is not mounted where it usually is: mount it in a mount namespace of this
    // thread's own (CLONE_FS first: a thread shares its filesystem context with the
    // process's other threads, and a mount namespace cannot be unshared while it does).
    int id = 0, err = 0;
    std::string what;
    std::thread([&] {
        if (::unshare(CLONE_FS | CLONE_NEWNS) != 0) {
            err = errno;
            what = "unshare a mount namespace";
            return;
        }
        // Nothing mounted here may propagate to the namespace it was copied from.
        if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
            err = errno;
            what = "make the thread's mounts private";
            return;
        }
        if (::mount("tracefs", "/sys/kernel/tracing", "tracefs", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
            err = errno;
            what = "mount tracefs";
            return;
        }
        id = readId("/sys/kernel/tracing", category, name);
        if (!id) {
            err = errno;
            what = "read tracepoint " + category + ":" + name + "'s id";
        }
        // The namespace, and its mount, end with the thread.
    }).join();
    if (!id) return std::unexpected(errnoError(err, what));
    return TracepointId{id, true};
}

}  // namespace netprobe::ebpf
