// The standard output of a shell command, for tests that compare with a tool's own
// reading (objdump, nm, unshare + mount, ...). Empty when the command cannot be started.
#pragma once

#include <cstdio>
#include <string>

namespace netprobe::test {

inline std::string commandOutput(const std::string& cmd) {
    std::string out;
    if (FILE* p = ::popen(cmd.c_str(), "r")) {
        char buf[4096];
        for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) out.append(buf, n);
        ::pclose(p);
    }
    return out;
}

}  // namespace netprobe::test
