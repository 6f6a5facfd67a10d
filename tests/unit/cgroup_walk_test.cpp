// util::walkCgroupTree over a plain directory tree (the walker only needs directories):
// every directory once, depth-limited, vanished subtrees skipped, and no fd left open
// (c2ebe38's walker leaked one per directory past depth 64).
#include <gtest/gtest.h>

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <netprobe/util/cgroup.hpp>

namespace fs = std::filesystem;

namespace {

std::size_t openFds() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator("/proc/self/fd")) ++n;
    return n;
}

struct TempTree {
    fs::path root;
    TempTree() {
        char tmpl[] = "/tmp/np-walk-XXXXXX";
        root = ::mkdtemp(tmpl);
    }
    ~TempTree() {
        std::error_code ec;
        fs::remove_all(root, ec);
    }
};

}  // namespace

TEST(CgroupWalk, VisitsEveryDirectoryOnceWithItsInode) {
    TempTree t;
    fs::create_directories(t.root / "a" / "b");
    fs::create_directories(t.root / "c");
    { std::ofstream(t.root / "a" / "file") << "x"; }  // files are not cgroups
    std::map<std::string, std::uint64_t> seen;
    auto r = netprobe::util::walkCgroupTree(t.root.string(), 64, [&](std::string_view rel, std::uint64_t id) {
        EXPECT_TRUE(seen.emplace(std::string(rel), id).second) << rel;
    });
    ASSERT_TRUE(r) << r.error().what();
    EXPECT_EQ(r->visited, 4u);
    ASSERT_EQ(seen.size(), 4u);
    struct stat st {};
    ASSERT_EQ(::stat((t.root / "a" / "b").c_str(), &st), 0);
    EXPECT_EQ(seen.at("/a/b"), st.st_ino);
    ASSERT_EQ(::stat(t.root.c_str(), &st), 0);
    EXPECT_EQ(seen.at("/"), st.st_ino);
    EXPECT_TRUE(seen.contains("/c"));
}

TEST(CgroupWalk, DeepTreesStopAtTheDepthLimitWithoutLeakingFds) {
    TempTree t;
    fs::path p = t.root;
    for (int i = 0; i < 80; ++i) p /= "d";
    fs::create_directories(p);
    const auto before = openFds();
    std::size_t deepest = 0;
    auto r = netprobe::util::walkCgroupTree(t.root.string(), 64, [&](std::string_view rel, std::uint64_t) {
        deepest = std::max<std::size_t>(deepest, static_cast<std::size_t>(std::count(rel.begin(), rel.end(), '/')));
    });
    ASSERT_TRUE(r) << r.error().what();
    EXPECT_EQ(deepest, 64u);
    EXPECT_EQ(r->visited, 65u);  // the root and 64 levels
    EXPECT_EQ(openFds(), before);
}

TEST(CgroupWalk, MissingRootIsAnErrorAndMountTextIsParsed) {
    auto r = netprobe::util::walkCgroupTree("/nonexistent/np-walk", 8, [](std::string_view, std::uint64_t) {});
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().what().find("/nonexistent/np-walk"), std::string::npos);
    EXPECT_EQ(netprobe::util::findCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n"), "/sys/fs/cgroup");
    EXPECT_FALSE(netprobe::util::findCgroup2Mount("proc /proc proc rw 0 0\n"));
}
