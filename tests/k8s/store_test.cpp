// API objects -> compact records; the stores' indexes under churn.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <netprobe/k8s/store.hpp>

using namespace netprobe::k8s;
using netprobe::util::parseAddr;
using nlohmann::json;

namespace {

json pod(const std::string& name, const std::string& uid, const std::string& ip, json owner = nullptr,
         const std::string& hash = "") {
    json p = {
        {"apiVersion", "v1"},
        {"kind", "Pod"},
        {"metadata",
         {{"name", name}, {"namespace", "shop"}, {"uid", uid}, {"resourceVersion", "101"}, {"labels", json::object()}}},
        {"spec", {{"nodeName", "node-a"}, {"containers", json::array({{{"name", "app"}, {"image", "nginx"}}})}}},
        {"status",
         {{"phase", "Running"},
          {"podIP", ip},
          {"podIPs", json::array({{{"ip", ip}}})},
          {"containerStatuses",
           json::array({{{"name", "app"}, {"containerID", "containerd://" + std::string(64, 'a')}, {"ready", true}}})}}},
    };
    if (!owner.is_null()) p["metadata"]["ownerReferences"] = json::array({owner});
    if (!hash.empty()) p["metadata"]["labels"]["pod-template-hash"] = hash;
    return p;
}

json owner(const std::string& kind, const std::string& name, bool controller = true) {
    return {{"apiVersion", "apps/v1"}, {"kind", kind}, {"name", name}, {"uid", "o-" + name}, {"controller", controller},
            {"blockOwnerDeletion", true}};
}

}  // namespace

TEST(PodJson, KeepsTheNeededFields) {
    auto p = podFromJson(pod("web-7d4b9c8f6-x2x7q", "u1", "10.244.1.5", owner("ReplicaSet", "web-7d4b9c8f6"), "7d4b9c8f6"));
    ASSERT_TRUE(p) << p.error().what();
    EXPECT_EQ(p->ns, "shop");
    EXPECT_EQ(p->name, "web-7d4b9c8f6-x2x7q");
    EXPECT_EQ(p->uid, "u1");
    EXPECT_EQ(p->node, "node-a");
    EXPECT_EQ(p->resource_version, "101");
    ASSERT_EQ(p->ips.size(), 1u);
    EXPECT_EQ(p->ips[0], *parseAddr("10.244.1.5"));
    EXPECT_EQ(p->workload, (Workload{"Deployment", "web"}));
    ASSERT_EQ(p->container_ids.size(), 1u);
    EXPECT_EQ(p->container_ids[0], std::string(64, 'a'));
    EXPECT_FALSE(p->host_network);
}

TEST(PodJson, DualStackHostNetworkAndEndedPods) {
    auto j = pod("ds-abcde", "u2", "10.244.1.6", owner("DaemonSet", "agent"));
    j["status"]["podIPs"] = json::array({{{"ip", "10.244.1.6"}}, {{"ip", "fd00::6"}}});
    j["spec"]["hostNetwork"] = true;
    auto p = podFromJson(j);
    ASSERT_TRUE(p);
    EXPECT_EQ(p->ips.size(), 2u);
    EXPECT_TRUE(p->host_network);
    EXPECT_EQ(p->workload, (Workload{"DaemonSet", "agent"}));

    j["status"]["phase"] = "Succeeded";
    p = podFromJson(j);
    ASSERT_TRUE(p);
    EXPECT_TRUE(p->ips.empty());  // an ended pod's IP may already belong to another pod
}

TEST(PodJson, MissingIdentityIsAnError) {
    json j = pod("x", "u", "10.0.0.1");
    j["metadata"].erase("uid");
    auto p = podFromJson(j);
    ASSERT_FALSE(p);
    EXPECT_NE(p.error().what().find("uid"), std::string::npos);
    EXPECT_FALSE(podFromJson(json::array()));
}

TEST(Workload, OwnerChain) {
    EXPECT_EQ(resolveWorkload("ReplicaSet", "web-7d4b9c8f6", "7d4b9c8f6", "p"), (Workload{"Deployment", "web"}));
    // a bare ReplicaSet (no pod-template-hash) or a hash that does not match stays a ReplicaSet
    EXPECT_EQ(resolveWorkload("ReplicaSet", "legacy", "", "p"), (Workload{"ReplicaSet", "legacy"}));
    EXPECT_EQ(resolveWorkload("ReplicaSet", "web-1", "7d4b", "p"), (Workload{"ReplicaSet", "web-1"}));
    EXPECT_EQ(resolveWorkload("StatefulSet", "db", "", "db-0"), (Workload{"StatefulSet", "db"}));
    EXPECT_EQ(resolveWorkload("DaemonSet", "agent", "", "agent-x"), (Workload{"DaemonSet", "agent"}));
    EXPECT_EQ(resolveWorkload("Job", "backup-29012345", "", "p"), (Workload{"CronJob", "backup"}));
    EXPECT_EQ(resolveWorkload("Job", "migrate-1", "", "p"), (Workload{"Job", "migrate-1"}));
    EXPECT_EQ(resolveWorkload("Job", "migrate", "", "p"), (Workload{"Job", "migrate"}));
    EXPECT_EQ(resolveWorkload("", "", "", "static-web-node-a"), (Workload{"Pod", "static-web-node-a"}));
}

TEST(PodJson, OnlyTheControllerOwnerCounts) {
    auto p = podFromJson(pod("p", "u", "10.0.0.1", owner("ConfigMap", "cm", false)));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->workload, (Workload{"Pod", "p"}));
}

TEST(ContainerId, RuntimePrefixIsStripped) {
    EXPECT_EQ(stripRuntimePrefix("containerd://abc"), "abc");
    EXPECT_EQ(stripRuntimePrefix("cri-o://abc"), "abc");
    EXPECT_EQ(stripRuntimePrefix("docker://abc"), "abc");
    EXPECT_EQ(stripRuntimePrefix("abc"), "abc");
    EXPECT_EQ(stripRuntimePrefix(""), "");
}

TEST(ServiceJson, ClusterIpsAndPorts) {
    json s = {{"apiVersion", "v1"},
              {"kind", "Service"},
              {"metadata", {{"name", "web"}, {"namespace", "shop"}, {"uid", "s1"}, {"resourceVersion", "7"}}},
              {"spec",
               {{"type", "ClusterIP"},
                {"clusterIP", "10.96.0.10"},
                {"clusterIPs", json::array({"10.96.0.10", "fd00:96::a"})},
                {"ports", json::array({{{"name", "http"}, {"port", 80}, {"protocol", "TCP"}, {"targetPort", 8080}},
                                       {{"name", "dns"}, {"port", 53}, {"protocol", "UDP"}, {"targetPort", 53}}})}}}};
    auto svc = serviceFromJson(s);
    ASSERT_TRUE(svc) << svc.error().what();
    EXPECT_EQ(svc->cluster_ips.size(), 2u);
    ASSERT_EQ(svc->ports.size(), 2u);
    EXPECT_EQ(svc->ports[1], (ServicePort{53, 17, "dns"}));

    s["spec"]["clusterIP"] = "None";  // headless
    s["spec"]["clusterIPs"] = json::array({"None"});
    svc = serviceFromJson(s);
    ASSERT_TRUE(svc);
    EXPECT_TRUE(svc->cluster_ips.empty());
}

TEST(PodStore, LookupsAndIndexesFollowChurn) {
    PodStore store;
    for (int i = 0; i < 50; ++i) {
        auto p = podFromJson(pod("p" + std::to_string(i), "u" + std::to_string(i), "10.244.0." + std::to_string(i + 1)));
        ASSERT_TRUE(p);
        p->container_ids = {std::string(63, 'a') + std::to_string(i % 10) + std::to_string(i)};
        store.upsert(std::move(*p));
    }
    EXPECT_EQ(store.sizes().pods, 50u);
    EXPECT_EQ(store.sizes().ips, 50u);
    auto hit = store.byIp(*parseAddr("10.244.0.8"));
    ASSERT_TRUE(hit);
    EXPECT_EQ(hit->name, "p7");
    EXPECT_TRUE(store.byUid("u7"));
    EXPECT_TRUE(store.byContainerId(std::string(63, 'a') + "77"));

    // IP moves to a new pod; deleting the old pod must not drop the new pod's IP.
    auto np = podFromJson(pod("new", "u-new", "10.244.0.8"));
    ASSERT_TRUE(np);
    np->container_ids.clear();
    store.upsert(std::move(*np));
    EXPECT_EQ(store.byIp(*parseAddr("10.244.0.8"))->name, "new");
    store.remove("u7");
    EXPECT_EQ(store.byIp(*parseAddr("10.244.0.8"))->name, "new");

    for (int i = 0; i < 50; ++i) store.remove("u" + std::to_string(i));
    store.remove("u-new");
    auto s = store.sizes();
    EXPECT_EQ(s.pods, 0u);
    EXPECT_EQ(s.ips, 0u);
    EXPECT_EQ(s.container_ids, 0u);
}

TEST(PodStore, HostNetworkPodsAreNotFoundByIp) {
    PodStore store;
    auto p = podFromJson(pod("hn", "u", "192.168.1.10"));
    ASSERT_TRUE(p);
    p->host_network = true;
    store.upsert(std::move(*p));
    EXPECT_FALSE(store.byIp(*parseAddr("192.168.1.10")));
    EXPECT_TRUE(store.byUid("u"));
}

TEST(PodStore, ReplaceAllDropsWhatTheListNoLongerHas) {
    PodStore store;
    store.upsert(*podFromJson(pod("a", "ua", "10.0.0.1")));
    store.upsert(*podFromJson(pod("b", "ub", "10.0.0.2")));
    std::vector<PodInfo> fresh{*podFromJson(pod("b", "ub", "10.0.0.2")), *podFromJson(pod("c", "uc", "10.0.0.3"))};
    store.replaceAll(std::move(fresh));
    EXPECT_FALSE(store.byUid("ua"));
    EXPECT_FALSE(store.byIp(*parseAddr("10.0.0.1")));
    EXPECT_TRUE(store.byIp(*parseAddr("10.0.0.3")));
    EXPECT_EQ(store.all().size(), 2u);
}

TEST(ServiceStore, ByClusterIpPortAndProtocol) {
    ServiceStore store;
    ServiceInfo s{"kube-system", "kube-dns", "s1", "1", {*parseAddr("10.96.0.10")}, {{53, 17, "dns"}, {53, 6, "dns-tcp"}}};
    store.upsert(s);
    auto m = store.byClusterIp(*parseAddr("10.96.0.10"), 53, 6);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->service.name, "kube-dns");
    EXPECT_EQ(m->port.name, "dns-tcp");
    EXPECT_FALSE(store.byClusterIp(*parseAddr("10.96.0.10"), 80, 6));
    EXPECT_FALSE(store.byClusterIp(*parseAddr("10.96.0.11"), 53, 17));
    store.remove("s1");
    EXPECT_FALSE(store.byClusterIp(*parseAddr("10.96.0.10"), 53, 17));
    EXPECT_EQ(store.sizes().cluster_ips, 0u);
}

TEST(EndpointSlices, BackendToService) {
    json e = {{"apiVersion", "discovery.k8s.io/v1"},
              {"kind", "EndpointSlice"},
              {"metadata",
               {{"name", "web-abc12"},
                {"namespace", "shop"},
                {"uid", "es1"},
                {"labels", {{"kubernetes.io/service-name", "web"}, {"endpointslice.kubernetes.io/managed-by", "endpointslice-controller.k8s.io"}}}}},
              {"addressType", "IPv4"},
              {"endpoints",
               json::array({{{"addresses", json::array({"10.244.1.5"})},
                             {"conditions", {{"ready", true}}},
                             {"nodeName", "node-a"},
                             {"targetRef", {{"kind", "Pod"}, {"name", "web-1"}, {"namespace", "shop"}, {"uid", "p1"}}}},
                            {{"addresses", json::array({"10.244.2.6"})}, {"conditions", {{"ready", false}}}}})},
              {"ports", json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})}};
    auto s = endpointSliceFromJson(e);
    ASSERT_TRUE(s) << s.error().what();
    EXPECT_EQ(s->service, "web");
    EXPECT_EQ(s->addresses.size(), 2u);
    ASSERT_EQ(s->ports.size(), 1u);

    EndpointStore store;
    store.upsert(*s);
    auto m = store.serviceByBackend(*parseAddr("10.244.1.5"), 8080, 6);
    ASSERT_TRUE(m);
    EXPECT_EQ(m->service, "web");
    EXPECT_EQ(m->ns, "shop");
    EXPECT_EQ(m->port.name, "http");
    EXPECT_FALSE(store.serviceByBackend(*parseAddr("10.244.1.5"), 8080, 17));
    EXPECT_FALSE(store.serviceByBackend(*parseAddr("10.244.1.5"), 80, 6));
    EXPECT_EQ(store.sizes().backends, 2u);

    // the slice loses an endpoint, then goes away
    e["endpoints"].erase(1);
    store.upsert(*endpointSliceFromJson(e));
    EXPECT_FALSE(store.serviceByBackend(*parseAddr("10.244.2.6"), 8080, 6));
    store.remove("es1");
    EXPECT_EQ(store.sizes().slices, 0u);
    EXPECT_EQ(store.sizes().backends, 0u);

    e["addressType"] = "FQDN";
    e["endpoints"] = json::array({{{"addresses", json::array({"example.com"})}}});
    auto f = endpointSliceFromJson(e);
    ASSERT_TRUE(f);
    EXPECT_TRUE(f->addresses.empty());
}

namespace {
TEST(NodeParse, ZoneLabelAndPodCidrs) {
    json node = {{"apiVersion", "v1"},
                 {"kind", "Node"},
                 {"metadata",
                  {{"name", "n1"},
                   {"uid", "u-n1"},
                   {"resourceVersion", "7"},
                   {"labels", {{"topology.kubernetes.io/zone", "eu-west-1a"}, {"kubernetes.io/os", "linux"}}}}},
                 {"spec", {{"podCIDR", "10.244.1.0/24"}, {"podCIDRs", {"10.244.1.0/24", "fd00:10:244:1::/64"}}}},
                 {"status", {{"addresses", {{{"type", "InternalIP"}, {"address", "10.0.0.11"}},
                                            {{"type", "Hostname"}, {"address", "n1"}}}}}}};
    auto n = nodeFromJson(node);
    ASSERT_TRUE(n) << n.error().what();
    EXPECT_EQ(n->zone, "eu-west-1a");
    ASSERT_EQ(n->addrs.size(), 1u);
    ASSERT_EQ(n->pod_cidrs.size(), 2u);
    EXPECT_EQ(n->pod_cidrs[0].first, *parseAddr("10.244.1.0"));
    EXPECT_EQ(n->pod_cidrs[0].second, 96u + 24u);
    EXPECT_EQ(n->pod_cidrs[1].second, 64u);
    // the deprecated label, a single podCIDR, a malformed range left out
    node["metadata"]["labels"] = {{"failure-domain.beta.kubernetes.io/zone", "zone-old"}};
    node["spec"] = {{"podCIDR", "10.244.2.0/24"}};
    n = nodeFromJson(node);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->zone, "zone-old");
    ASSERT_EQ(n->pod_cidrs.size(), 1u);
    node["spec"] = {{"podCIDRs", {"not-a-cidr", 7}}};
    node["metadata"]["labels"] = json::object();
    n = nodeFromJson(node);
    ASSERT_TRUE(n);
    EXPECT_EQ(n->zone, "");
    EXPECT_TRUE(n->pod_cidrs.empty());
}
}  // namespace
