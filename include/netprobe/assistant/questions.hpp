// Natural-language questions, offline (issue 16): a deterministic parser that maps the
// common questions about the network to the agent's API queries, and the answer built
// from those queries' documents. Pure: no I/O, no clock (the caller gives "now"), no
// guess: a question whose words are not all understood, or whose subject is ambiguous,
// is a CannotAnswer with the reason and examples of questions that are understood.
// The grammar is in docs/cli.md ("netprobe ask").
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <expected>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include <netprobe/util/error.hpp>

namespace netprobe::assistant {

// One GET of the agent's API: path and query parameters, in order.
struct Query {
    std::string path;
    std::vector<std::pair<std::string, std::string>> params;

    // "path?k=v&k=v", values percent-encoded: what to GET (and what the answer shows).
    [[nodiscard]] std::string target() const;
    bool operator==(const Query&) const = default;
};

// What a question is about besides its topic.
struct Subject {
    enum class Kind {
        Address,    // 198.18.0.1, fd00::1
        Endpoint,   // 198.18.0.1:80, [fd00::1]:443
        Host,       // a DNS name (db.example.com): the topology names addresses from DNS answers
        Pod,        // pod shop/cart-1
        Workload,   // workload|deployment|statefulset|daemonset shop/cart
        Namespace,  // namespace shop
        Port,       // port 5432, :5432, tcp/5432
        Interface,  // eth0, interface veth1
        Table,      // the conntrack table, the flow table
    };
    Kind kind = Kind::Address;
    std::string text;       // as the answer names it (normalised: 198.18.0.1:80, shop/cart, eth0)
    std::string ip;         // Address, Endpoint (formatted as the API formats addresses)
    std::uint16_t port = 0; // Endpoint, Port
    std::string transport;  // Port: tcp, udp or "" (either)
    std::string ns, name;   // Pod, Workload: namespace and name; Namespace: ns; Host, Interface, Table: name

    bool operator==(const Subject&) const = default;
};

[[nodiscard]] std::string_view toString(Subject::Kind k);

struct Intent {
    enum class Kind {
        TopTalkers,        // top talkers / senders / flows / hosts
        TopPorts,          // top ports
        TopPods,           // top pods
        TopWorkloads,      // top workloads / deployments / apps
        TopNamespaces,     // top namespaces
        TopServices,       // top services (server:port)
        WhoTalks,          // who talks to X / what does X talk to
        Latency,           // latency / RTT / p99 [between A and B | of X | ranked]
        Errors,            // errors / failures / retransmits / loss [between A and B | of X | ranked]
        Scans,             // is anything being scanned
        Attacks,           // are we under attack / security events
        Changes,           // what changed since T
        WhySlow,           // why is X slow / what is wrong with X
        Diagnosis,         // is anything wrong
        Drops,             // what is dropping packets (by reason, per edge)
        PodDrops,          // which pods (workloads, namespaces) drop packets
        InterfaceDrops,    // which interfaces drop packets
        Dns,               // DNS failures
        BusiestInterface,  // the busiest interface
        Forecast,          // will eth0 fill up / will the conntrack table fill up
        Cost,              // what does the traffic cost / cross-zone traffic
    };
    enum class Direction { In, Out, Both };  // WhoTalks: X as the server, the client, or either

    Kind kind = Kind::TopTalkers;
    std::chrono::seconds window{0};            // "in the last 10 minutes" (0: not said)
    std::optional<std::int64_t> since_unix;    // "since 14:00" (unix seconds)
    std::vector<Subject> subjects;             // 0..2
    Direction direction = Direction::In;
    std::size_t limit = 10;                    // rows ("top 5")
    std::string group_by;                      // the API grouping the answer uses (host, pod, workload, namespace)
    std::string focus;                         // Cost: cross_zone, internet or ""
    bool also_errors = false;                  // Latency: the question asked for errors too
    std::int64_t now_unix = 0;                 // the clock the question was parsed at
    std::int32_t utc_offset_seconds = 0;       // and its time zone (times in the answer's text)
    std::vector<Query> queries;                // what answer() needs, in this order

    [[nodiscard]] nlohmann::json toJson() const;
};

[[nodiscard]] std::string_view toString(Intent::Kind k);

struct CannotAnswer {
    std::string reason;
    std::vector<std::string> examples;  // questions that are understood
};

// The caller's clock: "since 14:00" is today's 14:00 in the caller's time zone (the most
// recent one), "in the last hour" ends now.
struct Clock {
    std::int64_t now_unix = 0;
    std::int32_t utc_offset_seconds = 0;  // local time - UTC
};

[[nodiscard]] std::expected<Intent, CannotAnswer> parse(std::string_view question, const Clock& clock);

// A column of the answer's rows; unit tells how the CLI formats a value.
struct Column {
    std::string name;
    enum class Unit { Text, Count, Bytes, BytesPerSecond, Milliseconds, Seconds, Ratio, Money } unit = Unit::Text;
};

// A table of the answer: rows are objects keyed by column name, numbers as the API gave
// them (or sums of them); null where a figure does not exist (no handshake timed).
struct Table {
    std::string title;
    std::vector<Column> columns;
    std::vector<nlohmann::json> rows;
};

struct Answer {
    std::string text;                   // a few lines: the figures and the window they cover
    std::vector<Table> tables;          // the figures as rows (the first: the main one)
    std::vector<Query> queries;         // what was run (repeat them with curl)

    // {"text", "rows" (the first table's), "tables", "queries"}
    [[nodiscard]] nlohmann::json toJson() const;
};

// results[i] is the document the agent answered for intent.queries[i]. An error when the
// documents are not what those endpoints answer (wrong count, not objects, fields of the
// wrong type): the answer never makes up a figure.
[[nodiscard]] Result<Answer> answer(const Intent& intent, const std::vector<nlohmann::json>& results);

// A cell as the CLI's table shows it (1.5MiB, 12.3ms, 4.0%).
[[nodiscard]] std::string formatCell(const Column& c, const nlohmann::json& v);

// Questions `netprobe ask` understands, one per form (for help texts and refusals).
[[nodiscard]] const std::vector<std::string>& exampleQuestions();

}  // namespace netprobe::assistant
