// The exporter-toolkit web configuration: YAML -> WebConfig, line-numbered errors.
#include "netprobe/http/web_config.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include <sys/stat.h>

#include <netprobe/util/duration.hpp>

namespace netprobe::http {

namespace {

// Go's names of the TLS <= 1.2 cipher suites (crypto/tls) -> OpenSSL's.
constexpr std::pair<std::string_view, std::string_view> kCiphers[] = {
    {"TLS_RSA_WITH_AES_128_CBC_SHA", "AES128-SHA"},
    {"TLS_RSA_WITH_AES_256_CBC_SHA", "AES256-SHA"},
    {"TLS_RSA_WITH_AES_128_CBC_SHA256", "AES128-SHA256"},
    {"TLS_RSA_WITH_AES_128_GCM_SHA256", "AES128-GCM-SHA256"},
    {"TLS_RSA_WITH_AES_256_GCM_SHA384", "AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA", "ECDHE-ECDSA-AES128-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA", "ECDHE-ECDSA-AES256-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA", "ECDHE-RSA-AES128-SHA"},
    {"TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA", "ECDHE-RSA-AES256-SHA"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256", "ECDHE-ECDSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256", "ECDHE-RSA-AES128-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "ECDHE-RSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "ECDHE-ECDSA-AES128-GCM-SHA256"},
    {"TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "ECDHE-RSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "ECDHE-ECDSA-AES256-GCM-SHA384"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256", "ECDHE-ECDSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305", "ECDHE-RSA-CHACHA20-POLY1305"},
    {"TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305", "ECDHE-ECDSA-CHACHA20-POLY1305"},
};
// TLS 1.3 suites are not configurable (as in Go): accepted, no effect.
constexpr std::string_view kTls13[] = {"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384",
                                       "TLS_CHACHA20_POLY1305_SHA256"};
constexpr std::pair<std::string_view, std::string_view> kCurves[] = {
    {"CurveP256", "P-256"}, {"CurveP384", "P-384"}, {"CurveP521", "P-521"}, {"X25519", "X25519"}};
constexpr std::pair<std::string_view, int> kVersions[] = {
    {"TLS10", 0x0301}, {"TLS11", 0x0302}, {"TLS12", 0x0303}, {"TLS13", 0x0304}};
// The headers exporter-toolkit lets http_server_config.headers set.
constexpr std::string_view kHeaders[] = {"Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options",
                                         "X-XSS-Protection", "Strict-Transport-Security"};

struct ParseError {
    std::string msg;
};

[[noreturn]] void fail(const YAML::Node& n, const std::string& key, const std::string& why) {
    const int line = n.Mark().line >= 0 ? n.Mark().line + 1 : 0;
    throw ParseError{(line ? "line " + std::to_string(line) + ": " : std::string()) + key + ": " + why};
}

std::string scalar(const YAML::Node& n, const std::string& key) {
    if (!n.IsScalar()) fail(n, key, "expected a string");
    return n.Scalar();
}

bool boolean(const YAML::Node& n, const std::string& key) {
    const auto s = scalar(n, key);
    if (s == "true") return true;
    if (s == "false") return false;
    fail(n, key, "expected true or false, got \"" + s + "\"");
}

std::vector<std::string> list(const YAML::Node& n, const std::string& key) {
    if (n.IsNull()) return {};
    if (!n.IsSequence()) fail(n, key, "expected a list");
    std::vector<std::string> out;
    for (const auto& x : n) out.push_back(scalar(x, key));
    return out;
}

template <class Table>
auto lookup(const Table& table, std::string_view name) -> std::optional<std::decay_t<decltype(table[0].second)>> {
    for (const auto& [k, v] : table)
        if (k == name) return v;
    return std::nullopt;
}

template <class Table>
std::string names(const Table& table) {
    std::string out;
    for (const auto& e : table) {
        if constexpr (requires { e.first; }) out += (out.empty() ? "" : ", ") + std::string(e.first);
        else out += (out.empty() ? "" : ", ") + std::string(e);
    }
    return out;
}

// Calls fn(key, value) for every key of a map node; unknown keys are errors.
void forKeys(const YAML::Node& n, const std::string& where,
             const std::map<std::string, std::function<void(const YAML::Node&, const std::string&)>>& known) {
    if (n.IsNull()) return;
    if (!n.IsMap()) fail(n, where, "expected a mapping");
    for (const auto& kv : n) {
        const std::string k = kv.first.as<std::string>();
        const std::string path = where.empty() ? k : where + "." + k;
        auto it = known.find(k);
        if (it == known.end()) {
            std::string keys;
            for (const auto& [name, _] : known) keys += (keys.empty() ? "" : ", ") + name;
            fail(kv.first, path, "unknown key (known: " + keys + ")");
        }
        it->second(kv.second, path);
    }
}

std::string resolve(const std::string& base, const std::string& file) {
    if (file.empty() || file.front() == '/') return file;
    return (std::filesystem::path(base) / file).lexically_normal().string();
}

TlsServerConfig parseTls(const YAML::Node& n, const std::string& base) {
    TlsServerConfig t;
    const std::string w = "tls_server_config";
    forKeys(n, w, {
        {"cert_file", [&](const YAML::Node& v, const std::string& p) { t.cert_file = resolve(base, scalar(v, p)); }},
        {"key_file", [&](const YAML::Node& v, const std::string& p) { t.key_file = resolve(base, scalar(v, p)); }},
        {"cert", [&](const YAML::Node& v, const std::string& p) { t.cert_pem = scalar(v, p); }},
        {"key", [&](const YAML::Node& v, const std::string& p) { t.key_pem = scalar(v, p); }},
        {"client_ca_file", [&](const YAML::Node& v, const std::string& p) { t.client_ca_file = resolve(base, scalar(v, p)); }},
        {"client_auth_type", [&](const YAML::Node& v, const std::string& p) {
             const auto s = scalar(v, p);
             for (auto a : {ClientAuth::NoClientCert, ClientAuth::RequestClientCert, ClientAuth::RequireAnyClientCert,
                            ClientAuth::VerifyClientCertIfGiven, ClientAuth::RequireAndVerifyClientCert})
                 if (s == toString(a)) {
                     t.client_auth = a;
                     return;
                 }
             fail(v, p, "unknown value \"" + s + "\" (NoClientCert, RequestClientCert, RequireAnyClientCert, "
                        "VerifyClientCertIfGiven, RequireAndVerifyClientCert)");
         }},
        {"min_version", [&](const YAML::Node& v, const std::string& p) {
             auto x = lookup(kVersions, scalar(v, p));
             if (!x) fail(v, p, "unknown TLS version \"" + scalar(v, p) + "\" (" + names(kVersions) + ")");
             t.min_version = *x;
         }},
        {"max_version", [&](const YAML::Node& v, const std::string& p) {
             auto x = lookup(kVersions, scalar(v, p));
             if (!x) fail(v, p, "unknown TLS version \"" + scalar(v, p) + "\" (" + names(kVersions) + ")");
             t.max_version = *x;
         }},
        {"cipher_suites", [&](const YAML::Node& v, const std::string& p) {
             for (const auto& s : list(v, p)) {
                 if (auto o = lookup(kCiphers, s)) t.cipher_suites.emplace_back(*o);
                 else if (std::find(std::begin(kTls13), std::end(kTls13), s) == std::end(kTls13))
                     fail(v, p, "unknown cipher suite \"" + s + "\" (" + names(kCiphers) + ")");
             }
         }},
        {"prefer_server_cipher_suites",
         [&](const YAML::Node& v, const std::string& p) { t.prefer_server_cipher_suites = boolean(v, p); }},
        {"curve_preferences", [&](const YAML::Node& v, const std::string& p) {
             for (const auto& s : list(v, p)) {
                 auto o = lookup(kCurves, s);
                 if (!o) fail(v, p, "unknown curve \"" + s + "\" (" + names(kCurves) + ")");
                 t.curves.emplace_back(*o);
             }
         }},
    });
    if (t.cert_file.empty() && t.cert_pem.empty()) fail(n, w, "cert_file (or cert) is required");
    if (t.key_file.empty() && t.key_pem.empty()) fail(n, w, "key_file (or key) is required");
    if (!t.cert_file.empty() && !t.cert_pem.empty()) fail(n, w, "cert_file and cert are exclusive");
    if (!t.key_file.empty() && !t.key_pem.empty()) fail(n, w, "key_file and key are exclusive");
    if ((t.client_auth == ClientAuth::VerifyClientCertIfGiven || t.client_auth == ClientAuth::RequireAndVerifyClientCert) &&
        t.client_ca_file.empty())
        fail(n, w + ".client_ca_file", std::string("required with client_auth_type ") + toString(t.client_auth));
    if (t.min_version > t.max_version) fail(n, w + ".min_version", "above max_version");
    return t;
}

}  // namespace

const char* toString(ClientAuth a) {
    switch (a) {
        case ClientAuth::NoClientCert: return "NoClientCert";
        case ClientAuth::RequestClientCert: return "RequestClientCert";
        case ClientAuth::RequireAnyClientCert: return "RequireAnyClientCert";
        case ClientAuth::VerifyClientCertIfGiven: return "VerifyClientCertIfGiven";
        case ClientAuth::RequireAndVerifyClientCert: return "RequireAndVerifyClientCert";
    }
    return "NoClientCert";
}

bool isBcryptHash(std::string_view h) {
    if (h.size() != 60 || h[0] != '$' || h[1] != '2' || (h[2] != 'a' && h[2] != 'b' && h[2] != 'y') || h[3] != '$' ||
        h[6] != '$')
        return false;
    if (h[4] < '0' || h[4] > '3' || h[5] < '0' || h[5] > '9') return false;
    const int cost = (h[4] - '0') * 10 + (h[5] - '0');
    if (cost < 4 || cost > 31) return false;
    return std::all_of(h.begin() + 7, h.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '/';
    });
}

Result<WebConfig> parseWebConfig(std::string_view yaml, const std::string& base_dir) {
    WebConfig cfg;
    try {
        const YAML::Node root = YAML::Load(std::string(yaml));
        forKeys(root, "", {
            {"tls_server_config", [&](const YAML::Node& v, const std::string&) { cfg.tls = parseTls(v, base_dir); }},
            {"http_server_config", [&](const YAML::Node& v, const std::string& p) {
                 forKeys(v, p, {
                     {"http2", [](const YAML::Node& x, const std::string& q) { (void)boolean(x, q); }},  // HTTP/1.1 only
                     {"headers", [&](const YAML::Node& x, const std::string& q) {
                          forKeys(x, q, [&] {
                              std::map<std::string, std::function<void(const YAML::Node&, const std::string&)>> m;
                              for (auto h : kHeaders)
                                  m.emplace(std::string(h), [&cfg, name = std::string(h)](const YAML::Node& y,
                                                                                          const std::string& r) {
                                      const auto value = scalar(y, r);
                                      if (value.find_first_of("\r\n") != std::string::npos)
                                          fail(y, r, "a header value cannot contain a line break");
                                      cfg.headers.emplace_back(name, value);
                                  });
                              return m;
                          }());
                      }},
                 });
             }},
            {"basic_auth_users", [&](const YAML::Node& v, const std::string& p) {
                 if (v.IsNull()) return;
                 if (!v.IsMap()) fail(v, p, "expected a mapping of user names to bcrypt hashes");
                 for (const auto& kv : v) {
                     const auto user = kv.first.as<std::string>();
                     const auto hash = scalar(kv.second, p + "." + user);
                     if (user.empty() || user.find(':') != std::string::npos)
                         fail(kv.first, p, "user name \"" + user + "\" is empty or contains ':'");
                     if (!isBcryptHash(hash))
                         fail(kv.second, p + "." + user, "not a bcrypt hash ($2y$10$... as htpasswd -nbB makes)");
                     cfg.basic_auth_users[user] = hash;
                 }
             }},
            {"rate_limit", [&](const YAML::Node& v, const std::string& p) {
                 forKeys(v, p, {
                     {"interval", [&](const YAML::Node& x, const std::string& q) {
                          auto d = util::parseDuration(scalar(x, q));
                          if (!d) fail(x, q, d.error());
                          cfg.rate_interval = *d;
                      }},
                     {"burst", [&](const YAML::Node& x, const std::string& q) {
                          const auto s = scalar(x, q);
                          std::size_t used = 0;
                          long n = -1;
                          try {
                              n = std::stol(s, &used);
                          } catch (...) {
                          }
                          if (used != s.size() || n < 0 || n > 1000000) fail(x, q, "expected an integer 0-1000000");
                          cfg.rate_burst = static_cast<std::uint32_t>(n);
                      }},
                 });
             }},
        });
    } catch (const ParseError& e) {
        return std::unexpected(makeError(e.msg));
    } catch (const YAML::Exception& e) {
        return std::unexpected(makeError("line " + std::to_string(e.mark.line + 1) + ": " + e.msg));
    }
    return cfg;
}

Result<WebConfig> loadWebConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) return std::unexpected(errnoError(errno, "read web config " + path));
    std::stringstream ss;
    ss << in.rdbuf();
    auto dir = std::filesystem::path(path).parent_path().string();
    auto cfg = parseWebConfig(ss.str(), dir.empty() ? "." : dir);
    if (!cfg) return std::unexpected(makeError(path + ": " + cfg.error().what()));
    cfg->source = path;
    return cfg;
}

WebConfigFile::Stamp WebConfigFile::stampOf(const std::string& file) {
    struct stat st{};
    if (::stat(file.c_str(), &st) != 0) return {};
    return Stamp{true, static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
                 static_cast<std::uint64_t>(st.st_size), st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec};
}

Result<WebConfig> WebConfigFile::load() {
    std::vector<std::pair<std::string, Stamp>> stamps{{path_, stampOf(path_)}};
    auto cfg = loadWebConfig(path_);
    if (cfg && cfg->tls) {
        for (const auto* f : {&cfg->tls->cert_file, &cfg->tls->key_file, &cfg->tls->client_ca_file})
            if (!f->empty()) stamps.emplace_back(*f, stampOf(*f));
    } else if (!cfg) {
        // Keep watching what the previous good configuration named, too.
        for (std::size_t i = 1; i < stamps_.size(); ++i) stamps.emplace_back(stamps_[i].first, stampOf(stamps_[i].first));
    }
    stamps_ = std::move(stamps);
    return cfg;
}

bool WebConfigFile::changed() const {
    if (stamps_.empty()) return true;
    for (const auto& [file, stamp] : stamps_)
        if (stampOf(file) != stamp) return true;
    return false;
}

}  // namespace netprobe::http
