// OpenSSL server contexts from the exporter-toolkit tls_server_config.
#pragma once

#include <openssl/ssl.h>

#include <memory>

#include <netprobe/http/web_config.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::http {

struct SslCtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
};
using SslCtx = std::unique_ptr<SSL_CTX, SslCtxFree>;

struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
};
using Ssl = std::unique_ptr<SSL, SslFree>;

// Loads the certificate chain, key and client CAs now (errors name the file and the
// reason) and sets versions, cipher suites, curves and the client certificate policy.
[[nodiscard]] Result<SslCtx> makeServerContext(const TlsServerConfig& cfg);

// The last OpenSSL error of this thread as text (and clears the queue).
[[nodiscard]] std::string sslErrorText();

}  // namespace netprobe::http
