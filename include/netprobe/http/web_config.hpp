// The web configuration of the HTTP server, in the format of the Prometheus
// exporter-toolkit (--web.config.file of Prometheus, node_exporter and the other
// exporters), so an operator can reuse the file they already have:
//
//   tls_server_config:
//     cert_file: server.crt          # relative paths: to the config file's directory
//     key_file: server.key
//     client_auth_type: RequireAndVerifyClientCert
//     client_ca_file: ca.crt
//     min_version: TLS12
//     cipher_suites: [TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256]
//   http_server_config:
//     headers: {Strict-Transport-Security: max-age=31536000}
//   basic_auth_users:
//     alice: $2y$10$...              # bcrypt
//   rate_limit: {interval: 1s, burst: 20}
//
// Parsing is pure (no file is opened but the config itself); errors name the line,
// the key and the reason.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <netprobe/util/error.hpp>

namespace netprobe::http {

enum class ClientAuth { NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven,
                        RequireAndVerifyClientCert };
[[nodiscard]] const char* toString(ClientAuth a);

struct TlsServerConfig {
    std::string cert_file, key_file;  // absolute (resolved against the config's directory)
    std::string cert_pem, key_pem;    // inline alternatives (cert: / key:)
    ClientAuth client_auth = ClientAuth::NoClientCert;
    std::string client_ca_file;
    int min_version = 0x0303;  // TLS 1.2 (wire version)
    int max_version = 0x0304;  // TLS 1.3
    std::vector<std::string> cipher_suites;  // OpenSSL names of the Go names given (TLS <= 1.2)
    bool prefer_server_cipher_suites = true;
    std::vector<std::string> curves;  // OpenSSL group names ("P-256", "X25519")
};

struct WebConfig {
    std::optional<TlsServerConfig> tls;
    std::map<std::string, std::string> basic_auth_users;  // user -> bcrypt hash
    std::vector<std::pair<std::string, std::string>> headers;  // added to every response
    // Token bucket over all requests: interval between two requests (0: off) and burst.
    std::chrono::nanoseconds rate_interval{0};
    std::uint32_t rate_burst = 0;
    std::string source;  // the file it came from ("" when parsed from text)
};

// Parses the YAML text of a web configuration; relative file names are resolved
// against base_dir. Errors: "line 3: tls_server_config.client_auth_type: unknown
// value \"Maybe\" (NoClientCert, ...)".
[[nodiscard]] Result<WebConfig> parseWebConfig(std::string_view yaml, const std::string& base_dir = ".");
[[nodiscard]] Result<WebConfig> loadWebConfig(const std::string& path);

// The web configuration file and the files it names (certificate, key, client CA).
// changed() tells when any of them changed on disk (inode, size or mtime: a
// Kubernetes Secret volume's atomic symlink swap included).
class WebConfigFile {
public:
    explicit WebConfigFile(std::string path) : path_(std::move(path)) {}
    // Reads and parses the file; remembers the stamps of it and the files it names
    // (also on failure, so a broken file is reported once, not on every check).
    [[nodiscard]] Result<WebConfig> load();
    [[nodiscard]] bool changed() const;
    [[nodiscard]] const std::string& path() const { return path_; }

private:
    struct Stamp {
        bool exists = false;
        std::uint64_t dev = 0, ino = 0, size = 0;
        std::int64_t mtime_ns = 0;
        bool operator==(const Stamp&) const = default;
    };
    static Stamp stampOf(const std::string& file);
    std::string path_;
    std::vector<std::pair<std::string, Stamp>> stamps_;
};

// A bcrypt hash as basic_auth_users holds it ($2a$, $2b$ or $2y$, cost 04-31, 60 chars).
[[nodiscard]] bool isBcryptHash(std::string_view h);

}  // namespace netprobe::http
