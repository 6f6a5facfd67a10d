// `netprobe mcp`: the JSON-RPC dispatcher (messages in, responses out), its transports
// (stdio over pipes, Streamable HTTP over loopback) and its tool calls against the real
// agent API server (metrics::Server over a pipeline fed in the test), never a stand-in.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <regex>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include <netprobe/analysis/flows.hpp>
#include <netprobe/analysis/pipeline.hpp>
#include <netprobe/assistant/mcp.hpp>
#include <netprobe/collector/collector.hpp>
#include <netprobe/metrics/server.hpp>

#include "agent_api.hpp"
#include "cli.hpp"
#include "mcp.hpp"
#include "unit/test_flows.hpp"

namespace {

using namespace std::chrono_literals;
using nlohmann::json;
namespace am = netprobe::assistant::mcp;
namespace cm = netprobe::cli::mcp;

constexpr std::uint64_t kSec = 1'000'000'000ULL;

// The agent's API server (the real routes and renderers) over a pipeline whose one
// snapshot the test writes: an interface and `flows` UDP flows.
class Agent {
public:
    explicit Agent(std::size_t flows = 0) : collector_("mcp-test", 1h) {
        auto p = std::make_shared<netprobe::analysis::Pipeline>(collector_);
        p->addStage(std::make_unique<netprobe::analysis::FlowAccounting>(netprobe::analysis::FlowAccountingOptions{}));
        auto s = std::make_shared<netprobe::collector::Snapshot>();
        s->sequence = 1;
        s->taken_at = netprobe::collector::WallTime{} + 500000h;
        s->mono = netprobe::collector::MonoTime{} + 10s;
        s->interval_seconds = 1;
        s->interfaces.push_back({.name = "veth-mcp", .index = 3, .ingress_packets = 5});
        for (std::size_t i = 0; i < flows; ++i)
            s->flows.push_back(netprobe::testing::makeSample(
                netprobe::testing::makeKey("198.18.0.1", "198.18.0.2", static_cast<std::uint16_t>(10000 + i), 53, 17, 3),
                1 + i, 100 * (1 + i), kSec, 2 * kSec));
        p->run(s);
        pipeline_ = p;
        netprobe::metrics::ServerConfig cfg;
        cfg.address = "127.0.0.1";
        cfg.port = 0;
        server_ = std::make_unique<netprobe::metrics::Server>(cfg);
        auto r = server_->listen(pipeline_);
        if (!r) throw std::runtime_error(r.error().what());
    }
    ~Agent() { server_->stop(); }
    [[nodiscard]] netprobe::cli::Connection conn() const {
        netprobe::cli::Connection c;
        c.server = "http://127.0.0.1:" + std::to_string(server_->port());
        c.timeout = 5s;
        return c;
    }

private:
    netprobe::collector::Collector collector_;
    std::shared_ptr<const netprobe::analysis::Pipeline> pipeline_;
    std::unique_ptr<netprobe::metrics::Server> server_;
};

am::Fetch fetcher(const netprobe::cli::Connection& c) {
    return [c](const netprobe::assistant::ApiRequest& r) { return netprobe::cli::agentGet(c, r.path, r.query); };
}

// A connection to a port nothing listens on (a port the kernel picked, bound, closed).
netprobe::cli::Connection nobody() {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0)
        throw std::runtime_error("no free port");
    ::close(fd);
    netprobe::cli::Connection c;
    c.server = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
    c.timeout = 2s;
    return c;
}

am::Dispatcher dispatcher(am::Fetch fetch = nullptr, std::size_t max_result = 64 * 1024) {
    am::Options o;
    o.server_version = "test";
    o.max_result_bytes = max_result;
    o.now_unix = [] { return std::int64_t{1780000000}; };
    return am::Dispatcher(o, std::move(fetch));
}

json send(const am::Dispatcher& d, am::Session& s, const json& msg) {
    auto o = d.handle(msg.dump(), s);
    if (!o.response) return nullptr;
    return json::parse(*o.response);
}

json call(const am::Dispatcher& d, const std::string& tool, const json& args, int id = 7) {
    am::Session s;
    json params = {{"name", tool}};
    if (!args.is_null()) params["arguments"] = args;
    return send(d, s, {{"jsonrpc", "2.0"}, {"id", id}, {"method", "tools/call"}, {"params", params}});
}

void expectError(const json& r, int code, const json& id = nullptr) {
    ASSERT_TRUE(r.is_object()) << r;
    EXPECT_EQ(r["jsonrpc"], "2.0");
    EXPECT_EQ(r["id"], id) << r;
    ASSERT_TRUE(r.contains("error")) << r;
    EXPECT_FALSE(r.contains("result"));
    EXPECT_EQ(r["error"]["code"], code) << r;
    EXPECT_TRUE(r["error"]["message"].is_string());
}

TEST(Mcp, InitializeNegotiatesTheProtocolVersion) {
    const auto d = dispatcher();
    for (const std::string v : {"2025-06-18", "2025-03-26", "2024-11-05"}) {
        am::Session s;
        const auto r = send(d, s,
                            {{"jsonrpc", "2.0"},
                             {"id", 1},
                             {"method", "initialize"},
                             {"params", {{"protocolVersion", v}, {"capabilities", json::object()},
                                         {"clientInfo", {{"name", "unit"}, {"version", "1"}}}}}});
        EXPECT_EQ(r["id"], 1);
        EXPECT_EQ(r["result"]["protocolVersion"], v);
        EXPECT_TRUE(r["result"]["capabilities"]["tools"].is_object());
        EXPECT_EQ(r["result"]["serverInfo"]["name"], "netprobe");
        EXPECT_EQ(r["result"]["serverInfo"]["version"], "test");
        EXPECT_TRUE(r["result"]["instructions"].is_string());
        EXPECT_TRUE(s.initialized);
        EXPECT_EQ(s.protocol_version, v);
        EXPECT_EQ(s.client_name, "unit");
    }
    // A version it does not know (newer or older): the latest it supports.
    for (const std::string v : {"2099-01-01", "2024-10-07", "garbage"}) {
        am::Session s;
        const auto r = send(d, s, {{"jsonrpc", "2.0"}, {"id", "a"}, {"method", "initialize"},
                                   {"params", {{"protocolVersion", v}}}});
        EXPECT_EQ(r["id"], "a");
        EXPECT_EQ(r["result"]["protocolVersion"], "2025-06-18");
    }
    EXPECT_EQ(am::negotiateVersion("2025-03-26"), "2025-03-26");
    EXPECT_EQ(am::negotiateVersion(""), "2025-06-18");
    // No or a non-string protocolVersion: invalid params.
    am::Session s;
    expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "initialize"}, {"params", json::object()}}),
                am::kInvalidParams, 2);
    expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 3}, {"method", "initialize"},
                            {"params", {{"protocolVersion", 20250618}}}}),
                am::kInvalidParams, 3);
    expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 4}, {"method", "initialize"}}), am::kInvalidParams, 4);
    EXPECT_FALSE(s.initialized);
    // initialize inside a batch: refused (the rest of the batch is answered).
    const auto b = send(d, s, json::array({{{"jsonrpc", "2.0"}, {"id", 5}, {"method", "initialize"},
                                            {"params", {{"protocolVersion", "2025-03-26"}}}},
                                           {{"jsonrpc", "2.0"}, {"id", 6}, {"method", "ping"}}}));
    ASSERT_EQ(b.size(), 2u);
    expectError(b[0], am::kInvalidRequest, 5);
    EXPECT_EQ(b[1]["result"], json::object());
}

TEST(Mcp, PingNotificationsAndClientResponses) {
    const auto d = dispatcher();
    am::Session s;
    for (const auto& id : {json(1), json(0), json(-5), json("x-1"), json(""), json(9007199254740993ULL)}) {
        const auto r = send(d, s, {{"jsonrpc", "2.0"}, {"id", id}, {"method", "ping"}});
        EXPECT_EQ(r["id"], id);
        EXPECT_EQ(r["result"], json::object());
    }
    // Notifications: never answered, known or not, whatever their params.
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}), nullptr);
    EXPECT_TRUE(s.client_ready);
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"method", "notifications/cancelled"}, {"params", {{"requestId", 3}}}}),
              nullptr);
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"method", "no/such"}, {"params", 5}}), nullptr);
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"method", "tools/call"}}), nullptr);
    // Responses to requests (the server sends none): ignored.
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"id", 1}, {"result", json::object()}}), nullptr);
    EXPECT_EQ(send(d, s, {{"jsonrpc", "2.0"}, {"id", 1}, {"error", {{"code", 1}, {"message", "x"}}}}), nullptr);
    // A batch of notifications only: nothing to send.
    const auto o = d.handle(R"([{"jsonrpc":"2.0","method":"notifications/initialized"}])", s);
    EXPECT_FALSE(o.response);
    // Unknown methods.
    for (const char* m : {"resources/list", "prompts/list", "logging/setLevel", "tools/run", ""})
        expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 9}, {"method", m}}), am::kMethodNotFound, 9);
}

TEST(Mcp, ToolsListIsTheCatalogue) {
    const auto d = dispatcher();
    am::Session s;
    const auto r = send(d, s, {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "tools/list"}});
    const auto& tools = r["result"]["tools"];
    ASSERT_EQ(tools.size(), netprobe::assistant::toolCatalogue().size());
    std::set<std::string> names;
    for (const auto& t : tools) {
        names.insert(t["name"]);
        EXPECT_EQ(t["inputSchema"]["type"], "object");
        EXPECT_TRUE(t["description"].is_string());
        EXPECT_EQ(t["annotations"]["readOnlyHint"], true);
        EXPECT_EQ(t["annotations"]["destructiveHint"], false);
        EXPECT_EQ(t["inputSchema"], netprobe::assistant::findTool(t["name"].get<std::string>())->inputSchema());
    }
    for (const char* n : {"list_flows", "list_connections", "list_events", "list_interfaces", "get_topology",
                          "get_diagnosis", "get_qos", "get_bottlenecks", "get_forecast", "get_anomalies",
                          "get_history", "get_cost", "list_l7_endpoints", "list_l7_requests", "get_intel",
                          "get_policies"})
        EXPECT_TRUE(names.contains(n)) << n;
    // params {} and null cursor are fine; a cursor it never gave is not.
    EXPECT_TRUE(send(d, s, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}, {"params", {{"cursor", nullptr}}}})
                    .contains("result"));
    expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/list"}, {"params", {{"cursor", "p2"}}}}),
                am::kInvalidParams, 3);
    expectError(send(d, s, {{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/list"}, {"params", json::array()}}),
                am::kInvalidParams, 4);
}

TEST(Mcp, MalformedMessagesAreJsonRpcErrors) {
    const auto d = dispatcher();
    struct Case {
        std::string text;
        int code;
        json id;
    };
    std::string deep(200, '[');
    deep += std::string(200, ']');
    std::string deep_params = R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_flows","arguments":{"port":)" +
                              std::string(100, '[') + std::string(100, ']') + "}}}";
    json big_batch = json::array();
    for (int i = 0; i < 33; ++i) big_batch.push_back({{"jsonrpc", "2.0"}, {"id", i}, {"method", "ping"}});
    const std::vector<Case> cases = {
        {"", am::kParseError, nullptr},
        {"   ", am::kParseError, nullptr},
        {"{", am::kParseError, nullptr},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"", am::kParseError, nullptr},
        {"hello", am::kParseError, nullptr},
        {"{\"a\":1}garbage", am::kParseError, nullptr},
        {"\xff\xfe{}", am::kParseError, nullptr},
        {"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"p\xffng\"}", am::kParseError, nullptr},
        {deep, am::kParseError, nullptr},
        {deep_params, am::kParseError, nullptr},
        {"null", am::kInvalidRequest, nullptr},
        {"42", am::kInvalidRequest, nullptr},
        {"\"ping\"", am::kInvalidRequest, nullptr},
        {"[]", am::kInvalidRequest, nullptr},
        {big_batch.dump(), am::kInvalidRequest, nullptr},
        {"{}", am::kInvalidRequest, nullptr},
        {R"({"id":1,"method":"ping"})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"1.0","id":1,"method":"ping"})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":2.0,"id":1,"method":"ping"})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":42})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":null})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":{"a":1},"method":"ping"})", am::kInvalidRequest, nullptr},
        {R"({"jsonrpc":"2.0","id":[1],"method":"ping"})", am::kInvalidRequest, nullptr},
        {R"({"jsonrpc":"2.0","id":true,"method":"ping"})", am::kInvalidRequest, nullptr},
        {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":"x"})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"ping","params":7})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":1})", am::kInvalidRequest, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":[]})", am::kInvalidParams, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})", am::kInvalidParams, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":7}})", am::kInvalidParams, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}})", am::kInvalidParams, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_flows","arguments":[1]}})", am::kInvalidParams, 1},
        {R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_flows","arguments":"port=1"}})", am::kInvalidParams, 1},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.text.substr(0, 120));
        am::Session s;
        const auto o = d.handle(c.text, s);
        ASSERT_TRUE(o.response);
        const auto r = json::parse(*o.response);
        expectError(r, c.code, c.id);
        EXPECT_EQ(o.malformed, c.code == am::kParseError || c.code == am::kInvalidRequest);
        EXPECT_EQ(o.response->find('\n'), std::string::npos);  // one line (stdio framing)
    }
    // A batch with a bad member: each member answered on its own.
    am::Session s;
    const auto b = send(d, s, json::array({1, {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "ping"}}, {{"foo", 1}}}));
    ASSERT_EQ(b.size(), 3u);
    expectError(b[0], am::kInvalidRequest);
    EXPECT_EQ(b[1]["result"], json::object());
    expectError(b[2], am::kInvalidRequest);
}

TEST(Mcp, RandomlyMutatedMessagesNeverCrashAndAlwaysGetJsonRpc) {
    const auto d = dispatcher(fetcher(nobody()));
    const std::vector<std::string> seeds = {
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","clientInfo":{"name":"x"}}})",
        R"({"jsonrpc":"2.0","id":"q","method":"tools/call","params":{"name":"list_flows","arguments":{"port":80,"type":["a"]}}})",
        R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}])",
        R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"list_events","arguments":{"type":["port_scan"],"since":"-5m"}}})",
    };
    std::mt19937 rng(1234);
    const std::string alphabet = "{}[]\":,0123456789-.eE \\truefalsn\x01\xff\xc3\xa9";
    int answered = 0;
    for (int i = 0; i < 3000; ++i) {
        std::string m = seeds[i % seeds.size()];
        const int edits = 1 + static_cast<int>(rng() % 4);
        for (int e = 0; e < edits && !m.empty(); ++e) {
            const std::size_t at = rng() % m.size();
            switch (rng() % 3) {
                case 0: m[at] = alphabet[rng() % alphabet.size()]; break;
                case 1: m.erase(at, 1 + rng() % 3); break;
                default: m.insert(at, 1, alphabet[rng() % alphabet.size()]); break;
            }
        }
        am::Session s;
        am::Outcome o;
        ASSERT_NO_THROW(o = d.handle(m, s)) << m;
        if (!o.response) continue;
        const auto r = json::parse(*o.response, nullptr, false);
        ASSERT_FALSE(r.is_discarded()) << m;
        const auto check = [&](const json& x) {
            ASSERT_TRUE(x.is_object()) << m;
            EXPECT_EQ(x["jsonrpc"], "2.0") << m;
            EXPECT_NE(x.contains("result"), x.contains("error")) << m;
        };
        if (r.is_array()) {
            for (const auto& x : r) check(x);
        } else {
            check(r);
        }
        ++answered;
    }
    EXPECT_GT(answered, 1000);
}

TEST(Mcp, InvalidToolArgumentsAreInvalidParamsNamingTheArgument) {
    const auto d = dispatcher(fetcher(nobody()));
    auto r = call(d, "list_flows", {{"port", 70000}});
    expectError(r, am::kInvalidParams, 7);
    const std::string msg = r["error"]["message"];
    EXPECT_NE(msg.find("list_flows"), std::string::npos) << msg;
    EXPECT_NE(msg.find("argument \"port\": expected an integer from 0 to 65535"), std::string::npos) << msg;
    EXPECT_EQ(r["error"]["data"]["tool"], "list_flows");
    r = call(d, "list_events", {{"type", {"nope"}}});
    expectError(r, am::kInvalidParams, 7);
    r = call(d, "get_history", nullptr);
    expectError(r, am::kInvalidParams, 7);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("\"series\" is required"), std::string::npos);
    r = call(d, "no_such_tool", json::object());
    expectError(r, am::kInvalidParams, 7);
    EXPECT_NE(r["error"]["message"].get<std::string>().find("Unknown tool: no_such_tool"), std::string::npos);
}

TEST(Mcp, AnUnreachableAgentIsAToolErrorNotAProtocolError) {
    const auto conn = nobody();
    const auto d = dispatcher(fetcher(conn));
    const auto r = call(d, "list_interfaces", json::object());
    ASSERT_TRUE(r.contains("result")) << r;
    EXPECT_EQ(r["result"]["isError"], true);
    const std::string text = r["result"]["content"][0]["text"];
    EXPECT_NE(text.find("GET /api/v1/interfaces"), std::string::npos) << text;
    EXPECT_NE(text.find("cannot reach the agent at " + conn.server), std::string::npos) << text;
    // No fetch at all (a dispatcher without an agent): the same kind of answer.
    const auto none = call(dispatcher(), "get_diagnosis", nullptr);
    EXPECT_EQ(none["result"]["isError"], true);
}

TEST(Mcp, EveryToolReadsTheRealAgentApi) {
    const Agent agent(5);
    const auto conn = agent.conn();
    const auto d = dispatcher(fetcher(conn));
    for (const auto& t : netprobe::assistant::toolCatalogue()) {
        SCOPED_TRACE(t.name);
        const json args = t.name == "get_history" ? json{{"series", "iface/veth-mcp/rx_bytes_rate"}} : json::object();
        const auto r = call(d, t.name, args);
        ASSERT_TRUE(r.contains("result")) << r;
        EXPECT_EQ(r["result"]["isError"], false) << r;
        ASSERT_EQ(r["result"]["content"].size(), 1u);
        EXPECT_EQ(r["result"]["content"][0]["type"], "text");
        // The same document as the API's own answer.
        const auto req = t.request(args, 0);
        const auto direct = netprobe::cli::agentGet(conn, req->path, req->query);
        ASSERT_TRUE(direct) << direct.error().what();
        EXPECT_EQ(json::parse(r["result"]["content"][0]["text"].get<std::string>()), json::parse(*direct));
    }
    // What the test's snapshot holds comes through.
    auto r = call(d, "list_flows", {{"sort", "bytes"}, {"limit", 2}});
    auto doc = json::parse(r["result"]["content"][0]["text"].get<std::string>());
    EXPECT_EQ(doc["total"], 5);
    ASSERT_EQ(doc["flows"].size(), 2u);
    EXPECT_EQ(doc["flows"][0]["bytes"], 500);
    EXPECT_EQ(doc["flows"][0]["src_port"], 10004);
    r = call(d, "list_interfaces", nullptr);
    EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("veth-mcp"), std::string::npos);
    // A value the catalogue's format allows but the agent refuses: its 400 as a tool error.
    r = call(d, "list_l7_requests", {{"status", "NO_SUCH_CODE"}});
    EXPECT_EQ(r["result"]["isError"], true) << r;
    EXPECT_NE(r["result"]["content"][0]["text"].get<std::string>().find("the agent answered 400"), std::string::npos) << r;
}

TEST(Mcp, LargeResultsAreTruncatedWithANote) {
    const Agent agent(400);
    const auto conn = agent.conn();
    const auto d = dispatcher(fetcher(conn), 8192);
    const auto r = call(d, "list_flows", {{"limit", 400}});
    ASSERT_EQ(r["result"]["isError"], false) << r;
    const auto& content = r["result"]["content"];
    ASSERT_EQ(content.size(), 2u);
    const std::string text = content[0]["text"];
    EXPECT_LE(text.size(), 8192u);
    const auto doc = json::parse(text);
    EXPECT_EQ(doc["total"], 400);
    const auto kept = doc["flows"].size();
    EXPECT_GT(kept, 5u);
    EXPECT_LT(kept, 400u);
    const std::string note = content[1]["text"];
    EXPECT_NE(note.find("/flows kept " + std::to_string(kept) + " of 400 items"), std::string::npos) << note;
    // The kept flows are the API's first ones.
    const auto direct = json::parse(*netprobe::cli::agentGet(conn, "/api/v1/flows", {{"limit", "400"}}));
    for (std::size_t i = 0; i < kept; ++i) EXPECT_EQ(doc["flows"][i], direct["flows"][i]);
}

// ---- stdio ----

struct Pipe {
    int fd[2] = {-1, -1};
    Pipe() {
        if (::pipe(fd) != 0) throw std::runtime_error("pipe");
    }
    ~Pipe() {
        closeRead();
        closeWrite();
    }
    void closeRead() {
        if (fd[0] >= 0) ::close(fd[0]);
        fd[0] = -1;
    }
    void closeWrite() {
        if (fd[1] >= 0) ::close(fd[1]);
        fd[1] = -1;
    }
};

// Writes `input` to the server's stdin (then EOF), returns its stdout lines and exit code.
std::pair<std::vector<std::string>, int> stdio(const am::Dispatcher& d, const std::string& input,
                                               std::size_t max = cm::kMaxMessageBytes) {
    Pipe in, out;
    int rc = -1;
    std::thread server([&] {
        rc = cm::serveStdio(in.fd[0], out.fd[1], d, max);
        out.closeWrite();
    });
    std::thread writer([&] {
        std::string_view rest = input;
        while (!rest.empty()) {
            const auto n = ::write(in.fd[1], rest.data(), std::min<std::size_t>(rest.size(), 4096));
            if (n <= 0) break;
            rest.remove_prefix(static_cast<std::size_t>(n));
        }
        in.closeWrite();
    });
    std::string all;
    char buf[65536];
    for (ssize_t n; (n = ::read(out.fd[0], buf, sizeof buf)) > 0;) all.append(buf, static_cast<std::size_t>(n));
    writer.join();
    server.join();
    std::vector<std::string> lines;
    for (std::size_t p = 0, nl; (nl = all.find('\n', p)) != std::string::npos; p = nl + 1) lines.push_back(all.substr(p, nl - p));
    EXPECT_TRUE(all.empty() || all.back() == '\n');
    return {lines, rc};
}

TEST(Mcp, StdioAnswersEachLineAndOnlyWithProtocolMessages) {
    const Agent agent(3);
    const auto d = dispatcher(fetcher(agent.conn()));
    const std::string input =
        R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"pipe","version":"0"}}})"
        "\n"
        R"({"jsonrpc":"2.0","method":"notifications/initialized"})"
        "\r\n"
        "\n   \n"  // blank lines: nothing
        "not json\n"
        R"({"jsonrpc":"2.0","id":2,"method":"tools/list"})"
        "\n"
        R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"list_flows","arguments":{"port":10001}}})"
        "\n"
        R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"list_flows","arguments":{"port":"x"}}})"
        "\n" +
        std::string(3000, 'x') +  // longer than the limit below: refused, skipped to its newline
        "\n"
        R"({"jsonrpc":"2.0","id":5,"method":"ping"})";  // the last line without a newline
    const auto [lines, rc] = stdio(d, input, 2048);
    EXPECT_EQ(rc, 0);
    ASSERT_EQ(lines.size(), 7u) << testing::PrintToString(lines);
    std::vector<json> r;
    for (const auto& l : lines) r.push_back(json::parse(l));  // every line is one JSON-RPC message
    EXPECT_EQ(r[0]["result"]["protocolVersion"], "2025-03-26");
    expectError(r[1], am::kParseError);
    EXPECT_EQ(r[2]["result"]["tools"].size(), netprobe::assistant::toolCatalogue().size());
    EXPECT_EQ(r[3]["id"], 3);
    const auto flows = json::parse(r[3]["result"]["content"][0]["text"].get<std::string>());
    EXPECT_EQ(flows["total"], 1);
    EXPECT_EQ(flows["flows"][0]["src_port"], 10001);
    expectError(r[4], am::kInvalidParams, 4);
    expectError(r[5], am::kParseError);
    EXPECT_NE(r[5]["error"]["message"].get<std::string>().find("longer than 2048 bytes"), std::string::npos);
    EXPECT_EQ(r[6]["id"], 5);
    // Nothing at all: EOF at once, exit 0.
    const auto [none, rc2] = stdio(d, "");
    EXPECT_TRUE(none.empty());
    EXPECT_EQ(rc2, 0);
}

TEST(Mcp, StdioStopsWhenItsReaderIsGone) {
    const auto d = dispatcher();
    Pipe in, out;
    out.closeRead();  // nobody reads the answers
    ::signal(SIGPIPE, SIG_IGN);
    const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})" "\n";
    ASSERT_EQ(::write(in.fd[1], ping.data(), ping.size()), static_cast<ssize_t>(ping.size()));
    // (stdin stays open: the server returns because stdout failed, not at EOF)
    EXPECT_EQ(cm::serveStdio(in.fd[0], out.fd[1], d), 0);
}

// ---- Streamable HTTP ----

struct HttpFixture {
    Agent agent{3};
    am::Dispatcher d = dispatcher(fetcher(agent.conn()));
    std::unique_ptr<cm::HttpServer> server;
    explicit HttpFixture(cm::HttpOptions o = {}) {
        o.host = "127.0.0.1";
        o.port = 0;
        auto s = cm::HttpServer::start(o, d);
        if (!s) throw std::runtime_error(s.error().what());
        server = std::move(*s);
    }
    httplib::Client client() const {
        httplib::Client c("127.0.0.1", server->port());
        c.set_read_timeout(10, 0);
        return c;
    }
    httplib::Result post(const json& msg, const std::string& session = "", httplib::Headers extra = {}) const {
        auto c = client();
        extra.emplace("Accept", "application/json, text/event-stream");
        if (!session.empty()) extra.emplace("Mcp-Session-Id", session);
        return c.Post("/mcp", extra, msg.dump(), "application/json");
    }
    std::string initialize() const {
        auto r = post({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"},
                       {"params", {{"protocolVersion", "2025-06-18"}, {"clientInfo", {{"name", "http-test"}}}}}});
        if (!r || r->status != 200) throw std::runtime_error("initialize failed");
        return r->get_header_value("Mcp-Session-Id");
    }
};

TEST(Mcp, HttpSessionsAreIssuedRequiredAndEnded) {
    HttpFixture f;
    auto r = f.post({{"jsonrpc", "2.0"}, {"id", 1}, {"method", "initialize"}, {"params", {{"protocolVersion", "2025-03-26"}}}});
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->get_header_value("Content-Type"), "application/json");
    const std::string sid = r->get_header_value("Mcp-Session-Id");
    EXPECT_TRUE(std::regex_match(sid, std::regex("[0-9a-f]{32}"))) << sid;
    EXPECT_EQ(json::parse(r->body)["result"]["protocolVersion"], "2025-03-26");
    EXPECT_EQ(f.server->sessions(), 1u);
    EXPECT_NE(f.initialize(), sid);  // each initialize: a new session
    EXPECT_EQ(f.server->sessions(), 2u);

    const json list = {{"jsonrpc", "2.0"}, {"id", 2}, {"method", "tools/list"}};
    r = f.post(list);  // no session
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 400);
    expectError(json::parse(r->body), am::kInvalidRequest);
    r = f.post(list, "0123456789abcdef0123456789abcdef");  // unknown session
    EXPECT_EQ(r->status, 404);
    r = f.post(list, sid);
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(json::parse(r->body)["result"]["tools"].size(), netprobe::assistant::toolCatalogue().size());
    // A notification: 202 without a body.
    r = f.post({{"jsonrpc", "2.0"}, {"method", "notifications/initialized"}}, sid);
    EXPECT_EQ(r->status, 202);
    EXPECT_TRUE(r->body.empty());
    // A tool call reads the agent.
    r = f.post({{"jsonrpc", "2.0"}, {"id", 3}, {"method", "tools/call"},
                {"params", {{"name", "list_flows"}, {"arguments", {{"port", 10002}}}}}},
               sid, {{"MCP-Protocol-Version", "2025-03-26"}});
    EXPECT_EQ(r->status, 200);
    const auto res = json::parse(r->body)["result"];
    EXPECT_EQ(res["isError"], false);
    EXPECT_EQ(json::parse(res["content"][0]["text"].get<std::string>())["flows"][0]["src_port"], 10002);
    // A JSON-RPC error other than a malformed message is a 200 with the error.
    r = f.post({{"jsonrpc", "2.0"}, {"id", 4}, {"method", "tools/call"}, {"params", {{"name", "nope"}}}}, sid);
    EXPECT_EQ(r->status, 200);
    expectError(json::parse(r->body), am::kInvalidParams, 4);
    // DELETE ends it; then 404 for it.
    auto c = f.client();
    auto del = c.Delete("/mcp", {{"Mcp-Session-Id", sid}});
    ASSERT_TRUE(del);
    EXPECT_EQ(del->status, 200);
    EXPECT_EQ(c.Delete("/mcp", {{"Mcp-Session-Id", sid}})->status, 404);
    EXPECT_EQ(c.Delete("/mcp")->status, 400);
    EXPECT_EQ(f.post(list, sid)->status, 404);
    EXPECT_EQ(f.server->sessions(), 1u);
}

TEST(Mcp, HttpRefusesWhatItDoesNotServe) {
    cm::HttpOptions o;
    o.max_body_bytes = 4096;
    HttpFixture f(o);
    const auto sid = f.initialize();
    auto c = f.client();
    // No server-initiated stream.
    auto r = c.Get("/mcp");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(r->get_header_value("Allow"), "POST, DELETE");
    EXPECT_EQ(c.Get("/other")->status, 404);
    // Too large a body: 413, unread.
    const std::string big = R"({"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":")" + std::string(8000, 'x') + "\"}}";
    r = c.Post("/mcp", {{"Mcp-Session-Id", sid}}, big, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 413);
    // Not JSON, or not application/json.
    r = c.Post("/mcp", {{"Mcp-Session-Id", sid}}, "{oops", "application/json");
    EXPECT_EQ(r->status, 400);
    expectError(json::parse(r->body), am::kParseError);
    r = c.Post("/mcp", {{"Mcp-Session-Id", sid}}, "[]", "application/json");
    EXPECT_EQ(r->status, 400);
    expectError(json::parse(r->body), am::kInvalidRequest);
    r = c.Post("/mcp", {{"Mcp-Session-Id", sid}}, R"({"jsonrpc":"2.0","id":1,"method":"ping"})", "text/plain");
    EXPECT_EQ(r->status, 415);
    r = c.Post("/mcp", {{"Mcp-Session-Id", sid}, {"Accept", "text/html"}}, R"({"jsonrpc":"2.0","id":1,"method":"ping"})",
               "application/json");
    EXPECT_EQ(r->status, 406);
    // An unsupported protocol version header.
    const json ping = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}};
    r = f.post(ping, sid, {{"MCP-Protocol-Version", "1999-01-01"}});
    EXPECT_EQ(r->status, 400);
    EXPECT_NE(r->body.find("MCP-Protocol-Version"), std::string::npos);
    EXPECT_EQ(f.post(ping, sid, {{"MCP-Protocol-Version", "2024-11-05"}})->status, 200);
    // Origins: loopback and the server's own host are fine, others are not (DNS rebinding).
    EXPECT_EQ(f.post(ping, sid, {{"Origin", "http://evil.example"}})->status, 403);
    EXPECT_EQ(f.post(ping, sid, {{"Origin", "http://localhost:6274"}})->status, 200);
    EXPECT_EQ(f.post(ping, sid, {{"Origin", "http://127.0.0.1"}})->status, 200);
    EXPECT_EQ(f.post(ping, sid, {{"Origin", "null"}})->status, 403);
}

TEST(Mcp, HttpSessionsAreBoundedAndExpire) {
    cm::HttpOptions o;
    o.max_sessions = 2;
    o.session_idle = 1s;
    HttpFixture f(o);
    const json ping = {{"jsonrpc", "2.0"}, {"id", 1}, {"method", "ping"}};
    const auto a = f.initialize();
    std::this_thread::sleep_for(10ms);
    const auto b = f.initialize();
    EXPECT_EQ(f.post(ping, a)->status, 200);  // a is now the most recently used
    const auto c = f.initialize();            // the least recently used (b) goes
    EXPECT_EQ(f.server->sessions(), 2u);
    EXPECT_EQ(f.post(ping, b)->status, 404);
    EXPECT_EQ(f.post(ping, a)->status, 200);
    EXPECT_EQ(f.post(ping, c)->status, 200);
    std::this_thread::sleep_for(1200ms);
    EXPECT_EQ(f.post(ping, a)->status, 404);  // idle too long
    EXPECT_EQ(f.server->sessions(), 0u);
}

TEST(Mcp, ListenAddressesAndTheSubcommand) {
    EXPECT_EQ(*cm::parseListen("127.0.0.1:8090"), (std::pair<std::string, std::uint16_t>{"127.0.0.1", 8090}));
    EXPECT_EQ(*cm::parseListen("[::1]:0"), (std::pair<std::string, std::uint16_t>{"::1", 0}));
    EXPECT_EQ(*cm::parseListen("localhost:65535"), (std::pair<std::string, std::uint16_t>{"localhost", 65535}));
    for (const char* bad : {"", "8090", ":8090", "127.0.0.1:", "127.0.0.1:65536", "127.0.0.1:http", "::1:8090",
                            "[::1]8090", "127.0.0.1:-1", "127.0.0.1:123456"})
        EXPECT_FALSE(cm::parseListen(bad)) << bad;
    // Binding an address in use fails with a message naming it.
    cm::HttpOptions o;
    HttpFixture f;
    o.port = f.server->port();
    const auto d = dispatcher();
    auto again = cm::HttpServer::start(o, d);
    ASSERT_FALSE(again);
    EXPECT_NE(again.error().what().find("127.0.0.1:" + std::to_string(o.port)), std::string::npos);

    auto parse = [](std::vector<const char*> args) {
        args.insert(args.begin(), "netprobe");
        return netprobe::cli::parse(static_cast<int>(args.size()), args.data(), {}, false);
    };
    auto p = parse({"--server", "https://node-1:8081", "--user", "ops", "mcp"});
    ASSERT_TRUE(p.run) << p.output;
    EXPECT_EQ(p.inv.kind, netprobe::cli::Invocation::Kind::Mcp);
    EXPECT_TRUE(p.inv.mcp_listen.empty());
    EXPECT_EQ(p.inv.mcp_max_result_bytes, 65536u);
    EXPECT_EQ(p.inv.conn.server, "https://node-1:8081");
    EXPECT_EQ(p.inv.conn.user, "ops");
    p = parse({"mcp", "--listen", "127.0.0.1:8090", "--max-result-bytes", "4096"});
    ASSERT_TRUE(p.run) << p.output;
    EXPECT_EQ(p.inv.mcp_listen, "127.0.0.1:8090");
    EXPECT_EQ(p.inv.mcp_max_result_bytes, 4096u);
    for (const auto& bad : {std::vector<const char*>{"mcp", "--listen", "8090"},
                                         {"mcp", "--listen", ""},
                                         {"mcp", "--max-result-bytes", "100"},
                                         {"mcp", "--max-result-bytes", "x"},
                                         {"mcp", "extra"}}) {
        p = parse(bad);
        EXPECT_FALSE(p.run);
        EXPECT_EQ(p.exit_code, netprobe::cli::kExitUsage) << p.output;
        EXPECT_TRUE(p.output.starts_with("netprobe: ")) << p.output;
    }
    EXPECT_NE(netprobe::cli::completionScript("bash").find("mcp)"), std::string::npos);
}

}  // namespace
