// Real kernel (root): host-side veths and their peer namespaces read over rtnetlink
// (listPeerLinksResolved) compared with iproute2's view of the same links; and
// HostAttribution resolving a cgroup created after it started (a lookup miss walks the
// hierarchy again), also from a mount namespace without the cgroup mounts. Every netns, veth and cgroup is removed even when a check fails.
#include <gtest/gtest.h>

#include <netprobe/util/cgroup.hpp>
#include <netprobe/k8s/attribution.hpp>
#include <netprobe/k8s/netns.hpp>

#include <nlohmann/json.hpp>

#include <sched.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include <cstdio>
#include <filesystem>
#include <string>

using namespace netprobe;
using namespace netprobe::k8s;
namespace fs = std::filesystem;

namespace {

std::string sh(const std::string& cmd, int* status = nullptr) {
    std::string out;
    if (FILE* p = ::popen((cmd + " 2>/dev/null").c_str(), "r")) {
        char buf[4096];
        std::size_t n;
        while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
        int rc = ::pclose(p);
        if (status) *status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
    }
    return out;
}

// A namespace with a veth whose peer (eth0) holds 198.18.<x>.2/24 and fd6e:7072:<x>::2/64.
class VethNetns {
public:
    VethNetns() {
        const auto pid = std::to_string(::getpid() % 100000);
        ns_ = "npk" + pid;
        host_ = "npkh" + pid;
        const auto x = std::to_string(::getpid() % 250);
        v4_ = "198.18." + x + ".2";
        v6_ = "fd6e:7072:" + x + "::2";
        ok_ = run("ip netns add " + ns_) && run("ip link add " + host_ + " type veth peer name eth0 netns " + ns_) &&
              run("ip -n " + ns_ + " addr add " + v4_ + "/24 dev eth0") &&
              run("ip -n " + ns_ + " addr add " + v6_ + "/64 dev eth0 nodad") &&
              run("ip -n " + ns_ + " link set eth0 up") && run("ip link set " + host_ + " up");
    }
    ~VethNetns() {
        sh("ip link del " + host_);
        sh("ip netns del " + ns_);
    }
    bool ok() const { return ok_; }
    const std::string& ns() const { return ns_; }
    const std::string& host() const { return host_; }
    const std::string& v4() const { return v4_; }
    const std::string& v6() const { return v6_; }

private:
    static bool run(const std::string& cmd) {
        int st = -1;
        sh(cmd, &st);
        return st == 0;
    }
    std::string ns_, host_, v4_, v6_;
    bool ok_ = false;
};

}  // namespace

TEST(HostAttributionReal, VethPeerMatchesIproute2) {
    if (::geteuid() != 0) FAIL() << "needs root (make test runs as root)";
    VethNetns v;
    ASSERT_TRUE(v.ok()) << "could not create the test namespace/veth";
    auto links = listPeerLinksResolved();
    ASSERT_TRUE(links) << links.error().what();
    const analysis::InterfaceLink* mine = nullptr;
    for (const auto& l : *links)
        if (l.name == v.host()) mine = &l;
    ASSERT_NE(mine, nullptr) << v.host() << " not listed";

    // oracle: iproute2
    auto host = nlohmann::json::parse(sh("ip -j -d link show dev " + v.host()))[0];
    EXPECT_EQ(mine->ifindex, host["ifindex"].get<std::uint32_t>());
    EXPECT_EQ(mine->kind, "veth");
    EXPECT_EQ(mine->link_netnsid, host["link_netnsid"].get<int>());
    auto peer = nlohmann::json::parse(sh("ip -j -n " + v.ns() + " link show dev eth0"))[0];
    EXPECT_EQ(mine->peer_ifindex, peer["ifindex"].get<std::uint32_t>());
    EXPECT_EQ(mine->peer_name, "eth0");
    std::vector<std::string> want;
    const auto addr_doc = nlohmann::json::parse(sh("ip -j -n " + v.ns() + " addr show dev eth0"));
    for (const auto& a : addr_doc[0]["addr_info"])
        want.push_back(a["local"].get<std::string>());
    std::vector<std::string> got;
    for (const auto& a : mine->peer_addresses) got.push_back(util::formatAddr(a));
    std::sort(want.begin(), want.end());
    std::sort(got.begin(), got.end());
    EXPECT_EQ(got, want);
    EXPECT_NE(std::find(got.begin(), got.end(), v.v4()), got.end());
    EXPECT_NE(std::find(got.begin(), got.end(), v.v6()), got.end());

    // the namespace: its /run/netns file's inode, and iproute2's id for it
    struct stat st{};
    ASSERT_EQ(::stat(("/run/netns/" + v.ns()).c_str(), &st), 0);
    EXPECT_EQ(mine->peer_netns_inode, static_cast<std::uint32_t>(st.st_ino));
    EXPECT_EQ(mine->peer_netns_name, v.ns());
    bool id_seen = false;
    const auto ids = nlohmann::json::parse(sh("ip -j netns list-id"));
    for (const auto& e : ids) {
        if (e.value("name", "") != v.ns()) continue;
        EXPECT_EQ(e["nsid"].get<int>(), mine->link_netnsid);
        id_seen = true;
    }
    EXPECT_TRUE(id_seen) << "ip netns list-id does not show " << v.ns();

    // the same through HostAttribution (synchronous refresh, no thread)
    HostAttribution ha(netprobe::k8s::HostAttributionOptions{});  // no scheduler: refreshed only when asked
    ha.refreshLinks();
    bool listed = false;
    for (const auto& l : ha.interfaceLinks()) listed = listed || l.name == v.host();
    EXPECT_TRUE(listed);
    EXPECT_FALSE(ha.kubernetes());
}

TEST(HostAttributionReal, ResolvesACgroupCreatedLater) {
    if (::geteuid() != 0) FAIL() << "needs root (make test runs as root)";
    auto mount = netprobe::util::cgroup2Mount();
    if (!mount) FAIL() << "no cgroup v2 mount: " << mount.error().what();
    netprobe::util::Scheduler background;
    HostAttribution ha({.cgroup_mount = *mount,
                        .cgroups_interval = std::chrono::hours(1),  // only a miss brings the next walk
                        .min_cgroup_refresh = std::chrono::milliseconds(100),
                        .scheduler = &background});
    background.start();
    const std::string id(64, 'c');
    const std::string uid = "22222222-3333-4444-5555-666666666666";
    fs::path top = fs::path(*mount) / ("netprobe-ha-" + std::to_string(::getpid()));
    fs::path leaf = top / "kubepods" / "burstable" / ("pod" + uid) / id;
    struct Cleanup {
        fs::path top, leaf;
        ~Cleanup() {
            for (auto p = leaf; p.string().size() >= top.string().size(); p = p.parent_path()) ::rmdir(p.c_str());
        }
    } cleanup{top, leaf};
    std::error_code ec;
    fs::create_directories(leaf, ec);
    ASSERT_FALSE(ec) << ec.message();
    struct stat st{};
    ASSERT_EQ(::stat(leaf.c_str(), &st), 0);
    // Not in the first walk. The lookup never walks itself (it answers from the index at
    // once); the miss asks the background walk to run, and the cgroup shows up.
    const auto t0 = std::chrono::steady_clock::now();
    auto c = ha.container(st.st_ino);
    EXPECT_FALSE(c);
    for (int i = 0; i < 100 && !c; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        c = ha.container(st.st_ino);
    }
    ASSERT_TRUE(c) << "not resolved by the background walk within 2 s";
    EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(2));
    EXPECT_EQ(c->container_id, id);
    EXPECT_EQ(c->pod_uid, uid);
    EXPECT_EQ(c->cgroup_path, "/" + fs::relative(leaf, *mount).string());
    EXPECT_TRUE(c->pod.empty());  // no Kubernetes API
    EXPECT_FALSE(ha.container(0));
    EXPECT_FALSE(ha.container(~0ULL));
}

// As under `ip netns exec`: a mount namespace without the cgroup mounts. The hierarchy
// is then found through init's mounts (/proc/1/root), and a container still resolves.
TEST(HostAttributionReal, CgroupHierarchyThroughInitsMountsWhenOwnIsMissing) {
    if (::geteuid() != 0) FAIL() << "needs root (make test runs as root)";
    auto mount = netprobe::util::cgroup2Mount();
    if (!mount) FAIL() << "no cgroup v2 mount: " << mount.error().what();
    const std::string id(64, 'd');
    fs::path top = fs::path(*mount) / ("netprobe-ha2-" + std::to_string(::getpid()));
    fs::path leaf = top / "docker" / id;
    struct Cleanup {
        fs::path top, leaf;
        ~Cleanup() {
            for (auto p = leaf; p.string().size() >= top.string().size(); p = p.parent_path()) ::rmdir(p.c_str());
        }
    } cleanup{top, leaf};
    std::error_code ec;
    fs::create_directories(leaf, ec);
    ASSERT_FALSE(ec) << ec.message();
    struct stat st{};
    ASSERT_EQ(::stat(leaf.c_str(), &st), 0);

    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        // exit codes: 0 ok, 2 setup failed, 3 own mount still visible, 4 not resolved, 5 wrong id
        if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
            ::umount2(mount->c_str(), MNT_DETACH) != 0)
            ::_exit(2);
        if (netprobe::util::cgroup2Mount()) ::_exit(3);
        HostAttribution ha(netprobe::k8s::HostAttributionOptions{});  // walks once at construction (after the cgroup was made)
        auto c = ha.container(st.st_ino);
        if (!c) ::_exit(4);
        ::_exit(c->container_id == id && c->cgroup_path == "/" + fs::relative(leaf, *mount).string() ? 0 : 5);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(child, &status, 0), child);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0) << "2 setup, 3 mount still visible, 4 not resolved, 5 wrong container";
}
