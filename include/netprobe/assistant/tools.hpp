// The assistant's tool catalogue (issue 16): NetProbe's read-only API as tools that a
// model can call, each with a description, a JSON Schema of its arguments and a pure
// mapping from arguments to one GET of the agent's API. The MCP server (`netprobe mcp`)
// serves it; an LLM tool-calling loop can serve the same catalogue.
//
// Only GET endpoints of /api/v1 that read the agent's views are here (all of them are
// reads: nothing in the agent's API changes state); not /metrics (Prometheus text), not
// the health probes, not the web UI. The list is checked against docs/mcp.md by a unit
// test, and each tool's API parameters against the agent's own query parsers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/util/error.hpp>

namespace netprobe::assistant {

// One GET of the agent's API.
struct ApiRequest {
    std::string path;                           // "/api/v1/flows"
    std::map<std::string, std::string> query;   // API query parameters (unencoded)

    // "path?k=v&k=v", values percent-encoded (for messages and logs).
    [[nodiscard]] std::string target() const;
    bool operator==(const ApiRequest&) const = default;
};

// What a tool argument holds: its JSON type and the checks on it.
enum class ArgType {
    String,     // a JSON string; max: its length (bytes); check: an optional validator
    Integer,    // a JSON integer in [min, max]; values: the allowed ones when not empty
    Boolean,    // true / false -> "true" / "false"
    Enum,       // a JSON string among values
    EnumList,   // a JSON array of distinct strings among values -> "a,b"
    Duration,   // a Go duration string ("30s", "5m"); [min, max] in seconds (max 0: none)
};

struct ToolArg {
    std::string name;         // the tool argument (snake_case)
    std::string param;        // the API query parameter it becomes
    ArgType type = ArgType::String;
    std::string description;  // for the model: meaning, format, example
    std::vector<std::string> values;  // Enum, EnumList, Integer (allowed values as text)
    std::int64_t min = 0;
    std::int64_t max = 0;
    bool required = false;
    // String: true when the value is acceptable; `expect` says what is expected.
    bool (*check)(std::string_view) = nullptr;
    std::string expect;
};

struct Tool {
    std::string name;         // snake_case, unique
    std::string title;        // a human-readable name
    std::string description;  // what it returns and when to use it
    std::string path;         // the GET path
    std::vector<ToolArg> args;
    std::map<std::string, std::string> fixed;  // query parameters always sent (arguments override)
    // A relative "since" (-10m) needs the clock: the argument whose value may be
    // "-DURATION" and becomes now - DURATION in Unix seconds ("" when none).
    std::string relative_time_arg;

    // The JSON Schema of the arguments (type object, additionalProperties false).
    [[nodiscard]] nlohmann::json inputSchema() const;
    // Arguments (an object; null means none) -> the API request. Every argument is
    // checked: unknown names, types, enum values, ranges, formats; the error names the
    // argument and what is expected. now_unix: the wall clock (for a relative time).
    [[nodiscard]] Result<ApiRequest> request(const nlohmann::json& arguments, std::int64_t now_unix) const;
};

// Every tool, in a stable order.
[[nodiscard]] const std::vector<Tool>& toolCatalogue();
// nullptr when there is no such tool.
[[nodiscard]] const Tool* findTool(std::string_view name);

// A JSON document as text of at most max_bytes. Larger documents lose trailing items of
// their largest arrays (the rest stays valid JSON with the API's structure) and `note`
// says which were cut and how many were kept; if even that is too large the text is cut
// at max_bytes (no longer valid JSON; the note says so).
struct BoundedJson {
    std::string text;
    bool truncated = false;
    std::string note;  // empty unless truncated
};
[[nodiscard]] BoundedJson boundJson(const nlohmann::json& doc, std::size_t max_bytes);

}  // namespace netprobe::assistant
