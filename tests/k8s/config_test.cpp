// kubeconfig and in-cluster configuration.
#include <gtest/gtest.h>

#include <netprobe/k8s/config.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>

using namespace netprobe::k8s;
namespace fs = std::filesystem;

namespace {

class TempDir {
public:
    TempDir() {
        std::string tmpl = (fs::temp_directory_path() / "netprobe-k8s-cfg-XXXXXX").string();
        path_ = ::mkdtemp(tmpl.data()) ? fs::path(tmpl) : fs::path();
    }
    ~TempDir() {
        std::error_code ec;
        if (!path_.empty()) fs::remove_all(path_, ec);
    }
    const fs::path& path() const { return path_; }
    void write(const std::string& name, const std::string& text) const { std::ofstream(path_ / name) << text; }

private:
    fs::path path_;
};

// base64("-----BEGIN CERTIFICATE-----\nCA\n") etc. are not needed: the parser only decodes.
const char* kKubeconfig = R"(apiVersion: v1
kind: Config
current-context: dev
clusters:
- name: other
  cluster:
    server: https://10.0.0.1:6443
- name: local
  cluster:
    server: https://127.0.0.1:16443
    certificate-authority: ca.crt
contexts:
- name: prod
  context: {cluster: other, user: admin}
- name: dev
  context:
    cluster: local
    user: tester
    namespace: default
users:
- name: admin
  user: {token: admin-token}
- name: tester
  user:
    token: s3cret
)";

}  // namespace

TEST(ServerUrl, Forms) {
    auto c = parseServerUrl("https://10.96.0.1:443");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "10.96.0.1");
    EXPECT_EQ(c->port, 443);
    c = parseServerUrl("https://[fd00::1]:6443/");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->host, "fd00::1");
    EXPECT_EQ(c->port, 6443);
    c = parseServerUrl("http://localhost");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->scheme, "http");
    EXPECT_EQ(c->port, 80);
    c = parseServerUrl("https://api.example");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->port, 443);
    EXPECT_FALSE(parseServerUrl("ftp://x"));
    EXPECT_FALSE(parseServerUrl("https://:443"));
    EXPECT_FALSE(parseServerUrl("https://host:99999"));
    EXPECT_FALSE(parseServerUrl("https://host/prefix"));
}

TEST(Kubeconfig, CurrentContextClusterAndToken) {
    TempDir d;
    d.write("ca.crt", "CA PEM");
    auto c = parseKubeconfig(kKubeconfig, d.path());
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->host, "127.0.0.1");
    EXPECT_EQ(c->port, 16443);
    EXPECT_EQ(c->ca_pem, "CA PEM");  // relative path resolved against the kubeconfig's directory
    EXPECT_EQ(c->token, "s3cret");
    EXPECT_FALSE(c->insecure_skip_tls_verify);
}

TEST(Kubeconfig, InlineDataClientCertAndInsecure) {
    // "Q0EK" = "CA\n", "Q0VSVAo=" = "CERT\n", "S0VZ" = "KEY"
    const char* y = R"(current-context: c
clusters:
- name: k
  cluster: {server: "https://h:1", certificate-authority-data: Q0EK, insecure-skip-tls-verify: true}
contexts:
- name: c
  context: {cluster: k, user: u}
users:
- name: u
  user: {client-certificate-data: Q0VSVAo=, client-key-data: S0VZ}
)";
    auto c = parseKubeconfig(y, "/nonexistent");
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->ca_pem, "CA\n");
    EXPECT_EQ(c->client_cert_pem, "CERT\n");
    EXPECT_EQ(c->client_key_pem, "KEY");
    EXPECT_TRUE(c->insecure_skip_tls_verify);
    EXPECT_TRUE(c->token.empty());
}

TEST(Kubeconfig, ErrorsNameTheProblem) {
    auto has = [](const netprobe::Result<ClusterConfig>& r, const std::string& what) {
        return !r && r.error().what().find(what) != std::string::npos;
    };
    EXPECT_TRUE(has(parseKubeconfig("clusters: []\n", "/"), "current-context"));
    EXPECT_TRUE(has(parseKubeconfig("current-context: x\ncontexts: []\n", "/"), "\"x\""));
    EXPECT_TRUE(has(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n", "/"),
                    "cluster named \"k\""));
    EXPECT_TRUE(has(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
                                    "clusters: [{name: k, cluster: {certificate-authority: ca}}]\n",
                                    "/"),
                    "no server"));
    EXPECT_TRUE(has(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {cluster: k}}]\n"
                                    "clusters: [{name: k, cluster: {server: 'https://h', certificate-authority: /nonexistent/ca}}]\n",
                                    "/"),
                    "/nonexistent/ca"));
    EXPECT_TRUE(has(parseKubeconfig("current-context: x\ncontexts: [{name: x, context: {cluster: k, user: u}}]\n"
                                    "clusters: [{name: k, cluster: {server: 'https://h'}}]\n"
                                    "users: [{name: u, user: {client-certificate-data: Q0EK}}]\n",
                                    "/"),
                    "without a key"));
    EXPECT_TRUE(has(parseKubeconfig("{ not: yaml: [", "/"), "invalid YAML"));
    EXPECT_TRUE(has(loadKubeconfig("/nonexistent/kubeconfig"), "/nonexistent/kubeconfig"));
}

TEST(InCluster, ServiceAccountFiles) {
    TempDir d;
    d.write("token", "tok\n");
    d.write("ca.crt", "CA PEM");
    auto c = inClusterConfig("10.96.0.1", "443", d.path());
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->host, "10.96.0.1");
    EXPECT_EQ(c->port, 443);
    EXPECT_EQ(c->ca_pem, "CA PEM");
    EXPECT_EQ(c->token_file, (d.path() / "token").string());
    c = inClusterConfig("fd00::1", "6443", d.path());
    ASSERT_TRUE(c) << c.error().what();
    EXPECT_EQ(c->host, "fd00::1");
    auto none = inClusterConfig("", "", d.path());
    ASSERT_FALSE(none);
    EXPECT_NE(none.error().what().find("KUBERNETES_SERVICE_HOST"), std::string::npos);
    auto missing = inClusterConfig("10.96.0.1", "443", d.path() / "nope");
    ASSERT_FALSE(missing);
    EXPECT_NE(missing.error().what().find("token"), std::string::npos);
}
