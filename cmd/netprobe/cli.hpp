// The `netprobe` command line: the agent's API for people and scripts (issue 16).
// Pure parts here (argument parsing, request building, tables), unit-tested; the HTTP
// round trips and the --follow loops are in main.cpp.
#pragma once

#include <chrono>
#include <cstdint>
#include <expected>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/questions.hpp>

namespace netprobe::cli {

// Exit codes scripts can rely on.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;       // the agent is unreachable, refused the request, answered badly
inline constexpr int kExitUsage = 2;       // bad arguments
inline constexpr int kExitNotFound = 3;    // --fail-if-empty and nothing matched
inline constexpr int kExitFindings = 4;    // diagnose --exit-code and something was found
inline constexpr int kExitCannotAnswer = 5;  // ask: the question is not one the offline parser maps to the API
inline constexpr int kExitUnchecked = 6;   // ask with an LLM: the answer has figures that are not in the tool results
inline constexpr int kExitLlmError = 7;    // ask with an LLM: the endpoint failed (unreachable, error status, not a
                                           // chat-completions answer, no final answer within --llm-max-rounds)
inline constexpr int kExitLlmTimeout = 8;  // ask with an LLM: no answer within --llm-timeout

enum class Output { Table, Wide, Json, Yaml };

// The API's document as -o json (2-space JSON) or -o yaml (a block YAML document whose
// data equals the JSON's: strings double-quoted, numbers and booleans as YAML 1.1 reads
// them), ending in a newline.
[[nodiscard]] std::string structuredText(const nlohmann::json& doc, Output output);

struct Connection {
    std::string server = "http://127.0.0.1:8081";  // --server, env NETPROBE_SERVER
    std::string user;          // --user (basic auth), env NETPROBE_USER
    std::string password;      // env NETPROBE_PASSWORD, or --password-file
    std::string ca_file;       // --ca-file: verify the agent's certificate with this CA
    bool insecure = false;     // --insecure: do not verify (testing only)
    std::chrono::milliseconds timeout{10000};
};

// ask: the optional LLM (docs/cli.md, "With an LLM").
struct LlmSettings {
    enum class Mode { Auto, Always, Never };
    Mode mode = Mode::Auto;    // --llm: auto = the offline parser first, the LLM for what it cannot map
    std::string endpoint;      // --llm-endpoint, env NETPROBE_LLM_ENDPOINT (empty: no LLM)
    std::string model;         // --llm-model, env NETPROBE_LLM_MODEL
    std::string key;           // --llm-key-file or env NETPROBE_LLM_KEY (never on the command line)
    std::string ca_file;       // --llm-ca-file: the CA of an https endpoint
    std::chrono::milliseconds timeout{120000};  // --llm-timeout: the whole answer
    std::size_t max_rounds = 8;                 // --llm-max-rounds
    std::size_t max_result_bytes = 16 * 1024;   // --llm-max-result-bytes: a tool result sent to the model
    bool anonymize = false;    // --anonymize
};

// What one invocation does.
struct Invocation {
    enum class Kind { None, Flows, Connections, Events, Interfaces, Pods, TopTalkers, TopPorts, TopEndpoints,
                      TopDrops, TopRetransmits, Diagnose, Completion, Requests, Routes, Topology, Intel, Mcp, Ask, Trace,
                      Bottlenecks, Qos, Cost };
    Kind kind = Kind::None;
    Connection conn;
    Output output = Output::Table;
    bool color = false;        // --color=auto|always|never (auto: a terminal)
    bool follow = false;       // flows, events: keep printing what is new
    std::chrono::milliseconds interval{2000};  // --follow poll interval; top drops sampling window
    std::size_t limit = 20;
    bool fail_if_empty = false;
    bool exit_code = false;    // diagnose: exit 4 when there are findings
    std::string path;          // API path
    std::map<std::string, std::string> query;  // API query parameters
    std::chrono::seconds since{0};  // flows: last seen within this long (client side; 0: any)
    std::string shell;         // completion
    std::string mcp_listen;    // mcp --listen=HOST:PORT (Streamable HTTP); empty: stdio
    std::size_t mcp_max_result_bytes = 64 * 1024;  // mcp --max-result-bytes: a tool result's JSON text
    std::string question;      // ask: the question, its words joined by spaces
    LlmSettings llm;           // ask: the optional LLM
    bool trace_wait = true;    // trace: wait until it finished (--no-wait: print its id)
    bool qos_services = false; // qos --services: per server:port (every client) instead of per edge
};

struct ParseResult {
    bool run = false;      // false: print `output` and exit with `exit_code`
    int exit_code = kExitOk;
    std::string output;
    Invocation inv;
};

// argv as given to main; env: getenv (NETPROBE_SERVER, NETPROBE_USER, NETPROBE_PASSWORD,
// NETPROBE_LLM_ENDPOINT, NETPROBE_LLM_MODEL, NETPROBE_LLM_KEY).
// is_tty: stdout is a terminal (colour in auto mode).
[[nodiscard]] ParseResult parse(int argc, const char* const* argv, const std::map<std::string, std::string>& env,
                                bool is_tty);

// ---- rendering (pure) ----

// Aligned columns; `right` marks numeric columns (right-aligned). Colour: the header bold.
struct Table {
    std::vector<std::string> header;
    std::vector<bool> right;
    std::vector<std::vector<std::string>> rows;
    [[nodiscard]] std::string render(bool color) const;
};

[[nodiscard]] std::string humanBytes(double bytes);   // 1.5KiB, 12MiB
[[nodiscard]] std::string humanCount(double n);       // 950, 1.2k, 3.4M
[[nodiscard]] std::string endpoint(const std::string& ip, std::uint64_t port);  // 10.0.0.1:80, [fd00::1]:443

[[nodiscard]] Table flowsTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] Table connectionsTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] Table eventsTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] Table interfacesTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] Table podsTable(const nlohmann::json& doc, bool wide);
// GET /api/v1/intel: one row per threat-intel feed.
[[nodiscard]] Table intelTable(const nlohmann::json& doc, bool wide);

// top: aggregates of the flows document (by bytes/s over the agent's last interval).
enum class TopBy { Talkers, Ports, Endpoints };
[[nodiscard]] Table topTable(const nlohmann::json& flows, TopBy by, std::size_t limit);
// top drops: netprobe_packet_drops_total by reason from two /metrics texts `secs` apart.
[[nodiscard]] Table dropsTable(const std::string& before, const std::string& after, double secs, std::size_t limit);
// top retransmits: connections by retransmitted segments.
[[nodiscard]] Table retransmitsTable(const nlohmann::json& connections, std::size_t limit);

// requests: the agent's recent application-layer requests (GET /api/v1/l7/requests).
[[nodiscard]] Table requestsTable(const nlohmann::json& doc, bool wide);
// routes: per service/side/method/route window figures (GET /api/v1/l7/endpoints).
[[nodiscard]] Table routesTable(const nlohmann::json& doc, bool wide);
// topology: the service map's edges (GET /api/v1/topology), busiest first.
[[nodiscard]] Table topologyTable(const nlohmann::json& doc, bool wide);
// netprobe trace: one trace's path (GET /api/v1/trace?id=): a row per direction and stage
// in path order with packets, bytes, devices and drops.
[[nodiscard]] Table traceTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] std::string traceSummary(const nlohmann::json& doc);
// "tcp 198.18.0.1:40000 198.18.0.2:80" (protocol optional, ports optional, [v6]:port) ->
// the API's start parameters; an error names the word.
[[nodiscard]] std::expected<std::map<std::string, std::string>, std::string> parseTraceFlow(
    const std::vector<std::string>& words);

// diagnose: each finding as a block (severity, rule, subject, evidence, cause, fix, query).
[[nodiscard]] std::string diagnosisText(const nlohmann::json& doc, bool color);
// GET /api/v1/bottlenecks: rank, severity, kind, subject, title; wide: score, evidence, since.
[[nodiscard]] Table bottlenecksTable(const nlohmann::json& doc, bool wide);

// GET /api/v1/qos: per edge (client -> server:port), or per service with `services`:
// handshake RTT p50/p99, jitter, loss, retransmits, drops, failed connections, bytes;
// wide: the sockets' smoothed RTT, the RTT's server/client sides and the L7 figures.
[[nodiscard]] Table qosTable(const nlohmann::json& doc, bool wide, bool services);
// GET /api/v1/cost: per entity the bytes sent by class, the cost over the window and per
// hour; wide: the bytes received too. costSummary: zone, window, prices and the totals.
[[nodiscard]] Table costTable(const nlohmann::json& doc, bool wide);
[[nodiscard]] std::string costSummary(const nlohmann::json& doc);

// Samples of one counter family in Prometheus text: label set (as written) -> value.
[[nodiscard]] std::map<std::string, double> metricSamples(const std::string& text, const std::string& name);

// ask: the answer's text and the queries it ran (wide: and its tables); a refusal's text
// (the reason and example questions); the -o json document of either.
[[nodiscard]] std::string askText(const assistant::Answer& a, bool wide, bool color);
[[nodiscard]] std::string refusalText(const assistant::CannotAnswer& c);
[[nodiscard]] nlohmann::json askJson(const std::string& question, const assistant::Intent& intent,
                                     const assistant::Answer& answer);
[[nodiscard]] nlohmann::json refusalJson(const std::string& question, const assistant::CannotAnswer& c);

// Shell completion script (bash or zsh) for the subcommands and their flags.
[[nodiscard]] std::string completionScript(const std::string& shell);

}  // namespace netprobe::cli
