#include "http/tls.hpp"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <cstring>

namespace netprobe::http {

namespace {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};

Error sslError(const std::string& what) {
    const auto text = sslErrorText();
    return makeError(what + (text.empty() ? std::string() : ": " + text));
}

// Accepts any client certificate (RequestClientCert, RequireAnyClientCert: presence,
// not validity, is the policy, as in Go's crypto/tls).
int acceptAny(int, X509_STORE_CTX*) { return 1; }

// Only HTTP/1.1 is spoken: select it when the client offers it, else no ALPN.
int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen, void*) {
    for (unsigned int i = 0; i < inlen;) {
        const unsigned int n = in[i];
        if (i + 1 + n > inlen) break;
        if (n == 8 && std::memcmp(in + i + 1, "http/1.1", 8) == 0) {
            *out = in + i + 1;
            *outlen = static_cast<unsigned char>(n);
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_NOACK;
}

Result<void> useCertificate(SSL_CTX* ctx, const TlsServerConfig& c) {
    if (!c.cert_file.empty()) {
        if (SSL_CTX_use_certificate_chain_file(ctx, c.cert_file.c_str()) != 1)
            return std::unexpected(sslError("tls_server_config.cert_file " + c.cert_file));
        return {};
    }
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(c.cert_pem.data(), static_cast<int>(c.cert_pem.size())));
    std::unique_ptr<X509, X509Free> leaf(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
    if (!leaf || SSL_CTX_use_certificate(ctx, leaf.get()) != 1)
        return std::unexpected(sslError("tls_server_config.cert: not a PEM certificate"));
    // The rest of the inline PEM is the chain.
    while (X509* extra = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, extra) != 1) {
            X509_free(extra);
            return std::unexpected(sslError("tls_server_config.cert: chain certificate"));
        }
    }
    ERR_clear_error();  // the end of the PEM data
    return {};
}

Result<void> useKey(SSL_CTX* ctx, const TlsServerConfig& c) {
    if (!c.key_file.empty()) {
        if (SSL_CTX_use_PrivateKey_file(ctx, c.key_file.c_str(), SSL_FILETYPE_PEM) != 1)
            return std::unexpected(sslError("tls_server_config.key_file " + c.key_file));
    } else {
        std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(c.key_pem.data(), static_cast<int>(c.key_pem.size())));
        std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
        if (!key || SSL_CTX_use_PrivateKey(ctx, key.get()) != 1)
            return std::unexpected(sslError("tls_server_config.key: not a PEM private key"));
    }
    if (SSL_CTX_check_private_key(ctx) != 1)
        return std::unexpected(sslError("tls_server_config: the key does not match the certificate"));
    return {};
}

}  // namespace

std::string sslErrorText() {
    std::string out;
    while (unsigned long e = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        // "error:0480006C:PEM routines::no start line" -> "PEM routines::no start line"
        std::string s(buf);
        if (auto p = s.find(':', s.find(':') + 1); s.starts_with("error:") && p != std::string::npos) s = s.substr(p + 1);
        out = s;  // the last one is the most specific
    }
    return out;
}

Result<SslCtx> makeServerContext(const TlsServerConfig& c) {
    ERR_clear_error();
    SslCtx ctx(SSL_CTX_new(TLS_server_method()));
    if (!ctx) return std::unexpected(sslError("SSL_CTX_new"));
    SSL_CTX* x = ctx.get();
    SSL_CTX_set_min_proto_version(x, c.min_version);
    SSL_CTX_set_max_proto_version(x, c.max_version);
    SSL_CTX_set_options(x, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                               (c.prefer_server_cipher_suites ? SSL_OP_CIPHER_SERVER_PREFERENCE : 0));
    SSL_CTX_set_mode(x, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    if (!c.cipher_suites.empty()) {
        std::string list;
        for (const auto& s : c.cipher_suites) list += (list.empty() ? "" : ":") + s;
        if (SSL_CTX_set_cipher_list(x, list.c_str()) != 1)
            return std::unexpected(sslError("tls_server_config.cipher_suites"));
    }
    if (!c.curves.empty()) {
        std::string list;
        for (const auto& s : c.curves) list += (list.empty() ? "" : ":") + s;
        if (SSL_CTX_set1_groups_list(x, list.c_str()) != 1)
            return std::unexpected(sslError("tls_server_config.curve_preferences"));
    }
    if (auto r = useCertificate(x, c); !r) return std::unexpected(r.error());
    if (auto r = useKey(x, c); !r) return std::unexpected(r.error());

    int mode = SSL_VERIFY_NONE;
    SSL_verify_cb cb = nullptr;
    switch (c.client_auth) {
        case ClientAuth::NoClientCert: break;
        case ClientAuth::RequestClientCert: mode = SSL_VERIFY_PEER; cb = acceptAny; break;
        case ClientAuth::RequireAnyClientCert: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; cb = acceptAny; break;
        case ClientAuth::VerifyClientCertIfGiven: mode = SSL_VERIFY_PEER; break;
        case ClientAuth::RequireAndVerifyClientCert: mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT; break;
    }
    if (!c.client_ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(x, c.client_ca_file.c_str(), nullptr) != 1)
            return std::unexpected(sslError("tls_server_config.client_ca_file " + c.client_ca_file));
        STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(c.client_ca_file.c_str());
        if (names == nullptr) return std::unexpected(sslError("tls_server_config.client_ca_file " + c.client_ca_file));
        SSL_CTX_set_client_CA_list(x, names);
    }
    SSL_CTX_set_verify(x, mode, cb);
    // A session id context is required once client certificates are verified and
    // sessions may be resumed.
    static constexpr unsigned char kSid[] = "netprobe";
    SSL_CTX_set_session_id_context(x, kSid, sizeof kSid - 1);
    SSL_CTX_set_alpn_select_cb(x, selectAlpn, nullptr);
    return ctx;
}

}  // namespace netprobe::http
