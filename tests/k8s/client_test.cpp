// The Kubernetes client against a fake API server (tests/k8s/fake_apiserver.py) over
// HTTPS with a CA made at test time: list + watch, node filter, pagination, 410 Gone
// (status and ERROR event), bookmarks, dropped streams, churn, auth, prompt stop().
#include <gtest/gtest.h>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <netprobe/k8s/client.hpp>
#include <netprobe/k8s/policy_publisher.hpp>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <functional>
#include <thread>

#ifndef NETPROBE_FAKE_APISERVER
#error "NETPROBE_FAKE_APISERVER must name tests/k8s/fake_apiserver.py"
#endif

using namespace netprobe::k8s;
using namespace std::chrono_literals;
using netprobe::util::parseAddr;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr const char* kToken = "t0k3n-for-tests";

// TLS writes to a peer that went away raise SIGPIPE; the agent ignores it (main.cpp), so do the tests.
class IgnoreSigpipe : public ::testing::Environment {
public:
    void SetUp() override { ::signal(SIGPIPE, SIG_IGN); }
};
const auto* const kSigpipe = ::testing::AddGlobalTestEnvironment(new IgnoreSigpipe);

bool eventually(const std::function<bool()>& pred, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (pred()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

// The fake API server process and its temp dir; both gone when this is destroyed.
class FakeApiServer {
public:
    FakeApiServer() {
        std::string tmpl = (fs::temp_directory_path() / "netprobe-k8s-api-XXXXXX").string();
        if (!::mkdtemp(tmpl.data())) return;
        dir_ = tmpl;
        int fds[2];
        if (::pipe2(fds, O_CLOEXEC) != 0) return;
        pid_t parent = ::getpid();
        pid_ = ::fork();
        if (pid_ == 0) {
            // If this test process dies without its destructors, the server goes too (and removes --dir).
            ::prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (::getppid() != parent) ::_exit(1);
            ::dup2(fds[1], STDOUT_FILENO);
            ::execl("/usr/bin/python3", "python3", NETPROBE_FAKE_APISERVER, "--dir", dir_.c_str(), "--token", kToken,
                    static_cast<char*>(nullptr));
            ::_exit(127);
        }
        ::close(fds[1]);
        // Wait (bounded) for "READY <port>".
        std::string out;
        auto deadline = std::chrono::steady_clock::now() + 30s;
        while (out.find('\n') == std::string::npos && std::chrono::steady_clock::now() < deadline) {
            pollfd p{fds[0], POLLIN, 0};
            if (::poll(&p, 1, 200) <= 0) continue;
            char buf[256];
            auto n = ::read(fds[0], buf, sizeof buf);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        ::close(fds[0]);
        if (out.rfind("READY ", 0) == 0) port_ = std::stoi(out.substr(6));
    }
    ~FakeApiServer() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int st = 0;
            bool reaped = false;
            for (int i = 0; i < 100 && !reaped; ++i) {
                reaped = ::waitpid(pid_, &st, WNOHANG) == pid_;
                if (!reaped) std::this_thread::sleep_for(20ms);
            }
            if (!reaped) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &st, 0);
            }
        }
        std::error_code ec;
        if (!dir_.empty()) fs::remove_all(dir_, ec);
    }
    FakeApiServer(const FakeApiServer&) = delete;
    FakeApiServer& operator=(const FakeApiServer&) = delete;

    bool ok() const { return port_ > 0; }
    int port() const { return port_; }
    const fs::path& dir() const { return dir_; }

    json control(const std::string& cmd, const json& body = json::object()) const {
        auto cli = controlClient();
        auto r = cli->Post(("/control/" + cmd).c_str(), body.dump(), "application/json");
        if (!r || r->status != 200) {
            ADD_FAILURE() << "control " << cmd << " failed: " << (r ? std::to_string(r->status) : httplib::to_string(r.error()));
            return {};
        }
        return json::parse(r->body);
    }
    json stats() const {
        auto cli = controlClient();
        auto r = cli->Get("/control/stats");
        if (!r || r->status != 200) {
            ADD_FAILURE() << "stats failed";
            return json::object();
        }
        return json::parse(r->body);
    }

    // A kubeconfig for this server; user: "token", "cert", "bad-token" or "wrong-ca"
    // (trusts a certificate that did not sign the server's).
    fs::path kubeconfig(const std::string& user) const {
        fs::path p = dir_ / ("kubeconfig-" + user);
        std::ofstream f(p);
        f << "apiVersion: v1\nkind: Config\ncurrent-context: test\n"
          << "clusters:\n- name: fake\n  cluster:\n    server: https://127.0.0.1:" << port_
          << "\n    certificate-authority: " << (user == "wrong-ca" ? "client.crt" : "ca.crt") << "\n"
          << "contexts:\n- name: test\n  context: {cluster: fake, user: u}\n"
          << "users:\n- name: u\n  user:\n";
        if (user == "token" || user == "wrong-ca") f << "    token: " << kToken << "\n";
        if (user == "bad-token") f << "    token: wrong\n";
        if (user == "cert") f << "    client-certificate: client.crt\n    client-key: client.key\n";
        return p;
    }

private:
    std::unique_ptr<httplib::SSLClient> controlClient() const {
        auto cli = std::make_unique<httplib::SSLClient>("127.0.0.1", port_);
        cli->set_ca_cert_path((dir_ / "ca.crt").c_str());
        cli->enable_server_certificate_verification(true);
        cli->set_connection_timeout(5, 0);
        cli->set_read_timeout(10, 0);
        return cli;
    }

    fs::path dir_;
    pid_t pid_ = -1;
    int port_ = 0;
};

json podObj(const std::string& name, const std::string& ip, const std::string& node = "node-a",
            const std::string& cid = "") {
    std::string uid = "uid-" + name;
    json p = {{"apiVersion", "v1"},
              {"kind", "Pod"},
              {"metadata",
               {{"name", name},
                {"namespace", "shop"},
                {"uid", uid},
                {"labels", {{"app", "web"}, {"pod-template-hash", "5f7c9d"}}},
                {"ownerReferences",
                 json::array({{{"apiVersion", "apps/v1"},
                               {"kind", "ReplicaSet"},
                               {"name", "web-5f7c9d"},
                               {"uid", "rs-1"},
                               {"controller", true},
                               {"blockOwnerDeletion", true}}})}}},
              {"spec", {{"nodeName", node}, {"containers", json::array({{{"name", "app"}, {"image", "nginx:1.25"}}})}}},
              {"status",
               {{"phase", "Running"},
                {"podIP", ip},
                {"podIPs", json::array({{{"ip", ip}}})},
                {"containerStatuses",
                 json::array({{{"name", "app"},
                               {"ready", true},
                               {"containerID", "containerd://" + (cid.empty() ? std::string(64, 'c') : cid)}}})}}}};
    return p;
}

json serviceObj(const std::string& name, const std::string& ip, int port) {
    return {{"apiVersion", "v1"},
            {"kind", "Service"},
            {"metadata", {{"name", name}, {"namespace", "shop"}, {"uid", "uid-svc-" + name}}},
            {"spec",
             {{"type", "ClusterIP"},
              {"clusterIP", ip},
              {"clusterIPs", json::array({ip})},
              {"ports", json::array({{{"name", "http"}, {"port", port}, {"protocol", "TCP"}, {"targetPort", 8080}}})}}}};
}

class K8sClient : public ::testing::Test {
protected:
    void SetUp() override {
        if (!server_.ok()) FAIL() << "fake API server did not start (python3 and openssl come from scripts/setup-deps.sh)";
    }

    std::unique_ptr<Client> makeClient(const std::string& user = "token", std::size_t page = 500,
                                       std::chrono::seconds watch_timeout = 300s) {
        auto cfg = loadKubeconfig(server_.kubeconfig(user));
        EXPECT_TRUE(cfg) << (cfg ? "" : cfg.error().what());
        if (!cfg) return nullptr;
        ClientOptions o;
        o.cluster = *cfg;
        o.node_name = "node-a";
        o.backoff_initial = 50ms;
        o.backoff_max = 400ms;
        o.watch_timeout = watch_timeout;
        o.list_page_size = page;
        return std::make_unique<Client>(o);
    }

    void upsertPod(const json& p, bool silent = false) {
        server_.control("upsert", {{"resource", "pods"}, {"object", p}, {"silent", silent}});
    }
    void deletePod(const std::string& name, bool silent = false) {
        server_.control("delete", {{"resource", "pods"}, {"uid", "uid-" + name}, {"silent", silent}});
    }
    std::size_t watchCount(const char* res) { return server_.stats()["watches"][res].size(); }
    std::size_t listCount(const char* res) { return server_.stats()["lists"][res].size(); }
    bool watchOpen(const char* res) { return server_.stats()["open_watches"][res].get<int>() > 0; }

    FakeApiServer server_;
};

}  // namespace

TEST_F(K8sClient, ListThenWatchConverges) {
    upsertPod(podObj("web-5f7c9d-aaaaa", "10.244.0.10"));
    upsertPod(podObj("web-5f7c9d-bbbbb", "10.244.0.11"));
    upsertPod(podObj("elsewhere", "10.244.9.9", "node-b"));  // filtered out by spec.nodeName
    server_.control("upsert", {{"resource", "services"}, {"object", serviceObj("web", "10.96.1.1", 80)}});

    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s)) << c->podStatus().last_error;
    EXPECT_EQ(c->pods().sizes().pods, 2u);
    EXPECT_FALSE(c->podByIp(*parseAddr("10.244.9.9")));
    auto p = c->podByIp(*parseAddr("10.244.0.10"));
    ASSERT_TRUE(p);
    EXPECT_EQ(p->name, "web-5f7c9d-aaaaa");
    EXPECT_EQ(p->workload, (Workload{"Deployment", "web"}));
    EXPECT_TRUE(c->podByContainerId(std::string(64, 'c')));
    auto svc = c->serviceByClusterIp(*parseAddr("10.96.1.1"), 80, 6);
    ASSERT_TRUE(svc);
    EXPECT_EQ(svc->service.name, "web");

    auto st = server_.stats();
    EXPECT_EQ(st["lists"]["pods"][0]["fieldSelector"], "spec.nodeName=node-a");
    ASSERT_TRUE(eventually([&] { return watchOpen("pods") && watchOpen("services"); }));
    auto w = server_.stats()["watches"]["pods"][0];
    EXPECT_EQ(w["allowWatchBookmarks"], "true");
    EXPECT_EQ(w["resourceVersion"], c->podStatus().resource_version);
    EXPECT_EQ(w["fieldSelector"], "spec.nodeName=node-a");

    // ADDED
    upsertPod(podObj("web-5f7c9d-ccccc", "10.244.0.12", "node-a", std::string(64, 'd')));
    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.12")).has_value(); }));
    EXPECT_EQ(c->podByContainerId(std::string(64, 'd'))->name, "web-5f7c9d-ccccc");
    // MODIFIED: new IP and container
    upsertPod(podObj("web-5f7c9d-ccccc", "10.244.0.13", "node-a", std::string(64, 'e')));
    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.13")).has_value(); }));
    EXPECT_FALSE(c->podByIp(*parseAddr("10.244.0.12")));
    EXPECT_FALSE(c->podByContainerId(std::string(64, 'd')));
    EXPECT_TRUE(c->podByUid("uid-web-5f7c9d-ccccc"));
    // DELETED
    deletePod("web-5f7c9d-aaaaa");
    ASSERT_TRUE(eventually([&] { return !c->podByIp(*parseAddr("10.244.0.10")); }));
    EXPECT_EQ(c->pods().sizes().pods, 2u);
    // services
    server_.control("upsert", {{"resource", "services"}, {"object", serviceObj("api", "10.96.1.2", 8080)}});
    ASSERT_TRUE(eventually([&] { return c->serviceByClusterIp(*parseAddr("10.96.1.2"), 8080, 6).has_value(); }));
    server_.control("delete", {{"resource", "services"}, {"uid", "uid-svc-web"}});
    ASSERT_TRUE(eventually([&] { return !c->serviceByClusterIp(*parseAddr("10.96.1.1"), 80, 6); }));
    // endpointslices (discovery.k8s.io/v1)
    json slice = {{"apiVersion", "discovery.k8s.io/v1"},
                  {"kind", "EndpointSlice"},
                  {"metadata",
                   {{"name", "api-x7k2p"},
                    {"namespace", "shop"},
                    {"uid", "uid-es-api"},
                    {"labels", {{"kubernetes.io/service-name", "api"}}}}},
                  {"addressType", "IPv4"},
                  {"endpoints", json::array({{{"addresses", json::array({"10.244.0.11"})}, {"conditions", {{"ready", true}}}}})},
                  {"ports", json::array({{{"name", "http"}, {"port", 8080}, {"protocol", "TCP"}}})}};
    server_.control("upsert", {{"resource", "endpointslices"}, {"object", slice}});
    ASSERT_TRUE(eventually([&] { return c->serviceByBackend(*parseAddr("10.244.0.11"), 8080, 6).has_value(); }));
    EXPECT_EQ(c->serviceByBackend(*parseAddr("10.244.0.11"), 8080, 6)->service, "api");
    server_.control("delete", {{"resource", "endpointslices"}, {"uid", "uid-es-api"}});
    ASSERT_TRUE(eventually([&] { return !c->serviceByBackend(*parseAddr("10.244.0.11"), 8080, 6); }));
    EXPECT_EQ(c->endpointSliceStatus()->events, 2u);

    EXPECT_EQ(listCount("pods"), 1u);  // no relist was needed
    EXPECT_EQ(c->podStatus().events, 3u);  // added, modified, deleted
    c->stop();
}

// NetworkPolicy monitoring's inputs: policies, namespaces, nodes and the other nodes' pods
// (spec.nodeName!=), listed and watched; an unreadable policy is kept with its reason; the
// publisher builds a set once everything is listed and again after a change (debounced).
TEST_F(K8sClient, PolicyInputsAndPublisher) {
    upsertPod(podObj("web-5f7c9d-aaaaa", "10.244.0.10"));
    upsertPod(podObj("elsewhere", "10.244.9.9", "node-b"));
    auto ns = [](const std::string& name) {
        return json{{"apiVersion", "v1"},
                    {"kind", "Namespace"},
                    {"metadata", {{"name", name}, {"uid", "uid-ns-" + name}, {"labels", {{"team", name}}}}}};
    };
    auto pol = [](const std::string& name, json spec) {
        return json{{"apiVersion", "networking.k8s.io/v1"},
                    {"kind", "NetworkPolicy"},
                    {"metadata", {{"name", name}, {"namespace", "shop"}, {"uid", "uid-np-" + name}}},
                    {"spec", std::move(spec)}};
    };
    server_.control("upsert", {{"resource", "namespaces"}, {"object", ns("shop")}});
    server_.control("upsert",
                    {{"resource", "networkpolicies"},
                     {"object", pol("deny-all", {{"podSelector", json::object()}, {"policyTypes", {"Ingress"}}})}});
    json node = {{"apiVersion", "v1"}, {"kind", "Node"}, {"metadata", {{"name", "node-a"}, {"uid", "uid-node-a"}}}};
    node["status"]["addresses"] = json::array({{{"type", "InternalIP"}, {"address", "192.168.0.11"}},
                                               {{"type", "Hostname"}, {"address", "node-a"}}});
    server_.control("upsert", {{"resource", "nodes"}, {"object", node}});

    auto cfg = loadKubeconfig(server_.kubeconfig("token"));
    ASSERT_TRUE(cfg);
    ClientOptions o;
    o.cluster = *cfg;
    o.node_name = "node-a";
    o.backoff_initial = 50ms;
    o.watch_network_policies = true;
    auto c = std::make_shared<Client>(o);
    PolicyPublisherOptions po;
    po.debounce = 100ms;
    PolicyPublisher pub(c, po);
    EXPECT_FALSE(pub.tick(std::chrono::steady_clock::now()));  // nothing listed yet
    EXPECT_FALSE(pub.current());
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    EXPECT_TRUE(c->policyInputsSynced());
    EXPECT_EQ(c->pods().sizes().pods, 1u);  // attribution: node-a's pods only
    ASSERT_TRUE(c->remotePods());
    EXPECT_EQ(c->remotePods()->sizes().pods, 1u);
    EXPECT_TRUE(c->remotePods()->byIp(*parseAddr("10.244.9.9")));
    EXPECT_EQ(c->networkPolicies()->size(), 1u);
    EXPECT_EQ(c->namespaces()->size(), 1u);
    ASSERT_EQ(c->nodes()->all().size(), 1u);
    EXPECT_EQ(c->nodes()->all()[0].addrs, std::vector<netprobe::util::Addr16>{*parseAddr("192.168.0.11")});
    std::vector<std::string> selectors;
    const json stats = server_.stats();
    for (const auto& l : stats["lists"]["pods"]) selectors.push_back(l.value("fieldSelector", ""));
    std::sort(selectors.begin(), selectors.end());
    EXPECT_EQ(selectors, (std::vector<std::string>{"spec.nodeName!=node-a", "spec.nodeName=node-a"}));
    std::vector<std::string> names;
    for (const auto& s : c->policyStatuses()) names.push_back(s.resource);
    EXPECT_EQ(names, (std::vector<std::string>{"networkpolicies", "namespaces", "nodes", "remote_pods"}));

    auto t = std::chrono::steady_clock::now();
    ASSERT_TRUE(pub.tick(t));
    auto set = pub.current();
    ASSERT_TRUE(set);
    EXPECT_EQ(set->info().generation, 1u);
    EXPECT_EQ(set->info().pods, 2u);
    ASSERT_EQ(set->info().policies.size(), 1u);
    EXPECT_EQ(set->info().policies[0].pods, (std::vector<std::string>{"shop/elsewhere", "shop/web-5f7c9d-aaaaa"}));
    auto v = set->evaluate(*parseAddr("10.244.9.9"), *parseAddr("10.244.0.10"), 6, 80);
    EXPECT_FALSE(v.allowed);
    v = set->evaluate(*parseAddr("192.168.0.11"), *parseAddr("10.244.0.10"), 6, 80);  // its node: exempt
    EXPECT_TRUE(v.allowed);
    EXPECT_TRUE(v.ingress.exempt);
    EXPECT_FALSE(pub.tick(t + 500ms));  // nothing changed

    // a change, then an unreadable policy: one rebuild after the quiet time
    server_.control("upsert",
                    {{"resource", "networkpolicies"},
                     {"object", pol("bad", {{"podSelector", json::object()}, {"policyTypes", {"Sideways"}}})}});
    ASSERT_TRUE(eventually([&] { return !c->networkPolicies()->rejected().empty(); }));
    EXPECT_NE(c->networkPolicies()->rejected()[0].find("Sideways"), std::string::npos);
    auto t2 = std::chrono::steady_clock::now() + 1s;
    EXPECT_FALSE(pub.tick(t2));
    EXPECT_TRUE(pub.tick(t2 + 100ms));
    EXPECT_EQ(pub.current()->info().generation, 2u);
    EXPECT_EQ(pub.current()->info().rejected.size(), 1u);
    server_.control("delete", {{"resource", "networkpolicies"}, {"uid", "uid-np-deny-all"}});
    ASSERT_TRUE(eventually([&] { return c->networkPolicies()->size() == 0; }));
    auto t3 = t2 + 5s;
    EXPECT_FALSE(pub.tick(t3));
    EXPECT_TRUE(pub.tick(t3 + 100ms));
    EXPECT_TRUE(pub.current()->info().policies.empty());
    EXPECT_TRUE(pub.current()->evaluate(*parseAddr("10.244.9.9"), *parseAddr("10.244.0.10"), 6, 80).allowed);
    c->stop();
}

TEST_F(K8sClient, PaginatedList) {
    for (int i = 0; i < 5; ++i) upsertPod(podObj("p" + std::to_string(i), "10.244.1." + std::to_string(i + 1)));
    auto c = makeClient("token", 2);
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    EXPECT_EQ(c->pods().sizes().pods, 5u);
    auto lists = server_.stats()["lists"]["pods"];
    ASSERT_EQ(lists.size(), 3u);  // 2 + 2 + 1
    EXPECT_EQ(lists[0]["limit"], "2");
    EXPECT_FALSE(lists[0].contains("continue"));
    EXPECT_TRUE(lists[1].contains("continue"));
}

TEST_F(K8sClient, RelistOn410StatusAfterReconnect) {
    upsertPod(podObj("a", "10.244.0.1"));
    upsertPod(podObj("b", "10.244.0.2"));
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchOpen("pods"); }));
    auto old_rv = c->podStatus().resource_version;

    // Changes the client will never see as events, then history compacted: only a relist can tell.
    server_.control("gone_mode", {{"mode", "status"}});
    deletePod("a", true);
    upsertPod(podObj("c", "10.244.0.3"), true);
    server_.control("compact");
    server_.control("drop", {{"resource", "pods"}});

    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.3")).has_value(); }));
    EXPECT_FALSE(c->podByIp(*parseAddr("10.244.0.1")));
    EXPECT_TRUE(c->podByIp(*parseAddr("10.244.0.2")));
    auto st = c->podStatus();
    EXPECT_GE(st.gone, 1u);
    EXPECT_EQ(st.lists, 2u);
    EXPECT_GE(st.failures, 1u);  // the dropped stream
    // The reconnect asked for the old resourceVersion and got 410; the next watch starts from the relist.
    ASSERT_TRUE(eventually([&] { return watchCount("pods") >= 3; }));
    auto watches = server_.stats()["watches"]["pods"];
    EXPECT_EQ(watches[1]["resourceVersion"], old_rv);
    EXPECT_NE(watches[2]["resourceVersion"], old_rv);
}

TEST_F(K8sClient, RelistOn410ErrorEvent) {
    upsertPod(podObj("a", "10.244.0.1"));
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchOpen("pods"); }));

    server_.control("gone_mode", {{"mode", "event"}});
    deletePod("a", true);
    upsertPod(podObj("b", "10.244.0.2"), true);
    server_.control("expire");  // open watches get {"type":"ERROR","object":{Status 410}}

    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.2")).has_value(); }));
    EXPECT_FALSE(c->podByUid("uid-a"));
    EXPECT_GE(c->podStatus().gone, 1u);
    EXPECT_GE(c->podStatus().lists, 2u);
    EXPECT_EQ(c->podStatus().failures, 0u);  // a 410 is not a failure

    // Also: reconnecting with a compacted resourceVersion answered by an ERROR event (HTTP 200).
    auto lists_before = c->podStatus().lists;
    deletePod("b", true);
    server_.control("compact");
    server_.control("drop", {{"resource", "pods"}});
    ASSERT_TRUE(eventually([&] { return !c->podByUid("uid-b"); }));
    EXPECT_GT(c->podStatus().lists, lists_before);
}

TEST_F(K8sClient, ResumesFromBookmarkAfterDrop) {
    upsertPod(podObj("a", "10.244.0.1"));
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchOpen("pods"); }));
    auto list_rv = c->podStatus().resource_version;

    // Other resources move the resourceVersion; a bookmark carries it to the pods watch.
    server_.control("bump");
    int bookmark_rv = server_.control("bump")["rv"];
    server_.control("bookmark");
    ASSERT_TRUE(eventually([&] { return c->podStatus().resource_version == std::to_string(bookmark_rv); }))
        << c->podStatus().resource_version;
    EXPECT_NE(list_rv, std::to_string(bookmark_rv));
    EXPECT_GE(c->podStatus().bookmarks, 1u);

    auto before = watchCount("pods");
    server_.control("drop", {{"resource", "pods"}});
    ASSERT_TRUE(eventually([&] { return watchCount("pods") > before; }));
    auto watches = server_.stats()["watches"]["pods"];
    EXPECT_EQ(watches[before]["resourceVersion"], std::to_string(bookmark_rv));
    EXPECT_EQ(listCount("pods"), 1u);  // resumed, not relisted
}

TEST_F(K8sClient, ReconnectsAfterDropMidEvent) {
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchOpen("pods"); }));
    auto before = watchCount("pods");

    // The next event is cut in the middle, then the connection dies: the half line must
    // not be applied; the reconnect from the last complete resourceVersion delivers it.
    server_.control("drop", {{"resource", "pods"}, {"partial", true}});
    upsertPod(podObj("late", "10.244.0.50"));
    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.50")).has_value(); }));
    EXPECT_GT(watchCount("pods"), before);
    EXPECT_EQ(listCount("pods"), 1u);
    EXPECT_GE(c->podStatus().failures, 1u);

    // Injected server errors: backoff, then recovery.
    server_.control("fail", {{"resource", "pods"}, {"status", 500}, {"count", 3}});
    server_.control("drop", {{"resource", "pods"}});
    upsertPod(podObj("later", "10.244.0.51"));
    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.51")).has_value(); }));
    EXPECT_NE(c->podStatus().last_error.find("500"), std::string::npos);
}

TEST_F(K8sClient, CleanWatchEndResumesWithoutRelist) {
    auto c = makeClient("token", 500, 1s);  // the server ends each watch after 1 s
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchCount("pods") >= 3; }));
    EXPECT_EQ(listCount("pods"), 1u);
    EXPECT_EQ(c->podStatus().failures, 0u);
    upsertPod(podObj("x", "10.244.0.60"));
    ASSERT_TRUE(eventually([&] { return c->podByIp(*parseAddr("10.244.0.60")).has_value(); }));
}

TEST_F(K8sClient, ChurnKeepsMemoryFlat) {
    upsertPod(podObj("stable", "10.244.0.2"));
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    // Readers keep looking up while the watch thread applies the churn.
    std::atomic<bool> reading{true};
    std::atomic<std::uint64_t> lookups{0};
    std::thread reader([&] {
        auto stable = *parseAddr("10.244.0.2");
        while (reading) {
            if (!c->podByIp(stable)) ADD_FAILURE() << "stable pod missing during churn";
            (void)c->podByContainerId(std::string(64, 'c'));
            ++lookups;
        }
    });
    for (int round = 0; round < 3; ++round) {
        for (int i = 0; i < 60; ++i) {
            char cid[65];
            std::snprintf(cid, sizeof cid, "%064x", round * 1000 + i);
            upsertPod(podObj("churn-" + std::to_string(i), "10.245." + std::to_string(round) + "." + std::to_string(i + 1),
                             "node-a", cid));
        }
        ASSERT_TRUE(eventually([&] { return c->pods().sizes().pods == 61; })) << c->pods().sizes().pods;
        for (int i = 0; i < 60; ++i) deletePod("churn-" + std::to_string(i));
        ASSERT_TRUE(eventually([&] { return c->pods().sizes().pods == 1; })) << c->pods().sizes().pods;
        auto s = c->pods().sizes();
        EXPECT_EQ(s.ips, 1u);
        EXPECT_EQ(s.container_ids, 1u);
    }
    reading = false;
    reader.join();
    EXPECT_GT(lookups.load(), 1000u);
    EXPECT_EQ(listCount("pods"), 1u);
}

TEST_F(K8sClient, ClientCertificateAuth) {
    upsertPod(podObj("a", "10.244.0.1"));
    auto c = makeClient("cert");
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s)) << c->podStatus().last_error;
    EXPECT_TRUE(c->podByUid("uid-a"));
    EXPECT_EQ(server_.stats()["unauthorized"], 0);
}

TEST_F(K8sClient, BadTokenFailsQuietlyAndStopsPromptly) {
    auto c = makeClient("bad-token");
    ASSERT_TRUE(c);
    c->start();
    EXPECT_FALSE(c->waitSynced(1s));
    ASSERT_TRUE(eventually([&] { return c->podStatus().failures >= 2; }));
    EXPECT_NE(c->podStatus().last_error.find("401"), std::string::npos);
    auto t0 = std::chrono::steady_clock::now();
    c->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
}

TEST_F(K8sClient, InClusterServiceAccountWithRotatedToken) {
    // A service-account directory as the kubelet mounts it.
    fs::path sa = server_.dir() / "serviceaccount";
    fs::create_directories(sa);
    fs::copy_file(server_.dir() / "ca.crt", sa / "ca.crt");
    std::ofstream(sa / "token") << kToken;
    auto cfg = inClusterConfig("127.0.0.1", std::to_string(server_.port()), sa);
    ASSERT_TRUE(cfg) << cfg.error().what();
    ClientOptions o;
    o.cluster = *cfg;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    o.watch_services = false;
    o.watch_endpointslices = false;
    upsertPod(podObj("a", "10.244.0.1"));
    Client c(o);
    c.start();
    ASSERT_TRUE(c.waitSynced(10s)) << c.podStatus().last_error;
    ASSERT_TRUE(eventually([&] { return watchOpen("pods"); }));

    // The token file is read for each request: a revoked token fails, the rotated one works.
    std::ofstream(sa / "token", std::ios::trunc) << "revoked";
    server_.control("drop", {{"resource", "pods"}});
    ASSERT_TRUE(eventually([&] { return c.podStatus().last_error.find("401") != std::string::npos; }));
    std::ofstream(sa / "token", std::ios::trunc) << kToken << "\n";
    upsertPod(podObj("b", "10.244.0.2"));
    ASSERT_TRUE(eventually([&] { return c.podByUid("uid-b").has_value(); }));
    EXPECT_FALSE(c.serviceStatus());
    c.stop();
}

TEST_F(K8sClient, OnlyTheConfiguredCaIsTrusted) {
    auto c = makeClient("wrong-ca");
    ASSERT_TRUE(c);
    c->start();
    EXPECT_FALSE(c->waitSynced(1s));
    ASSERT_TRUE(eventually([&] { return c->podStatus().failures >= 1; }));
    EXPECT_NE(c->podStatus().last_error.find("SSL"), std::string::npos) << c->podStatus().last_error;
    EXPECT_TRUE(server_.stats()["lists"]["pods"].empty());
}

TEST_F(K8sClient, StopInterruptsAnIdleWatch) {
    auto c = makeClient();
    ASSERT_TRUE(c);
    c->start();
    ASSERT_TRUE(c->waitSynced(10s));
    ASSERT_TRUE(eventually([&] { return watchOpen("pods") && watchOpen("services"); }));
    auto t0 = std::chrono::steady_clock::now();
    c->stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
    // lookups still work after stop (the stores stay)
    EXPECT_EQ(c->pods().sizes().pods, 0u);
}

TEST(K8sClientNoServer, UnreachableServerNeverBlocksTheCaller) {
    ClientOptions o;
    o.cluster.host = "127.0.0.1";
    o.cluster.port = 1;  // nothing listens
    o.cluster.insecure_skip_tls_verify = true;
    o.backoff_initial = 50ms;
    o.backoff_max = 200ms;
    Client c(o);
    auto t0 = std::chrono::steady_clock::now();
    c.start();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 200ms);
    EXPECT_FALSE(c.podByIp(*parseAddr("10.0.0.1")));
    ASSERT_TRUE(eventually([&] { return c.podStatus().failures >= 3; }));
    EXPECT_FALSE(c.podStatus().synced);
    t0 = std::chrono::steady_clock::now();
    c.stop();
    EXPECT_LT(std::chrono::steady_clock::now() - t0, 1s);
}
