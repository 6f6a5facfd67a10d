// The Model Context Protocol server's message layer (issue 16): JSON-RPC 2.0 messages
// in, responses out, the tool catalogue (tools.hpp) as MCP tools. Transports (stdio,
// Streamable HTTP) are in `netprobe mcp` (cmd/netprobe/mcp.cpp); they hand each message
// to Dispatcher::handle with their session's state.
//
// Methods: initialize (protocol version negotiation: the client's when supported, else
// the latest), ping, tools/list, tools/call; notifications (notifications/initialized,
// notifications/cancelled, ...) are accepted and never answered; responses from the
// client are ignored. Errors: -32700 parse error, -32600 invalid request, -32601 unknown
// method, -32602 invalid params (including an unknown tool or arguments that do not fit
// the tool's schema), -32603 internal error. A tool whose API call fails is a result
// with isError: true and the reason, not a protocol error. Never throws.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/tools.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::assistant::mcp {

// Newest first.
inline constexpr std::array<std::string_view, 3> kProtocolVersions = {"2025-06-18", "2025-03-26", "2024-11-05"};
[[nodiscard]] bool supportedVersion(std::string_view v);
// The client's version when supported, else the latest.
[[nodiscard]] std::string_view negotiateVersion(std::string_view requested);

// JSON-RPC error codes.
inline constexpr int kParseError = -32700;
inline constexpr int kInvalidRequest = -32600;
inline constexpr int kMethodNotFound = -32601;
inline constexpr int kInvalidParams = -32602;
inline constexpr int kInternalError = -32603;

// Runs one API request against the agent: the answer's body (JSON text), or why not
// (unreachable, refused, an error status with the agent's message).
using Fetch = std::function<Result<std::string>(const ApiRequest&)>;

struct Options {
    std::string server_name = "netprobe";
    std::string server_version = "unknown";
    std::size_t max_result_bytes = 64 * 1024;  // a tool result's JSON text (boundJson)
    std::function<std::int64_t()> now_unix;    // the wall clock (relative times); null: the system clock
};

// What one transport connection (stdio) or session (HTTP) has negotiated.
struct Session {
    bool initialized = false;       // an initialize request was answered
    bool client_ready = false;      // notifications/initialized arrived
    std::string protocol_version;   // negotiated
    std::string client_name;        // clientInfo.name, for logs
};

struct Outcome {
    std::optional<std::string> response;  // the text to send (nullopt: nothing: notifications, responses)
    bool initialize = false;  // the message was an initialize request answered successfully
    bool malformed = false;   // the whole message was a parse error or an invalid request
};

class Dispatcher {
public:
    Dispatcher(Options options, Fetch fetch);

    // One message (an object, or a JSON-RPC batch array) as received.
    [[nodiscard]] Outcome handle(std::string_view text, Session& session) const;
    // The same after parseMessage (a transport that looks at the message first).
    [[nodiscard]] Outcome handleParsed(const nlohmann::json& message, Session& session) const;

    // The tools/list result ({"tools": [...]}).
    [[nodiscard]] nlohmann::json toolList() const;
    // A tools/call result for a tool and arguments already validated into a request.
    [[nodiscard]] nlohmann::json callResult(const ApiRequest& request) const;

    [[nodiscard]] const Options& options() const { return options_; }

private:
    std::optional<nlohmann::json> one(const nlohmann::json& msg, Session& session, bool in_batch, bool& initialized) const;
    nlohmann::json call(const nlohmann::json& id, const nlohmann::json& params) const;
    Options options_;
    Fetch fetch_;
};

// A message's text -> its JSON (nesting bounded), or the parse error's outcome.
[[nodiscard]] std::expected<nlohmann::json, Outcome> parseMessage(std::string_view text);
// An initialize request (not a notification, not in a batch).
[[nodiscard]] bool isInitialize(const nlohmann::json& message);

// {"jsonrpc":"2.0","id":id,"error":{"code":code,"message":message[,"data":data]}}
[[nodiscard]] nlohmann::json errorResponse(const nlohmann::json& id, int code, std::string message,
                                           const nlohmann::json& data = nullptr);

}  // namespace netprobe::assistant::mcp
