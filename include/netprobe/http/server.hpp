// netprobe::http::Server - the agent's HTTP/1.1 server (TLS optional).
//
// One I/O thread multiplexes every connection with epoll: accepting, TLS handshakes,
// reading request heads and writing responses never hold a worker, so slow or idle
// clients cannot starve a scrape. A complete request goes to a small worker pool that
// checks basic auth (bcrypt, cached) and runs the handler; the response goes back to
// the I/O thread to be written.
//
// Bounded by construction:
//   - a timeout per phase: TLS handshake, request head (from its first byte; the first
//     request of a connection from the accept), keep-alive idle, response write;
//   - request line 8 KiB (414), header fields 16 KiB (431), no request bodies: any
//     Content-Length > 0 or Transfer-Encoding is answered 413 at once, unread;
//   - at most max_connections: a new connection beyond it evicts the connection that has
//     waited longest for its request (an idle or slow one), never one being answered.
// Only GET and HEAD are served (other methods: 405 with Allow).
//
// Streaming responses (server-sent events: http/stream.hpp): a handler returns a
// Response with a StreamChannel; the worker is free at once and the I/O thread writes
// what the channel's producer pushes, with heartbeats when idle, until the client goes,
// the producer closes it, its buffer limit is exceeded (SlowReader) or its socket stalls
// for write_timeout. Streams are never evicted for new connections; a web configuration
// change ends them (the client reconnects under the new one).
//
// The listener is bound with SO_REUSEADDR (a restart binds at once while connections
// of the previous process linger in TIME-WAIT/FIN-WAIT-2). The web configuration
// (TLS, basic auth, headers, rate limit) can be replaced while serving: new
// connections use the new one, idle connections of the old one are closed at once and
// busy ones after their current response (answered with the new users), the listener
// stays.
//
// Note for library users: SSL_write can raise SIGPIPE on a connection the peer reset;
// the agent ignores SIGPIPE, an embedding program should too.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <netprobe/http/message.hpp>
#include <netprobe/http/web_config.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::http {

struct ServerOptions {
    std::string name = "metrics";  // the listener's label in stats and logs
    std::string address = "0.0.0.0";  // an IPv4 or IPv6 literal ("::" listens on both)
    std::uint16_t port = 8081;         // 0: an ephemeral port (port() tells which)
    std::size_t max_connections = 512;
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds head_timeout{std::chrono::seconds(10)};
    std::chrono::milliseconds idle_timeout{std::chrono::seconds(120)};
    std::chrono::milliseconds write_timeout{std::chrono::seconds(30)};
    Limits limits;
    unsigned workers = 4;
    // Paths answered without basic auth (health probes: kubelet sends no credentials).
    std::vector<std::string> public_paths;
};

using Handler = std::function<Response(const Request&)>;

// Everything a server would do with the configuration short of serving: loads the
// certificate, key and client CAs (errors name the key, the file and the reason).
[[nodiscard]] Result<void> checkWebConfig(const WebConfig& web);

// Why connections were closed (netprobe_http_connections_closed_total{reason}).
enum class CloseReason : std::uint8_t {
    Client,            // the client closed or reset it
    Done,              // the response said Connection: close (as the request asked)
    RequestError,      // a request was refused (4xx/5xx) and the connection closed
    IdleTimeout,       // keep-alive idle longer than idle_timeout
    HeadTimeout,       // the request head took longer than head_timeout
    HandshakeTimeout,  // the TLS handshake took longer than handshake_timeout
    WriteTimeout,      // the response took longer than write_timeout to send
    TlsError,          // handshake refused (no or bad client certificate, protocol, ...)
    Evicted,           // at max_connections: the longest-waiting connection made room
    Rejected,          // at max_connections with none to evict
    ConfigChanged,     // idle after the web configuration changed
    Shutdown,          // the server stopped
    SlowReader,        // a streaming response's client read too slowly (its buffer filled)
    Count
};
[[nodiscard]] const char* toString(CloseReason r);

struct ServerStats {
    std::string listener;
    bool tls = false;
    std::uint64_t accepted = 0;
    std::uint64_t open = 0;
    std::uint64_t closed[static_cast<int>(CloseReason::Count)] = {};
    std::vector<std::pair<int, std::uint64_t>> responses;  // status code -> count (codes the server sent)
    std::uint64_t auth_failures = 0;     // 401s: missing or wrong credentials
    std::uint64_t rate_limited = 0;      // 429s
    std::uint64_t accept_errors = 0;     // accept(2) failures (EMFILE, ...)
    std::uint64_t streams_open = 0;      // streaming responses being written (stream.hpp)
};

class Server {
public:
    // Binds now (errors name the address and the reason: "port in use", ...), starts
    // the I/O thread and the workers. web may be empty (plain HTTP, no auth).
    [[nodiscard]] static Result<std::unique_ptr<Server>> start(ServerOptions options, const WebConfig& web, Handler handler);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Replaces the web configuration (TLS context built first: a bad certificate
    // leaves the current one in place and returns the error).
    Result<void> setWebConfig(const WebConfig& web);
    void stop();
    [[nodiscard]] std::uint16_t port() const;
    [[nodiscard]] const ServerOptions& options() const;
    [[nodiscard]] ServerStats stats() const;

private:
    struct Impl;
    explicit Server(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace netprobe::http
