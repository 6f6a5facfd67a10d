// Flow endpoints -> namespace / pod / workload / service.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <netprobe/k8s/enrich.hpp>

using namespace netprobe::k8s;
using netprobe::util::parseAddr;

namespace {

PodInfo mkPod(std::string ns, std::string name, std::string ip, Workload w) {
    PodInfo p;
    p.ns = std::move(ns);
    p.name = std::move(name);
    p.uid = "uid-" + p.name;
    p.ips = {*parseAddr(ip)};
    p.workload = std::move(w);
    return p;
}

FlowEndpoints flow(const char* src, const char* dst, std::uint16_t port, std::uint8_t proto) {
    return FlowEndpoints{*parseAddr(src), *parseAddr(dst), port, proto};
}

struct Stores {
    PodStore pods;
    ServiceStore services;
    Stores() {
        pods.upsert(mkPod("shop", "web-7d4b9c8f6-x2x7q", "10.244.1.5", {"Deployment", "web"}));
        pods.upsert(mkPod("shop", "db-0", "10.244.2.7", {"StatefulSet", "db"}));
        services.upsert(ServiceInfo{"shop", "db", "s-db", "1", {*parseAddr("10.96.12.3")}, {{5432, 6, "pg"}}});
        services.upsert(ServiceInfo{"kube-system", "kube-dns", "s-dns", "1", {*parseAddr("10.96.0.10")}, {{53, 17, "dns"}}});
    }
};

}  // namespace

TEST(Enrich, PodToPod) {
    Stores s;
    auto a = enrichFlow(flow("10.244.1.5", "10.244.2.7", 5432, 6), s.pods, s.services);
    EXPECT_EQ(a.src_namespace, "shop");
    EXPECT_EQ(a.src_pod, "web-7d4b9c8f6-x2x7q");
    EXPECT_EQ(a.src_workload, "web");
    EXPECT_EQ(a.src_workload_kind, "Deployment");
    EXPECT_EQ(a.dst_namespace, "shop");
    EXPECT_EQ(a.dst_pod, "db-0");
    EXPECT_EQ(a.dst_workload, "db");
    EXPECT_EQ(a.dst_service, "");
}

TEST(Enrich, PodToClusterIp) {
    Stores s;
    auto a = enrichFlow(flow("10.244.1.5", "10.96.0.10", 53, 17), s.pods, s.services);
    EXPECT_EQ(a.src_pod, "web-7d4b9c8f6-x2x7q");
    EXPECT_EQ(a.dst_service, "kube-dns");
    EXPECT_EQ(a.dst_namespace, "kube-system");
    EXPECT_EQ(a.dst_pod, "");
    // wrong protocol or port: not that service
    EXPECT_EQ(enrichFlow(flow("10.244.1.5", "10.96.0.10", 53, 6), s.pods, s.services).dst_service, "");
    EXPECT_EQ(enrichFlow(flow("10.244.1.5", "10.96.12.3", 80, 6), s.pods, s.services).dst_service, "");
}

TEST(Enrich, UnknownEndpointsStayEmpty) {
    Stores s;
    auto a = enrichFlow(flow("192.0.2.1", "198.51.100.2", 443, 6), s.pods, s.services);
    EXPECT_TRUE(a.empty());
    auto ext = enrichFlow(flow("10.244.2.7", "8.8.8.8", 53, 17), s.pods, s.services);
    EXPECT_EQ(ext.src_pod, "db-0");
    EXPECT_EQ(ext.dst_namespace, "");
}

TEST(Enrich, PureAttribution) {
    auto src = mkPod("a", "p1", "10.0.0.1", {"DaemonSet", "agent"});
    ServiceMatch m{ServiceInfo{"b", "svc", "u", "1", {}, {}}, {80, 6, "http"}};
    auto a = attribute(&src, nullptr, &m);
    EXPECT_EQ(a.src_namespace, "a");
    EXPECT_EQ(a.src_pod, "p1");
    EXPECT_EQ(a.src_workload, "agent");
    EXPECT_EQ(a.src_workload_kind, "DaemonSet");
    EXPECT_EQ(a.dst_namespace, "b");
    EXPECT_EQ(a.dst_service, "svc");
    EXPECT_EQ(a.dst_pod, "");
    EXPECT_TRUE(attribute(nullptr, nullptr, nullptr).empty());
}

TEST(Enrich, AfterDnatTheBackendGivesTheService) {
    Stores s;
    EndpointStore eps;
    eps.upsert(EndpointSliceInfo{"shop", "db-x1", "es-db", "db", {*parseAddr("10.244.2.7")}, {{5432, 6, "pg"}}});
    auto a = enrichFlow(flow("10.244.1.5", "10.244.2.7", 5432, 6), s.pods, s.services, &eps);
    EXPECT_EQ(a.dst_pod, "db-0");
    EXPECT_EQ(a.dst_service, "db");
    EXPECT_EQ(a.dst_namespace, "shop");
    // without the endpoint store (or on another port) no service is claimed
    EXPECT_EQ(enrichFlow(flow("10.244.1.5", "10.244.2.7", 5432, 6), s.pods, s.services).dst_service, "");
    EXPECT_EQ(enrichFlow(flow("10.244.1.5", "10.244.2.7", 22, 6), s.pods, s.services, &eps).dst_service, "");
    // a ClusterIP match takes precedence
    auto c = enrichFlow(flow("10.244.1.5", "10.96.12.3", 5432, 6), s.pods, s.services, &eps);
    EXPECT_EQ(c.dst_service, "db");
    EXPECT_EQ(c.dst_pod, "");
}

TEST(EnrichCgroup, ContainerAndPod) {
    CgroupIndex::Entry e{"/kubepods.slice/kubepods-pod1.slice/cri-containerd-abc.scope",
                         ContainerRef{"abc", Runtime::Containerd, "uid-web-1", QosClass::Guaranteed}};
    auto p = mkPod("shop", "web-1", "10.0.0.1", {"Deployment", "web"});
    auto a = attributeCgroup(e, &p);
    EXPECT_EQ(a.container_id, "abc");
    EXPECT_EQ(a.pod_uid, "uid-web-1");
    EXPECT_EQ(a.ns, "shop");
    EXPECT_EQ(a.pod, "web-1");
    EXPECT_EQ(a.workload, "web");
    // without Kubernetes: the container id (and pod UID from the path) only
    auto b = attributeCgroup(e, nullptr);
    EXPECT_EQ(b.container_id, "abc");
    EXPECT_EQ(b.pod_uid, "uid-web-1");
    EXPECT_EQ(b.pod, "");
    // not a container
    auto c = attributeCgroup(CgroupIndex::Entry{"/user.slice", std::nullopt}, nullptr);
    EXPECT_EQ(c.cgroup_path, "/user.slice");
    EXPECT_EQ(c.container_id, "");
}
