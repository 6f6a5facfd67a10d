// Where the Kubernetes API is and how to authenticate: in-cluster (service account) or a
// kubeconfig file (current-context).
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include <netprobe/util/error.hpp>

namespace netprobe::k8s {

struct ClusterConfig {
    std::string scheme = "https";  // "https" or "http"
    std::string host;              // without brackets for IPv6
    int port = 443;
    std::string ca_pem;            // trusted CA bundle (PEM); empty: system store
    std::string token;             // bearer token
    std::string token_file;        // re-read before each request when set (rotated tokens)
    std::string client_cert_pem, client_key_pem;
    bool insecure_skip_tls_verify = false;
};

// "https://host:port" / "https://[::1]:6443" / "http://host"; errors name the problem.
[[nodiscard]] Result<ClusterConfig> parseServerUrl(std::string_view url);

// A kubeconfig document: current-context -> cluster (server, certificate-authority(-data),
// insecure-skip-tls-verify) and user (token, tokenFile, client-certificate(-data),
// client-key(-data)). Relative file paths are resolved against base_dir (the kubeconfig's
// directory) and the files are read now.
[[nodiscard]] Result<ClusterConfig> parseKubeconfig(std::string_view yaml_text, const std::filesystem::path& base_dir);
[[nodiscard]] Result<ClusterConfig> loadKubeconfig(const std::filesystem::path& path);

// In-cluster: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT, sa_dir/token
// (re-read per request) and sa_dir/ca.crt.
inline constexpr std::string_view kServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount";
[[nodiscard]] Result<ClusterConfig> inClusterConfig(std::string_view service_host, std::string_view service_port,
                                                    const std::filesystem::path& sa_dir);
// inClusterConfig from the environment and kServiceAccountDir.
[[nodiscard]] Result<ClusterConfig> inClusterConfigFromEnv();

// Reads a whole file of at most max_bytes (a device or a huge file is an error, not a
// hang); the error names the file.
[[nodiscard]] Result<std::string> readFile(const std::filesystem::path& path, std::size_t max_bytes = 4u << 20);

}  // namespace netprobe::k8s
