// `netprobe mcp`: the MCP server's transports over assistant::mcp::Dispatcher (docs/mcp.md).
//   stdio (default): newline-delimited JSON-RPC on stdin/stdout; stdout carries only
//     protocol messages, logs go to stderr. A line over the message limit is refused
//     (-32700) and skipped; EOF ends the server (exit 0).
//   Streamable HTTP (--listen=HOST:PORT): POST /mcp answers with application/json; an
//     Mcp-Session-Id is issued at initialize and required afterwards (400 without it, 404
//     for an unknown or ended one); DELETE /mcp ends a session; GET /mcp is 405 (no
//     server-initiated stream); bodies over the limit 413; an unsupported
//     MCP-Protocol-Version header 400; an Origin that is neither loopback nor the Host
//     403 (DNS rebinding). Sessions are bounded (the least recently used one goes) and
//     expire when idle.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <utility>

#include <netprobe/assistant/mcp.hpp>
#include <netprobe/util/error.hpp>

#include "cli.hpp"

namespace netprobe::cli::mcp {

inline constexpr std::size_t kMaxMessageBytes = 1024 * 1024;

// Reads messages from in_fd until EOF, writes the responses to out_fd. Returns the exit
// code (0 at EOF or when out_fd is closed, 1 on a read error).
int serveStdio(int in_fd, int out_fd, const assistant::mcp::Dispatcher& dispatcher,
               std::size_t max_message_bytes = kMaxMessageBytes);

// "127.0.0.1:8090", "[::1]:8090", "localhost:0" -> host and port.
[[nodiscard]] Result<std::pair<std::string, std::uint16_t>> parseListen(std::string_view listen);

struct HttpOptions {
    std::string host = "127.0.0.1";
    std::uint16_t port = 0;  // 0: an ephemeral port (port() tells which)
    std::size_t max_body_bytes = kMaxMessageBytes;
    std::size_t max_sessions = 256;
    std::chrono::seconds session_idle{3600};
};

class HttpServer {
public:
    // Binds now (the error names the address), serves on threads of its own.
    [[nodiscard]] static Result<std::unique_ptr<HttpServer>> start(HttpOptions options,
                                                                   const assistant::mcp::Dispatcher& dispatcher);
    ~HttpServer();
    HttpServer(const HttpServer&) = delete;
    HttpServer& operator=(const HttpServer&) = delete;
    [[nodiscard]] std::uint16_t port() const;
    [[nodiscard]] std::size_t sessions() const;
    void stop();

private:
    struct Impl;
    explicit HttpServer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// The subcommand: inv.mcp_listen empty -> stdio, else HTTP until SIGINT/SIGTERM.
int run(const Invocation& inv);

}  // namespace netprobe::cli::mcp
