#include <netprobe/k8s/config.hpp>

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <yaml-cpp/yaml.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace netprobe::k8s {

Result<std::string> readFile(const std::filesystem::path& path, std::size_t max_bytes) {
    std::error_code ec;
    const auto st = std::filesystem::status(path, ec);
    if (ec) return std::unexpected(errnoError(ec.value(), "read " + path.string()));
    if (st.type() != std::filesystem::file_type::regular)
        return std::unexpected(makeError("read " + path.string() + ": not a regular file"));
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::unexpected(errnoError(errno ? errno : ENOENT, "read " + path.string()));
    // Bounded: a path to a device or a huge file is an error, not a hang.
    std::string out;
    char buf[65536];
    while (in.read(buf, sizeof buf) || in.gcount() > 0) {
        out.append(buf, static_cast<std::size_t>(in.gcount()));
        if (out.size() > max_bytes)
            return std::unexpected(makeError("read " + path.string() + ": larger than " + std::to_string(max_bytes) + " bytes"));
    }
    if (in.bad()) return std::unexpected(errnoError(errno ? errno : EIO, "read " + path.string()));
    return out;
}

namespace {

Result<std::string> base64Decode(std::string_view in, std::string_view what) {
    std::string clean;
    clean.reserve(in.size());
    for (char c : in)
        if (c != '\n' && c != '\r' && c != ' ' && c != '\t') clean.push_back(c);
    if (clean.size() % 4 != 0) return std::unexpected(makeError(std::string(what) + ": invalid base64"));
    std::string out(clean.size() / 4 * 3, '\0');
    int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(clean.data()), static_cast<int>(clean.size()));
    if (n < 0) return std::unexpected(makeError(std::string(what) + ": invalid base64"));
    // EVP_DecodeBlock counts the padding as zero bytes.
    std::size_t pad = 0;
    if (!clean.empty() && clean.back() == '=') ++pad;
    if (clean.size() > 1 && clean[clean.size() - 2] == '=') ++pad;
    out.resize(static_cast<std::size_t>(n) - pad);
    return out;
}

// The entry named `name` in a kubeconfig list ("clusters", "users", "contexts").
Result<YAML::Node> namedEntry(const YAML::Node& root, const char* list, const std::string& name, const char* field) {
    YAML::Node l = root[list];
    if (l && l.IsSequence()) {
        for (const auto& e : l) {
            if (e["name"] && e["name"].as<std::string>() == name) {
                YAML::Node body = e[field];
                if (!body || !body.IsMap())
                    return std::unexpected(makeError(std::string("kubeconfig: ") + list + " entry \"" + name +
                                                     "\" has no " + field));
                return body;
            }
        }
    }
    return std::unexpected(makeError(std::string("kubeconfig: no ") + field + " named \"" + name + "\" in " + list));
}

std::string scalar(const YAML::Node& n, const char* key) {
    YAML::Node v = n[key];
    if (!v || !v.IsScalar()) return {};
    return v.as<std::string>();
}

// PEM from "<key>-data" (base64) or "<key>" (a file path).
Result<std::string> pemFrom(const YAML::Node& n, const std::string& key, const std::filesystem::path& base) {
    if (auto data = scalar(n, (key + "-data").c_str()); !data.empty()) return base64Decode(data, key + "-data");
    if (auto file = scalar(n, key.c_str()); !file.empty()) {
        std::filesystem::path p(file);
        if (p.is_relative()) p = base / p;
        auto text = readFile(p);
        if (!text) return std::unexpected(makeError("kubeconfig " + key + ": " + text.error().what()));
        return text;
    }
    return std::string();
}

}  // namespace

Result<ClusterConfig> parseServerUrl(std::string_view url) {
    ClusterConfig c;
    std::string_view rest = url;
    if (rest.starts_with("https://")) {
        rest.remove_prefix(8);
    } else if (rest.starts_with("http://")) {
        c.scheme = "http";
        c.port = 80;
        rest.remove_prefix(7);
    } else {
        return std::unexpected(makeError("server URL \"" + std::string(url) + "\" is not http:// or https://"));
    }
    if (auto slash = rest.find('/'); slash != std::string_view::npos) {
        if (rest.substr(slash) != "/")
            return std::unexpected(makeError("server URL \"" + std::string(url) + "\": a path prefix is not supported"));
        rest = rest.substr(0, slash);
    }
    std::string_view port_text;
    if (rest.starts_with("[")) {
        auto close = rest.find(']');
        if (close == std::string_view::npos) return std::unexpected(makeError("server URL \"" + std::string(url) + "\": unclosed ["));
        c.host = std::string(rest.substr(1, close - 1));
        rest.remove_prefix(close + 1);
        if (rest.starts_with(":")) port_text = rest.substr(1);
        else if (!rest.empty()) return std::unexpected(makeError("server URL \"" + std::string(url) + "\": bad host"));
    } else {
        auto colon = rest.rfind(':');
        if (colon != std::string_view::npos) {
            port_text = rest.substr(colon + 1);
            rest = rest.substr(0, colon);
        }
        c.host = std::string(rest);
    }
    if (c.host.empty()) return std::unexpected(makeError("server URL \"" + std::string(url) + "\" has no host"));
    if (!port_text.empty()) {
        int p = 0;
        auto [ptr, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), p);
        if (ec != std::errc{} || ptr != port_text.data() + port_text.size() || p <= 0 || p > 65535)
            return std::unexpected(makeError("server URL \"" + std::string(url) + "\": bad port"));
        c.port = p;
    }
    return c;
}

Result<ClusterConfig> parseKubeconfig(std::string_view yaml_text, const std::filesystem::path& base_dir) {
    YAML::Node root;
    try {
        root = YAML::Load(std::string(yaml_text));
    } catch (const YAML::Exception& e) {
        return std::unexpected(makeError(std::string("kubeconfig: invalid YAML: ") + e.what()));
    }
    try {
        if (!root || !root.IsMap()) return std::unexpected(makeError("kubeconfig: not a YAML mapping"));
        std::string ctx_name = scalar(root, "current-context");
        if (ctx_name.empty()) return std::unexpected(makeError("kubeconfig: no current-context"));
        auto ctx = namedEntry(root, "contexts", ctx_name, "context");
        if (!ctx) return std::unexpected(ctx.error());
        std::string cluster_name = scalar(*ctx, "cluster");
        if (cluster_name.empty())
            return std::unexpected(makeError("kubeconfig: context \"" + ctx_name + "\" names no cluster"));
        auto cluster = namedEntry(root, "clusters", cluster_name, "cluster");
        if (!cluster) return std::unexpected(cluster.error());
        std::string server = scalar(*cluster, "server");
        if (server.empty()) return std::unexpected(makeError("kubeconfig: cluster \"" + cluster_name + "\" has no server"));
        auto cfg = parseServerUrl(server);
        if (!cfg) return std::unexpected(makeError("kubeconfig: cluster \"" + cluster_name + "\": " + cfg.error().what()));
        if (auto skip = scalar(*cluster, "insecure-skip-tls-verify"); skip == "true") cfg->insecure_skip_tls_verify = true;
        auto ca = pemFrom(*cluster, "certificate-authority", base_dir);
        if (!ca) return std::unexpected(ca.error());
        cfg->ca_pem = std::move(*ca);

        std::string user_name = scalar(*ctx, "user");
        if (!user_name.empty()) {
            auto user = namedEntry(root, "users", user_name, "user");
            if (!user) return std::unexpected(user.error());
            cfg->token = scalar(*user, "token");
            if (auto tf = scalar(*user, "tokenFile"); !tf.empty() && cfg->token.empty()) {
                std::filesystem::path p(tf);
                if (p.is_relative()) p = base_dir / p;
                cfg->token_file = p.string();
            }
            auto cert = pemFrom(*user, "client-certificate", base_dir);
            if (!cert) return std::unexpected(cert.error());
            auto key = pemFrom(*user, "client-key", base_dir);
            if (!key) return std::unexpected(key.error());
            if (cert->empty() != key->empty())
                return std::unexpected(makeError("kubeconfig: user \"" + user_name +
                                                 "\" has a client certificate without a key or a key without a certificate"));
            cfg->client_cert_pem = std::move(*cert);
            cfg->client_key_pem = std::move(*key);
            if ((*user)["exec"] || (*user)["auth-provider"]) {
                if (cfg->token.empty() && cfg->token_file.empty() && cfg->client_cert_pem.empty())
                    return std::unexpected(makeError("kubeconfig: user \"" + user_name +
                                                     "\" uses exec/auth-provider credentials, which are not supported"));
            }
        }
        return cfg;
    } catch (const YAML::Exception& e) {
        return std::unexpected(makeError(std::string("kubeconfig: ") + e.what()));
    }
}

Result<ClusterConfig> loadKubeconfig(const std::filesystem::path& path) {
    auto text = readFile(path);
    if (!text) return std::unexpected(makeError("kubeconfig: " + text.error().what()));
    auto cfg = parseKubeconfig(*text, path.parent_path());
    if (!cfg) return std::unexpected(makeError(cfg.error().what() + " (" + path.string() + ")"));
    return cfg;
}

Result<ClusterConfig> inClusterConfig(std::string_view service_host, std::string_view service_port,
                                      const std::filesystem::path& sa_dir) {
    if (service_host.empty() || service_port.empty())
        return std::unexpected(makeError("not in a cluster: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set"));
    std::string host(service_host);
    std::string url = "https://" + (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" +
                      std::string(service_port);
    auto cfg = parseServerUrl(url);
    if (!cfg) return std::unexpected(cfg.error());
    auto token = readFile(sa_dir / "token");
    if (!token) return std::unexpected(makeError("in-cluster service-account token: " + token.error().what()));
    cfg->token_file = (sa_dir / "token").string();
    auto ca = readFile(sa_dir / "ca.crt");
    if (!ca) return std::unexpected(makeError("in-cluster CA: " + ca.error().what()));
    cfg->ca_pem = std::move(*ca);
    return cfg;
}

Result<ClusterConfig> inClusterConfigFromEnv() {
    const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
    const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
    return inClusterConfig(host ? host : "", port ? port : "", std::filesystem::path(kServiceAccountDir));
}

}  // namespace netprobe::k8s
