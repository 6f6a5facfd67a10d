// The kubelet's and Docker's cgroup layouts -> container id, runtime, pod UID, QoS.
#include <gtest/gtest.h>

#include <netprobe/util/cgroup.hpp>
#include <netprobe/k8s/cgroup.hpp>

#include <string>

using namespace netprobe::k8s;

namespace {

const std::string kId = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
const std::string kUid = "1234abcd-5678-90ef-1234-567890abcdef";
const std::string kUidU = "1234abcd_5678_90ef_1234_567890abcdef";  // systemd driver spelling

struct Case {
    const char* name;
    std::string path;
    std::optional<ContainerRef> want;
};

ContainerRef ref(Runtime r, std::string uid, QosClass q) { return ContainerRef{kId, r, std::move(uid), q}; }

const std::string kSys = "/kubepods.slice/";

std::vector<Case> cases() {
    return {
        // systemd driver
        {"systemd_burstable_containerd",
         kSys + "kubepods-burstable.slice/kubepods-burstable-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
         ref(Runtime::Containerd, kUid, QosClass::Burstable)},
        {"systemd_besteffort_crio",
         kSys + "kubepods-besteffort.slice/kubepods-besteffort-pod" + kUidU + ".slice/crio-" + kId + ".scope",
         ref(Runtime::Crio, kUid, QosClass::BestEffort)},
        {"systemd_burstable_docker",
         kSys + "kubepods-burstable.slice/kubepods-burstable-pod" + kUidU + ".slice/docker-" + kId + ".scope",
         ref(Runtime::Docker, kUid, QosClass::Burstable)},
        {"systemd_guaranteed_no_qos_level",
         kSys + "kubepods-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
         ref(Runtime::Containerd, kUid, QosClass::Guaranteed)},
        {"systemd_nested_below_a_prefix",
         "/netprobe-test-42" + kSys + "kubepods-burstable.slice/kubepods-burstable-pod" + kUidU +
             ".slice/cri-containerd-" + kId + ".scope",
         ref(Runtime::Containerd, kUid, QosClass::Burstable)},
        {"systemd_child_cgroup_of_a_container",
         kSys + "kubepods-pod" + kUidU + ".slice/crio-" + kId + ".scope/init.scope",
         ref(Runtime::Crio, kUid, QosClass::Guaranteed)},
        {"systemd_relative_path_without_leading_slash",
         "kubepods.slice/kubepods-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
         ref(Runtime::Containerd, kUid, QosClass::Guaranteed)},
        // cgroupfs driver
        {"cgroupfs_burstable", "/kubepods/burstable/pod" + kUid + "/" + kId,
         ref(Runtime::Unknown, kUid, QosClass::Burstable)},
        {"cgroupfs_besteffort", "/kubepods/besteffort/pod" + kUid + "/" + kId,
         ref(Runtime::Unknown, kUid, QosClass::BestEffort)},
        {"cgroupfs_guaranteed", "/kubepods/pod" + kUid + "/" + kId, ref(Runtime::Unknown, kUid, QosClass::Guaranteed)},
        // plain docker
        {"docker_cgroupfs", "/docker/" + kId, ref(Runtime::Docker, "", QosClass::None)},
        {"docker_systemd", "/system.slice/docker-" + kId + ".scope", ref(Runtime::Docker, "", QosClass::None)},
        // not containers
        {"root", "/", std::nullopt},
        {"empty", "", std::nullopt},
        {"user_session", "/user.slice/user-1000.slice/session-2.scope", std::nullopt},
        {"system_service", "/system.slice/containerd.service", std::nullopt},
        {"kubepods_only", "/kubepods.slice", std::nullopt},
        {"qos_level_only", kSys + "kubepods-burstable.slice", std::nullopt},
        {"pod_level_only", kSys + "kubepods-burstable.slice/kubepods-burstable-pod" + kUidU + ".slice", std::nullopt},
        {"cgroupfs_pod_level_only", "/kubepods/burstable/pod" + kUid, std::nullopt},
        {"crio_conmon", kSys + "kubepods-pod" + kUidU + ".slice/crio-conmon-" + kId + ".scope", std::nullopt},
        {"short_id", "/docker/0123456789ab", std::nullopt},
        {"uppercase_id", "/docker/" + std::string(64, 'A'), std::nullopt},
        {"id_not_below_a_pod", "/kubepods/burstable/" + kId, std::nullopt},
        {"pod_dir_outside_kubepods", "/other/pod" + kUid + "/" + kId, std::nullopt},
        {"bad_uid", "/kubepods/pod1234/" + kId, std::nullopt},
        {"unknown_qos", kSys + "kubepods-gold.slice/kubepods-gold-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
         // not a pod layout, but still a containerd container
         ContainerRef{kId, Runtime::Containerd, "", QosClass::None}},
        {"mismatched_qos_parent",
         kSys + "kubepods-besteffort.slice/kubepods-burstable-pod" + kUidU + ".slice/cri-containerd-" + kId + ".scope",
         ContainerRef{kId, Runtime::Containerd, "", QosClass::None}},
        {"scope_without_id", "/system.slice/docker-.scope", std::nullopt},
        {"id_with_suffix", "/docker/" + kId + "x", std::nullopt},
    };
}

}  // namespace

TEST(CgroupPath, Table) {
    for (const auto& c : cases()) {
        SCOPED_TRACE(c.name);
        auto got = parseCgroupPath(c.path);
        ASSERT_EQ(got.has_value(), c.want.has_value()) << c.path;
        if (got) {
            EXPECT_EQ(got->container_id, c.want->container_id);
            EXPECT_EQ(runtimeName(got->runtime), runtimeName(c.want->runtime));
            EXPECT_EQ(got->pod_uid, c.want->pod_uid);
            EXPECT_EQ(qosName(got->qos), qosName(c.want->qos));
        }
    }
}

TEST(CgroupPath, PodUidNormalisation) {
    EXPECT_EQ(normalizePodUid(kUidU), kUid);
    EXPECT_EQ(normalizePodUid(kUid), kUid);
    EXPECT_EQ(normalizePodUid("1234ABCD-5678-90EF-1234-567890ABCDEF"), kUid);
    EXPECT_FALSE(normalizePodUid("1234abcd-5678-90ef-1234-567890abcde"));
    EXPECT_FALSE(normalizePodUid("1234abcd-5678-90ef-1234x567890abcdef"));
    EXPECT_FALSE(normalizePodUid("1234abcg-5678-90ef-1234-567890abcdef"));
}

TEST(CgroupMount, FindsTheV2MountInHybridMode) {
    const char* text =
        "sysfs /sys sysfs rw,nosuid 0 0\n"
        "tmpfs /sys/fs/cgroup tmpfs rw,relatime,mode=755 0 0\n"
        "cgroup /sys/fs/cgroup/cpu cgroup rw,relatime,cpu 0 0\n"
        "cgroup /sys/fs/cgroup/systemd cgroup rw,relatime,name=systemd 0 0\n"
        "cgroup2 /sys/fs/cgroup/unified cgroup2 rw,relatime 0 0\n";
    EXPECT_EQ(netprobe::util::findCgroup2Mount(text), "/sys/fs/cgroup/unified");
}

TEST(CgroupMount, UnifiedModeAndEscapes) {
    EXPECT_EQ(netprobe::util::findCgroup2Mount("cgroup2 /sys/fs/cgroup cgroup2 rw,nosuid,nodev 0 0"), "/sys/fs/cgroup");
    EXPECT_EQ(netprobe::util::findCgroup2Mount("none /mnt/my\\040cgroup cgroup2 rw 0 0\n"), "/mnt/my cgroup");
}

TEST(CgroupMount, NoneInCgroupV1OnlyOrEmpty) {
    EXPECT_FALSE(netprobe::util::findCgroup2Mount(""));
    EXPECT_FALSE(netprobe::util::findCgroup2Mount("cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n"));
    EXPECT_FALSE(netprobe::util::findCgroup2Mount("garbage\n\n  \n"));
}
