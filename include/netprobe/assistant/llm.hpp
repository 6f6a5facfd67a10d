// The optional LLM of `netprobe ask` (issue 16): a model behind any OpenAI-compatible
// chat-completions server (llama.cpp, Ollama, a hosted API) gets NetProbe's read-only
// API as tools (tools.hpp), the caller runs the calls it asks for, and every figure of
// its final answer is checked against what those calls returned.
//
// Three parts, each pure (the I/O is injected, so all of it is unit-tested without a
// network or a model):
//   - figures: extractFigures finds the numbers (with units, scales, percentages,
//     thousands separators), addresses and times in a text; Facts holds what the tool
//     results (and the question) contain; verifyFigures says, figure by figure, where
//     each one is in them or that it is in none (unchecked).
//   - Anonymizer: addresses, pod, namespace, node, workload and Service names become
//     stable placeholders (ip-1, pod-1, ns-1, node-1, wl-1, svc-1) in everything sent to
//     the model, and are put back in its answer.
//   - askLlm: the tool-calling loop (bounded rounds, bounded results, a total deadline).
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/tools.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::assistant {

// ---------------------------------------------------------------------------
// figures

// What a figure measures once its unit is known.
enum class Dim { None, Bytes, Bits, Seconds };

struct Figure {
    enum class Kind {
        Number,       // 1,234  12.5%  1.5 KiB  3.2 ms  8 Mbit/s  1.2k  5m  2 million
        Address,      // 198.18.0.1, fd00::1 (checked as text against the results' addresses)
        TimeOfDay,    // 14:05, 14:05:33, 2:05 pm
        Date,         // 2026-01-05
        DateTime,     // 2026-01-05T14:05:33Z
        Placeholder,  // ip-7 when the anonymizer never issued it: a name the model made up
    };
    Kind kind = Kind::Number;
    std::string text;        // as written, with its unit ("12.5 MiB", "1,234", "198.18.0.1")
    std::size_t offset = 0;  // byte offset in the text

    // Number: the value as written (12.5 for "12.5 MiB"), half a unit of its last written
    // digit in the same unit (0.05; "about 1,200": 50), and each way to read it in a
    // dimension: value * factor is the figure in that dimension's base unit (bytes,
    // bits, seconds; None: a plain count or ratio). "1.5 KB" has two readings (1000 and
    // 1024), "12.5%" two (0.125 and 12.5), "8 Mbit/s" two (1e6 bytes/s, 8e6 bits/s).
    double value = 0;
    double half_ulp = 0.5;
    struct Reading {
        double factor = 1;
        Dim dim = Dim::None;
        bool operator==(const Reading&) const = default;
    };
    std::vector<Reading> readings;
    bool approximate = false;  // after "about", "~", "over", ...

    // TimeOfDay / Date / DateTime.
    int hour = -1, minute = -1, second = -1;  // second -1: not written
    bool twelve_hour = false;                 // 1-12 without am/pm: hour or hour + 12
    int year = 0, month = 0, day = 0;
    std::int64_t unix_seconds = 0;            // DateTime

    std::string address;  // Address: the normalised text (util::formatAddr)
};

// Every figure in text, in order. Digits that are part of a word or a name are not
// figures (eth0, p99, http2, pod-1, IPv6, 5xx, x86_64, /api/v1), nor ordinals (2nd),
// protocol versions (HTTP/1.1, TLS 1.3) or MAC addresses.
[[nodiscard]] std::vector<Figure> extractFigures(std::string_view text);

// What the tool results (and the question) hold: every number with the dimension its
// key names (…bytes…: bytes, …_seconds: seconds, …_ms: milliseconds, …), the figures in
// their strings, each array's length and each array's per-key sums, timestamps
// (RFC 3339 strings, Unix seconds under time keys), addresses.
class Facts {
public:
    // utc_offset_seconds: the caller's time zone (a time of day may be written in it).
    explicit Facts(std::int32_t utc_offset_seconds = 0) : utc_offset_(utc_offset_seconds) {}
    // A JSON document (a tool result); label names it in the verification ("get_topology #1").
    void addDocument(const std::string& label, const nlohmann::json& doc);
    // Plain text (the question; a result cut so short that it is no longer JSON).
    void addText(const std::string& label, std::string_view text);

    // Where the figure is in the facts ("get_topology #1 /edges/0/bytes_out = 312600"),
    // or nullopt.
    [[nodiscard]] std::optional<std::string> find(const Figure& f) const;
    [[nodiscard]] std::size_t numbers() const { return numbers_.size(); }

private:
    struct Number {
        double value;
        Dim dim;        // None: a count (count true) or unknown (compared as written and as the figure's base value)
        double factor;  // value * factor = base unit of dim
        std::string where;
        bool count = false;  // a key that counts things (packets, connections, ...): no unit conversion
    };
    void walk(const std::string& label, const nlohmann::json& j, const std::string& path, Dim dim, double factor,
              bool count, bool time_key);
    [[nodiscard]] bool matches(const Number& n, const Figure& f, bool strict) const;
    void textFigures(const std::string& where, std::string_view text);
    std::vector<Number> numbers_;
    std::vector<std::pair<std::int64_t, std::string>> times_;        // unix seconds
    std::vector<std::pair<std::array<int, 3>, std::string>> dates_;  // year, month, day (written as dates)
    std::vector<std::pair<std::array<int, 3>, std::string>> clock_;  // hour, minute, second (-1) (written times)
    std::map<std::string, std::string> addresses_;                   // normalised -> where
    std::int32_t utc_offset_;
};

struct CheckedFigure {
    Figure figure;
    bool checked = false;
    std::string source;   // where it was found (empty when unchecked)
    std::string context;  // the words around it in the answer
};

struct Verification {
    std::vector<CheckedFigure> figures;
    [[nodiscard]] std::size_t checked() const;
    [[nodiscard]] std::size_t unchecked() const;
    [[nodiscard]] bool ok() const { return unchecked() == 0; }
    // {"ok", "checked": [{"text","source"}], "unchecked": [{"text","context","reason"}]}
    [[nodiscard]] nlohmann::json toJson() const;
};

// Each figure of answer, found in facts or not.
[[nodiscard]] Verification verifyFigures(std::string_view answer, const Facts& facts);

// ---------------------------------------------------------------------------
// anonymizer

class Anonymizer {
public:
    enum class Kind { Ip, Pod, Namespace, Node, Workload, Service };

    // Names in an API document, by the keys that hold them (pod, src_pod, namespace,
    // node, workload, dst_service, ...; "name" of an object whose "kind" says what it is
    // or of a /pods item); "ns/name" values give both.
    void learnDocument(const nlohmann::json& doc);
    // Names in a question: after "pod", "namespace", "node", "workload" (deployment,
    // statefulset, daemonset), "service", and NS/NAME pairs.
    void learnQuestion(std::string_view question);
    void learn(Kind kind, std::string_view name);

    // Every address (any IPv4/IPv6 literal) and every learned name in text replaced by
    // its placeholder (issued on first sight, stable after). Text that already looks
    // like a placeholder (a pod really named "pod-3") gets one too, so every
    // placeholder the model sees is one this anonymizer issued.
    [[nodiscard]] std::string mask(std::string_view text);
    [[nodiscard]] nlohmann::json maskJson(const nlohmann::json& j);  // string values and keys
    // Placeholders issued by this anonymizer back to the originals; others stay.
    [[nodiscard]] std::string restore(std::string_view text) const;
    [[nodiscard]] nlohmann::json restoreJson(const nlohmann::json& j) const;
    // Placeholder-shaped words in text that this anonymizer did not issue.
    [[nodiscard]] std::vector<std::pair<std::size_t, std::string>> unknownPlaceholders(std::string_view text) const;

    [[nodiscard]] std::size_t size() const { return to_original_.size(); }
    // The originals this anonymizer replaces (for tests and logs).
    [[nodiscard]] std::vector<std::string> originals() const;

private:
    std::string placeholderFor(Kind kind, const std::string& original);
    std::string maskRun(std::string_view run);
    std::map<std::string, Kind> names_;             // learned names (not addresses)
    std::map<std::string, std::string> to_placeholder_;  // original (address: normalised) -> placeholder
    std::map<std::string, std::string> to_original_;     // placeholder -> original
    std::map<Kind, unsigned> next_;
};

[[nodiscard]] std::string_view placeholderPrefix(Anonymizer::Kind k);

// ---------------------------------------------------------------------------
// the loop

struct LlmOptions {
    std::string model;                       // sent as "model" (omitted when empty)
    std::size_t max_rounds = 8;              // chat requests that may call tools (then one more to answer)
    std::chrono::milliseconds deadline{120000};  // the whole answer: chat requests and tool calls
    std::size_t max_result_bytes = 16 * 1024;    // a tool result's JSON text sent to the model (boundJson)
    std::size_t max_calls_per_round = 8;     // more tool calls in one response are answered "not run"
    bool anonymize = false;
    // With anonymize: documents fetched first to learn the node's names (GET /api/v1/pods);
    // never sent to the model. A failure here is ignored (the agent may have no Kubernetes).
    std::vector<ApiRequest> anonymize_prime;
};

// One chat-completions request (the JSON body) -> the server's JSON answer, within
// timeout. Error code ETIMEDOUT: it did not answer in time.
using ChatFn = std::function<Result<nlohmann::json>(const nlohmann::json& request, std::chrono::milliseconds timeout)>;
// One GET of the agent's API -> its body, within timeout.
using ToolFn = std::function<Result<std::string>(const ApiRequest& request, std::chrono::milliseconds timeout)>;

struct LlmClock {
    std::function<std::chrono::steady_clock::time_point()> mono;  // null: steady_clock
    std::function<std::int64_t()> unix_now;                       // null: system_clock
    std::int32_t utc_offset_seconds = 0;                          // the caller's time zone
};

struct LlmIo {
    ChatFn chat;
    ToolFn tool;
    LlmClock clock;
};

struct ToolCallRecord {
    std::size_t round = 0;
    std::string id;                       // the model's tool_call id
    std::string tool;                     // the function name it asked for
    nlohmann::json arguments;             // as it gave them (placeholders restored)
    std::optional<ApiRequest> request;    // what ran; nullopt: not run (see error)
    std::string error;                    // why it was not run, or the agent's error
    std::string result;                   // the (bounded) text sent to the model, before masking
    bool truncated = false;               // boundJson cut it
    [[nodiscard]] nlohmann::json toJson() const;
};

struct LlmAnswer {
    std::string text;                  // the model's final answer, names restored
    std::string model;                 // as the server named itself
    std::size_t rounds = 0;            // chat requests made
    std::vector<ToolCallRecord> calls;
    Verification verification;
    bool anonymized = false;
    std::size_t placeholders = 0;      // names and addresses that were masked
    // {"text","model","rounds","tool_calls","verification","anonymized","placeholders"}
    [[nodiscard]] nlohmann::json toJson() const;
};

struct LlmFailure {
    enum class Kind {
        Endpoint,     // unreachable, TLS refused, an error status, an "error" answer
        Timeout,      // the deadline passed (a request that did not answer in time)
        BadResponse,  // not a chat-completions answer (no choices, malformed tool calls)
        NoAnswer,     // still calling tools after max_rounds, or an empty answer
    };
    Kind kind = Kind::Endpoint;
    std::string message;
    std::vector<ToolCallRecord> calls;  // what ran before it failed
    std::size_t rounds = 0;
};

[[nodiscard]] std::string_view toString(LlmFailure::Kind k);

// The system prompt: what NetProbe is, that every figure must come from a tool result.
[[nodiscard]] std::string llmSystemPrompt(bool anonymized);
// The catalogue (tools.hpp) as chat-completions tools: [{"type":"function","function":
// {"name","description","parameters"}}].
[[nodiscard]] nlohmann::json llmTools();

// Asks the model the question, runs the tool calls it makes (validated by Tool::request,
// results bounded by boundJson), and checks the figures of its final answer.
[[nodiscard]] std::expected<LlmAnswer, LlmFailure> askLlm(std::string_view question, const LlmOptions& options,
                                                          const LlmIo& io);

}  // namespace netprobe::assistant
