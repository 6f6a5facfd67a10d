// Runs the real `promtool check metrics` on an exposition (tests need the
// prometheus package from scripts/setup-deps.sh; a missing promtool fails them).
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace netprobe::testing {

struct PromtoolResult {
    int exit_status = -1;  // promtool's exit code
    std::string output;    // what it printed (empty when the exposition is clean)
};

inline PromtoolResult promtoolCheckMetrics(const std::string& text) {
    PromtoolResult r;
    if (::access("/usr/bin/promtool", X_OK) != 0) {
        r.output = "promtool missing: run scripts/setup-deps.sh";
        return r;
    }
    char path[] = "/tmp/netprobe-promtool-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0) return r;
    bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    ::close(fd);
    if (written) {
        std::string cmd = std::string("/usr/bin/promtool check metrics < ") + path + " 2>&1";
        if (FILE* p = popen(cmd.c_str(), "r")) {
            char buf[512];
            while (fgets(buf, sizeof buf, p)) r.output += buf;
            int rc = pclose(p);
            r.exit_status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
        }
    }
    ::unlink(path);
    return r;
}

}  // namespace netprobe::testing
