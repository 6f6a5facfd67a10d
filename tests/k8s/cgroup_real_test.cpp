// Real cgroups (root): a kubelet-style tree under the cgroup v2 mount, a process moved
// into a container cgroup, and CgroupIndex resolving that cgroup's id.
#include <gtest/gtest.h>

#include <netprobe/util/cgroup.hpp>
#include <netprobe/k8s/cgroup.hpp>
#include <netprobe/k8s/enrich.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

using namespace netprobe::k8s;
namespace fs = std::filesystem;

namespace {

const std::string kId = "4f6c1e0b2a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a39281706f5e4d3c2b1a090";
const std::string kUid = "0d1c2b3a-4e5f-6a7b-8c9d-0e1f2a3b4c5d";
const std::string kUidU = "0d1c2b3a_4e5f_6a7b_8c9d_0e1f2a3b4c5d";
const std::string kId2 = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const std::string kUid2 = "11111111-2222-3333-4444-555555555555";

std::string slurp(const fs::path& p) {
    std::ifstream in(p);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The v2 line of /proc/<pid>/cgroup ("0::<path>").
std::string v2CgroupOf(pid_t pid) {
    std::istringstream in(slurp("/proc/" + std::to_string(pid) + "/cgroup"));
    for (std::string line; std::getline(in, line);)
        if (line.rfind("0::", 0) == 0) return line.substr(3);
    return {};
}

// The cgroup id as the kernel exports it (file handle of a cgroup2 directory =
// the kernfs id that bpf_get_current_cgroup_id() returns).
std::uint64_t cgroupIdByHandle(const fs::path& dir) {
    alignas(file_handle) unsigned char storage[sizeof(file_handle) + 8] = {};
    auto* fh = reinterpret_cast<file_handle*>(storage);
    fh->handle_bytes = 8;
    int mount_id = 0;
    if (::name_to_handle_at(AT_FDCWD, dir.c_str(), fh, &mount_id, 0) != 0) return 0;
    std::uint64_t id = 0;
    std::memcpy(&id, storage + sizeof(file_handle), sizeof id);
    return id;
}

// Everything the test creates, removed in the destructor even when an assertion failed:
// the child is killed and reaped, then the directories are removed bottom-up.
class CgroupTree {
public:
    explicit CgroupTree(fs::path base) : base_(std::move(base)) {}
    ~CgroupTree() {
        if (child_ > 0) {
            ::kill(child_, SIGKILL);
            int st = 0;
            ::waitpid(child_, &st, 0);
        }
        std::vector<fs::path> dirs;
        std::error_code ec;
        if (fs::exists(base_, ec)) {
            for (auto it = fs::recursive_directory_iterator(base_, ec); !ec && it != fs::recursive_directory_iterator();
                 it.increment(ec))
                if (it->is_directory(ec)) dirs.push_back(it->path());
            dirs.push_back(base_);
        }
        std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
            return a.string().size() > b.string().size();  // deepest first
        });
        for (const auto& d : dirs) {
            for (int i = 0; i < 50 && ::rmdir(d.c_str()) != 0 && errno == EBUSY; ++i)
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    bool mkdirs(const fs::path& rel) {
        std::error_code ec;
        fs::create_directories(base_ / rel, ec);
        return !ec;
    }
    // A child that sleeps until killed.
    pid_t spawn() {
        child_ = ::fork();
        if (child_ == 0) {
            for (;;) ::pause();
        }
        return child_;
    }
    const fs::path& base() const { return base_; }

private:
    fs::path base_;
    pid_t child_ = -1;
};

}  // namespace

TEST(CgroupReal, IndexResolvesAContainerCgroupId) {
    if (::geteuid() != 0) FAIL() << "needs root (make test runs as root)";
    auto mount = netprobe::util::cgroup2Mount();
    if (!mount) FAIL() << "no cgroup v2 mount: " << mount.error().what();

    std::string top = "netprobe-test-" + std::to_string(::getpid());
    std::string sys_rel = "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + kUidU +
                          ".slice/cri-containerd-" + kId + ".scope";
    std::string fs_rel = "kubepods/besteffort/pod" + kUid2 + "/" + kId2;  // cgroupfs driver layout
    CgroupTree tree(fs::path(*mount) / top);
    ASSERT_TRUE(tree.mkdirs(sys_rel)) << "mkdir under " << *mount;
    ASSERT_TRUE(tree.mkdirs(fs_rel));
    fs::path leaf = tree.base() / sys_rel;

    pid_t pid = tree.spawn();
    ASSERT_GT(pid, 0);
    {
        std::ofstream procs(leaf / "cgroup.procs");
        procs << pid << "\n";
        procs.flush();
        ASSERT_TRUE(procs.good()) << "write cgroup.procs";
    }
    // The kernel agrees on where the process is.
    std::string expected_rel = "/" + top + "/" + sys_rel;
    EXPECT_EQ(v2CgroupOf(pid), expected_rel);

    struct stat st{};
    ASSERT_EQ(::stat(leaf.c_str(), &st), 0);
    std::uint64_t id = st.st_ino;
    EXPECT_EQ(cgroupIdByHandle(leaf), id) << "inode and cgroup id (file handle) differ";

    CgroupIndex index({.mount = *mount});
    auto stats = index.refresh();
    ASSERT_TRUE(stats) << stats.error().what();
    EXPECT_GT(stats->indexed, 5u);
    EXPECT_EQ(stats->dropped, 0u);

    auto e = index.lookup(id);
    ASSERT_TRUE(e) << "cgroup id " << id << " not indexed";
    EXPECT_EQ(e->path, v2CgroupOf(pid));
    ASSERT_TRUE(e->container);
    EXPECT_EQ(e->container->container_id, kId);
    EXPECT_EQ(e->container->pod_uid, kUid);
    EXPECT_EQ(e->container->runtime, Runtime::Containerd);
    EXPECT_EQ(e->container->qos, QosClass::Burstable);

    // With the pod known from the API (by UID), the id resolves to namespace/pod/workload.
    PodStore pods;
    PodInfo pod;
    pod.ns = "shop";
    pod.name = "web-5f7c9d-abcde";
    pod.uid = kUid;
    pod.workload = {"Deployment", "web"};
    pod.container_ids = {kId};
    pods.upsert(pod);
    auto attr = attributeCgroupId(id, index, &pods);
    ASSERT_TRUE(attr);
    EXPECT_EQ(attr->container_id, kId);
    EXPECT_EQ(attr->pod, "web-5f7c9d-abcde");
    EXPECT_EQ(attr->workload, "web");
    EXPECT_FALSE(attributeCgroupId(~0ULL, index, &pods));

    // The cgroupfs-driver container and the pod-level cgroup (not a container).
    struct stat st2{};
    ASSERT_EQ(::stat((tree.base() / fs_rel).c_str(), &st2), 0);
    auto e2 = index.lookup(st2.st_ino);
    ASSERT_TRUE(e2 && e2->container);
    EXPECT_EQ(e2->container->container_id, kId2);
    EXPECT_EQ(e2->container->pod_uid, kUid2);
    EXPECT_EQ(e2->container->qos, QosClass::BestEffort);
    struct stat st3{};
    ASSERT_EQ(::stat(leaf.parent_path().c_str(), &st3), 0);
    auto e3 = index.lookup(st3.st_ino);
    ASSERT_TRUE(e3);
    EXPECT_FALSE(e3->container);

    // containers_only keeps just the containers; max_entries bounds the map.
    CgroupIndex only({.mount = *mount, .containers_only = true});
    ASSERT_TRUE(only.refresh());
    EXPECT_TRUE(only.lookup(id));
    EXPECT_FALSE(only.lookup(st3.st_ino));
    CgroupIndex small({.mount = *mount, .max_entries = 3});
    auto s = small.refresh();
    ASSERT_TRUE(s);
    EXPECT_EQ(small.size(), 3u);
    EXPECT_GT(s->dropped, 0u);

    // Removed cgroups disappear on the next refresh.
    ASSERT_EQ(::rmdir((tree.base() / fs_rel).c_str()), 0);
    ASSERT_TRUE(index.refresh());
    EXPECT_FALSE(index.lookup(st2.st_ino));
    EXPECT_TRUE(index.lookup(id));
}

TEST(CgroupReal, MountOfThisMachine) {
    auto mount = netprobe::util::cgroup2Mount();
    if (!mount) FAIL() << "no cgroup v2 mount: " << mount.error().what();
    struct stat st{};
    EXPECT_EQ(::stat(mount->c_str(), &st), 0);
    EXPECT_TRUE(fs::exists(fs::path(*mount) / "cgroup.procs"));
}
