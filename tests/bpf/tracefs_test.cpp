// tracepointId: the id tracefs gives, read with tracefs mounted in a private mount
// namespace when it is not mounted, and nothing left mounted. Oracle: util-linux's
// unshare(1) + mount(8) + cat of the event's id file. Needs root.
#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include <netprobe/ebpf/tracefs.hpp>

#include "support/command_output.hpp"

namespace {

using netprobe::ebpf::tracepointId;

std::string run(const std::string& cmd) {
    std::string out = netprobe::test::commandOutput(cmd);
    while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
    return out;
}

int tracefsMounts() {
    std::ifstream in("/proc/self/mountinfo");
    std::string line;
    int n = 0;
    while (std::getline(in, line))
        if (line.find(" - tracefs ") != std::string::npos) ++n;
    return n;
}

TEST(Tracefs, SyscallTracepointIdMatchesTracefsAndNothingStaysMounted) {
    const int before = tracefsMounts();
    // The oracle: tracefs mounted by mount(8) in a mount namespace of unshare(1)'s own.
    const std::string want = run(
        "unshare --mount --propagation private sh -c 'mountpoint -q /sys/kernel/tracing || "
        "mount -t tracefs tracefs /sys/kernel/tracing; cat /sys/kernel/tracing/events/syscalls/sys_enter_close/id'");
    ASSERT_FALSE(want.empty()) << "unshare/mount of tracefs failed: is this root?";
    auto id = tracepointId("syscalls", "sys_enter_close");
    ASSERT_TRUE(id) << id.error().message;
    EXPECT_EQ(std::to_string(id->id), want);
    EXPECT_EQ(id->private_mount, before == 0) << "a private mount is only for a machine without tracefs mounted";
    EXPECT_EQ(tracefsMounts(), before) << "tracefs left mounted";
    auto other = tracepointId("syscalls", "sys_exit_write");
    ASSERT_TRUE(other) << other.error().message;
    EXPECT_NE(other->id, id->id);
}

TEST(Tracefs, MissingAndMalformedNamesAreErrors) {
    const int before = tracefsMounts();
    auto missing = tracepointId("syscalls", "sys_enter_no_such_call");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().message.find("sys_enter_no_such_call"), std::string::npos) << missing.error().message;
    for (const char* bad : {"", "../../etc", "sys enter", "a/b"}) {
        auto r = tracepointId("syscalls", bad);
        ASSERT_FALSE(r) << bad;
        EXPECT_NE(r.error().message.find("not valid"), std::string::npos) << r.error().message;
    }
    EXPECT_EQ(tracefsMounts(), before) << "tracefs left mounted";
}

}  // namespace
