// The optional LLM of `netprobe ask` (include/netprobe/assistant/llm.hpp,
// cmd/netprobe/llm_chat.hpp): the figure checker on a table of answers and tool
// results, the anonymizer, the tool-calling loop against a scripted chat callback (tool
// calls, invalid arguments, a made-up number, rounds, errors, the deadline, what leaves
// the node with --anonymize), the chat-completions client against an in-process HTTP
// server, and the command line's LLM options.
#include <gtest/gtest.h>

#include <httplib.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/llm.hpp>

#include "cli.hpp"
#include "llm_chat.hpp"

namespace {

using nlohmann::json;
using namespace netprobe::assistant;
using std::chrono::milliseconds;

// ---------------------------------------------------------------------------
// figures

std::vector<std::string> texts(const std::vector<Figure>& fs) {
    std::vector<std::string> v;
    for (const auto& f : fs) v.push_back(f.text);
    return v;
}

TEST(AssistantLlmFigures, ExtractsNumbersUnitsAddressesAndTimes) {
    const auto fs = extractFigures(
        "198.18.0.2 sent 312,600 bytes (305.3 KiB) to 198.18.0.1:7201 at 14:05:33; error rate 12.5%, p99 1.2 ms, "
        "8 Mbit/s, about 1.2k packets, 2 million flows, 1h30m, [fd00::1]:443, 2026-01-05T14:05:33Z.");
    EXPECT_EQ(texts(fs), (std::vector<std::string>{"198.18.0.2", "312,600 bytes", "305.3 KiB", "198.18.0.1", "7201",
                                                   "14:05:33", "12.5%", "1.2 ms", "8 Mbit/s", "1.2k", "2 million",
                                                   "1h30m", "fd00::1", "443", "2026-01-05T14:05:33Z"}));
    EXPECT_EQ(fs[1].value, 312600);
    EXPECT_EQ(fs[2].value, 305.3);
    EXPECT_DOUBLE_EQ(fs[2].half_ulp, 0.05);
    EXPECT_EQ(fs[0].kind, Figure::Kind::Address);
    EXPECT_EQ(fs[5].kind, Figure::Kind::TimeOfDay);
    EXPECT_EQ(fs[14].kind, Figure::Kind::DateTime);
    EXPECT_EQ(fs[14].unix_seconds, 1767621933);
    EXPECT_TRUE(fs[9].approximate);
    EXPECT_EQ(fs[11].readings, (std::vector<Figure::Reading>{{1, Dim::Seconds}}));
    EXPECT_EQ(fs[11].value, 5400);
}

TEST(AssistantLlmFigures, DigitsInWordsNamesAndVersionsAreNotFigures) {
    EXPECT_EQ(texts(extractFigures("eth0 veth1 p99 p50 IPv6 http2 HTTP/1.1 TLS 1.3 pod-1 ip-3 ns-2/pod-4 x86_64 5xx "
                                   "the 2nd edge /api/v1/flows 02:42:ac:11:00:02 #3 v1.2.3 3f9a2b1c")),
              std::vector<std::string>{});
    // a range is two figures; a negative number keeps its sign
    const auto r = extractFigures("10-20 ms, -5 drops, 80, 443");
    EXPECT_EQ(texts(r), (std::vector<std::string>{"10", "20 ms", "-5", "80", "443"}));
    EXPECT_EQ(r[2].value, -5);
    EXPECT_EQ(texts(extractFigures("two flows and twenty-five packets, one of them")),
              (std::vector<std::string>{"two", "twenty-five"}));
}

struct Row {
    const char* answer;
    const char* facts;                  // a tool result (JSON)
    std::vector<std::string> unchecked;  // figures that must be flagged; all others checked
    std::int32_t utc_offset = 0;
};

TEST(AssistantLlmFigures, CheckerTable) {
    const std::vector<Row> rows = {
        // exact, thousands separators, a thin space, an exponent
        {"312600 bytes", R"({"bytes_out":312600})", {}},
        {"312,600 bytes", R"({"bytes_out":312600})", {}},
        {"312\xE2\x80\xAF" "600 bytes", R"({"bytes_out":312600})", {}},
        {"1.5e3 packets", R"({"packets":1500})", {}},
        // binary and decimal units, rounding at the written digits
        {"305.3 KiB", R"({"bytes_out":312600})", {}},
        {"305 KiB", R"({"bytes_out":312600})", {}},
        {"0.3 MiB", R"({"bytes_out":312600})", {}},
        {"312.6 KB", R"({"bytes_out":312600})", {}},
        {"1.5 KiB", R"({"bytes":1536})", {}},
        {"1.5 KiB", R"({"bytes":1700})", {"1.5 KiB"}},
        {"3 GiB and 3 GB", R"({"bytes":3221225472})", {}},
        {"306 KiB", R"({"bytes_out":312600})", {"306 KiB"}},
        // ratios and percentages
        {"12.5%", R"({"error_rate":0.125})", {}},
        {"12.5 percent", R"({"error_rate":0.125})", {}},
        {"0.125", R"({"error_rate":0.125})", {}},
        {"45.2%", R"({"utilisation_percent":45.2})", {}},
        {"12.5%", R"({"error_rate":0.2})", {"12.5%"}},
        // durations: keys name the unit (_seconds, _ms), Go durations
        {"1.2 ms", R"({"p99_seconds":0.0012})", {}},
        {"1.2 ms", R"({"rtt_ms":{"p99":1.2}})", {}},
        {"1200 \xC2\xB5s", R"({"rtt_ms":1.2})", {}},
        {"1.2 s", R"({"p99_seconds":0.0012})", {"1.2 s"}},
        {"5 minutes, 5m, 300 s", R"({"window_seconds":300})", {}},
        {"1h30m", R"({"span_seconds":5400})", {}},
        {"250ms", R"({"duration_seconds":0.25})", {}},
        {"300 bytes", R"({"window_seconds":300})", {"300 bytes"}},
        // rates in bits and bytes
        {"8 Mbit/s, 8 Mbps, 1 MB/s", R"({"bytes_per_second":1000000})", {}},
        // scaled counts, approximations
        {"1.2k packets", R"({"packets":1234})", {}},
        {"1.2k packets", R"({"packets":1300})", {"1.2k"}},
        {"2 million", R"({"packets":2000000})", {}},
        {"about 1,200 packets", R"({"packets":1234})", {}},
        {"1,200 packets", R"({"packets":1234})", {"1,200"}},
        // counts of items and sums of a list
        {"3 flows", R"({"flows":[{"a":1},{"a":2},{"a":7}]})", {}},
        {"two flows", R"({"flows":[{"a":1},{"a":2}]})", {}},
        {"three flows", R"({"flows":[{"a":1},{"a":5}]})", {"three"}},
        {"350 bytes in total", R"({"edges":[{"bytes_out":100},{"bytes_out":250}]})", {}},
        {"-5", R"({"delta":-5})", {}},
        // figures in the results' strings
        {"1,234 overflows in 5 minutes", R"({"title":"1234 overflows in 5 min"})", {}},
        // addresses (normalised), ports after them
        {"198.18.0.1:7201", R"({"dst_ip":"198.18.0.1","dst_port":7201})", {}},
        {"198.18.0.9", R"({"dst_ip":"198.18.0.1"})", {"198.18.0.9"}},
        {"fd00:0::1", R"({"ip":"fd00::1"})", {}},
        {"[fd00::1]:443", R"({"target":"fd00::1","port":443})", {}},
        // times: UTC or the reader's zone, to the minute or the second; dates
        {"at 14:05 and 14:05:33 on 2026-01-05", R"({"detected_at":"2026-01-05T14:05:33Z"})", {}},
        {"at 15:05", R"({"detected_at":"2026-01-05T14:05:33Z"})", {}, 3600},
        {"at 2:05 pm", R"({"detected_at":"2026-01-05T14:05:33Z"})", {}},
        {"at 16:05", R"({"detected_at":"2026-01-05T14:05:33Z"})", {"16:05"}, 3600},
        {"since 14:05", R"({"since":1767621933})", {}},
        {"2026-01-05T14:05:33Z", R"({"last_seen":"2026-01-05T14:05:33.412Z"})", {}},
        // made-up figures among real ones
        {"312600 bytes and 9,999 drops", R"({"bytes_out":312600,"drops":12})", {"9,999"}},
        {"nothing numeric here", R"({"bytes":1})", {}},
    };
    for (const auto& r : rows) {
        Facts facts(r.utc_offset);
        facts.addDocument("get_test #1", json::parse(r.facts));
        const auto v = verifyFigures(r.answer, facts);
        std::vector<std::string> unchecked;
        for (const auto& f : v.figures)
            if (!f.checked) unchecked.push_back(f.figure.text);
        EXPECT_EQ(unchecked, r.unchecked) << "answer: " << r.answer << "\nfacts: " << r.facts;
        EXPECT_EQ(v.ok(), r.unchecked.empty()) << r.answer;
        for (const auto& f : v.figures) {
            if (f.checked) {
                EXPECT_FALSE(f.source.empty()) << r.answer;
            }
        }
    }
}

TEST(AssistantLlmFigures, TheQuestionIsASourceAndSourcesAreNamed) {
    Facts facts;
    facts.addText("the question", "top 5 talkers in the last 10 minutes");
    facts.addDocument("get_topology #1", json::parse(R"({"edges":[{"bytes_out":312600}]})"));
    auto v = verifyFigures("The top 5 talkers over 10 minutes: one edge of 312600 bytes; 7 others.", facts);
    ASSERT_EQ(v.figures.size(), 4u);
    EXPECT_EQ(v.figures[0].source, "the question");
    EXPECT_EQ(v.figures[2].source, "get_topology #1 /edges/0/bytes_out = 312600");
    EXPECT_FALSE(v.figures[3].checked);
    EXPECT_EQ(v.figures[3].figure.text, "7");
    const auto j = v.toJson();
    EXPECT_FALSE(j["ok"].get<bool>());
    EXPECT_EQ(j["unchecked"][0]["text"], "7");
    EXPECT_NE(j["unchecked"][0]["context"].get<std::string>().find("7 others"), std::string::npos);
}

// ---------------------------------------------------------------------------
// anonymizer

const char* kPods = R"({"enabled":true,"pods":[
  {"namespace":"shop","name":"cart-1","node":"worker-a","ips":["198.18.0.7"],"workload":"cart"},
  {"namespace":"billing","name":"ledger-0","node":"worker-a","ips":["198.18.0.8","fd00::8"],"workload":"ledger"}]})";

TEST(AssistantLlmAnonymizer, MasksLearnedNamesAndEveryAddressAndRestoresThem) {
    Anonymizer a;
    a.learnDocument(json::parse(kPods));
    const std::string text =
        "pod shop/cart-1 on worker-a (198.18.0.7) talks to billing/ledger-0 at [fd00::8]:443 and 203.0.113.9; "
        "cart.shop.svc.cluster.local resolves; the shopping list is not a name.";
    const std::string m = a.mask(text);
    for (const char* original : {"shop/", "cart-1", "worker-a", "198.18.0.7", "billing", "ledger-0", "fd00::8",
                                 "203.0.113.9", "cart.shop"})
        EXPECT_EQ(m.find(original), std::string::npos) << original << " in " << m;
    EXPECT_NE(m.find("shopping"), std::string::npos) << "whole words only: " << m;
    EXPECT_NE(m.find("ns-1/pod-1"), std::string::npos) << m;
    EXPECT_NE(m.find("[ip-2]:443"), std::string::npos) << m;
    EXPECT_EQ(a.restore(m), text);
    // stable: the same name, the same placeholder
    EXPECT_EQ(a.mask(std::string_view("cart-1 and 198.18.0.7")), "pod-1 and ip-1");
    // JSON: values and keys
    const json doc = {{"198.18.0.7", {{"pod", "cart-1"}, {"namespace", "shop"}}}};
    const json md = a.maskJson(doc);
    EXPECT_EQ(md.dump(), R"({"ip-1":{"namespace":"ns-1","pod":"pod-1"}})");
    EXPECT_EQ(a.restoreJson(md), doc);
}

TEST(AssistantLlmAnonymizer, NamesFromTheQuestionAndLookalikes) {
    Anonymizer a;
    a.learnQuestion("why is pod web/frontend-7d9 slow, and what does deployment api/gateway talk to in namespace "
                    "payments? tcp/443 and 5/10 are not names");
    const std::string m = a.mask(std::string_view("web frontend-7d9 api gateway payments tcp 443"));
    EXPECT_EQ(m, "ns-1 pod-1 ns-2 wl-1 ns-3 tcp 443");
    // a pod really named like a placeholder gets a placeholder of its own
    Anonymizer b;
    b.learnDocument(json::parse(R"({"pods":[{"namespace":"default","name":"pod-1"},{"namespace":"default","name":"web"}]})"));
    const std::string mb = b.mask(std::string_view("pod-1 web default"));
    EXPECT_EQ(b.restore(mb), "pod-1 web default");
    EXPECT_EQ(b.unknownPlaceholders(mb).size(), 0u);
    EXPECT_EQ(b.unknownPlaceholders(std::string_view("pod-77 and my-pod-1")).size(), 1u);
    EXPECT_EQ(b.restore(std::string_view("pod-77")), "pod-77");
}

// ---------------------------------------------------------------------------
// the loop against a scripted chat callback

// A recorded topology answer of the real agent (tests/e2e/test_ask.py's capture).
json capturedTopology() {
    std::ifstream f(std::string(NETPROBE_SOURCE_DIR) + "/tests/unit/data/ask/top_talkers.json");
    const auto j = json::parse(f);
    return j["documents"][0];
}

json toolCall(const std::string& id, const std::string& name, const json& args) {
    return {{"id", id}, {"type", "function"}, {"function", {{"name", name}, {"arguments", args.dump()}}}};
}
json callsMessage(const std::vector<json>& calls) {
    json choice = {{"index", 0},
                   {"message", {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", json(calls)}}},
                   {"finish_reason", "tool_calls"}};
    return {{"model", "scripted"}, {"choices", json::array({choice})}};
}
json textMessage(const std::string& text) {
    json choice = {{"index", 0}, {"message", {{"role", "assistant"}, {"content", text}}}, {"finish_reason", "stop"}};
    return {{"model", "scripted"}, {"choices", json::array({choice})}};
}
// The tool messages of a request, by tool_call_id.
std::map<std::string, std::string> toolMessages(const json& req) {
    std::map<std::string, std::string> m;
    for (const auto& msg : req["messages"])
        if (msg["role"] == "tool") m[msg["tool_call_id"]] = msg["content"];
    return m;
}

struct FakeAgent {
    std::map<std::string, json> docs;  // path -> document
    std::vector<ApiRequest> got;
    netprobe::Result<std::string> operator()(const ApiRequest& r, milliseconds) {
        got.push_back(r);
        auto it = docs.find(r.path);
        if (it == docs.end()) return std::unexpected(netprobe::makeError("the agent answered 404 for " + r.path));
        return it->second.dump();
    }
};

LlmIo ioOf(std::function<netprobe::Result<json>(const json&, milliseconds)> chat, FakeAgent& agent) {
    LlmIo io;
    io.chat = std::move(chat);
    io.tool = [&agent](const ApiRequest& r, milliseconds t) { return agent(r, t); };
    io.clock.unix_now = [] { return std::int64_t{1780000000}; };
    return io;
}

std::string kib(double bytes) {
    char b[32];
    std::snprintf(b, sizeof b, "%.1f KiB", bytes / 1024);
    return b;
}

TEST(AssistantLlmLoop, ToolCallsAreValidatedRunBoundedAndTheAnswerIsVerified) {
    FakeAgent agent;
    agent.docs["/api/v1/topology"] = capturedTopology();
    std::vector<json> requests;
    auto chat = [&](const json& req, milliseconds) -> netprobe::Result<json> {
        requests.push_back(req);
        if (requests.size() == 1)
            return callsMessage({toolCall("c1", "get_topology", {{"window", "5m"}, {"group_by", "host"}}),
                                 toolCall("c2", "list_flows", {{"port", 70000}}),
                                 toolCall("c3", "drop_table", json::object())});
        // The model reads the figures from what it was sent.
        const auto tm = toolMessages(req);
        const json topo = json::parse(tm.at("c1"));
        const json& e = topo["edges"][0];
        return textMessage("From get_topology: " + e["source"].get<std::string>() + " sent " +
                           std::to_string(e["bytes_out"].get<long long>()) + " bytes (" + kib(e["bytes_out"]) + ") to " +
                           e["target"].get<std::string>() + ":" + std::to_string(e["port"].get<int>()) + " over " +
                           std::to_string(topo["window_seconds"].get<int>() / 60) + " minutes.");
    };
    LlmOptions o;
    auto r = askLlm("which host sent the most?", o, ioOf(chat, agent));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(requests.size(), 2u);
    // the first request: system prompt, question, the catalogue as functions
    const json& first = requests[0];
    EXPECT_EQ(first["messages"][0]["role"], "system");
    EXPECT_NE(first["messages"][0]["content"].get<std::string>().find("must come from a tool result"), std::string::npos);
    EXPECT_EQ(first["messages"][1], (json{{"role", "user"}, {"content", "which host sent the most?"}}));
    EXPECT_EQ(first["tools"].size(), toolCatalogue().size());
    EXPECT_EQ(first["tools"][0]["type"], "function");
    EXPECT_EQ(first["tools"][0]["function"]["parameters"], toolCatalogue()[0].inputSchema());
    EXPECT_EQ(first["tool_choice"], "auto");
    // only the valid call ran, with the catalogue's request; the others went back as errors
    ASSERT_EQ(agent.got.size(), 1u);
    EXPECT_EQ(agent.got[0].target(), "/api/v1/topology?group_by=host&window=5m");
    const auto tm = toolMessages(requests[1]);
    EXPECT_EQ(tm.at("c1"), boundJson(capturedTopology(), o.max_result_bytes).text);
    EXPECT_TRUE(tm.at("c2").starts_with("error: not run: invalid arguments for list_flows: argument \"port\""))
        << tm.at("c2");
    EXPECT_NE(tm.at("c3").find("there is no tool \"drop_table\""), std::string::npos) << tm.at("c3");
    // the model's own message goes back before the results
    const json& back = requests[1]["messages"][2];
    EXPECT_EQ(back["role"], "assistant");
    EXPECT_EQ(back["tool_calls"].size(), 3u);
    ASSERT_EQ(r->calls.size(), 3u);
    EXPECT_TRUE(r->calls[0].request.has_value());
    EXPECT_FALSE(r->calls[1].request.has_value());
    EXPECT_EQ(r->rounds, 2u);
    EXPECT_EQ(r->model, "scripted");
    EXPECT_TRUE(r->verification.ok()) << r->verification.toJson().dump(1);
    EXPECT_EQ(r->verification.figures.size(), 6u) << r->text;  // 2 addresses, bytes, KiB, port, minutes
}

TEST(AssistantLlmLoop, AMadeUpNumberIsFlagged) {
    FakeAgent agent;
    agent.docs["/api/v1/topology"] = capturedTopology();
    int n = 0;
    auto chat = [&](const json&, milliseconds) -> netprobe::Result<json> {
        if (n++ == 0) return callsMessage({toolCall("a", "get_topology", json::object())});
        return textMessage("198.19.198.6 sent 312600 bytes and dropped 4,711 packets.");
    };
    auto r = askLlm("what is dropped?", {}, ioOf(chat, agent));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_FALSE(r->verification.ok());
    ASSERT_EQ(r->verification.unchecked(), 1u);
    const auto j = r->toJson();
    EXPECT_EQ(j["verification"]["unchecked"][0]["text"], "4,711");
    EXPECT_EQ(j["verification"]["checked"].size(), 2u);
    EXPECT_EQ(j["tool_calls"][0]["target"], "/api/v1/topology");
}

TEST(AssistantLlmLoop, RoundsAreBoundedAndTheLastRequestForbidsTools) {
    FakeAgent agent;
    agent.docs["/api/v1/interfaces"] = json::parse(R"({"interfaces":[{"name":"eth0","ingress_bytes":10}]})");
    std::vector<json> requests;
    bool answer_at_last = false;
    auto chat = [&](const json& req, milliseconds) -> netprobe::Result<json> {
        requests.push_back(req);
        if (req["tool_choice"] == "none" && answer_at_last) return textMessage("eth0 received 10 bytes.");
        return callsMessage({toolCall("x" + std::to_string(requests.size()), "list_interfaces", json::object())});
    };
    LlmOptions o;
    o.max_rounds = 2;
    auto r = askLlm("q", o, ioOf(chat, agent));
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, LlmFailure::Kind::NoAnswer);
    EXPECT_NE(r.error().message.find("after 2 rounds"), std::string::npos);
    EXPECT_EQ(requests.size(), 3u);
    EXPECT_EQ(r.error().calls.size(), 2u);
    EXPECT_EQ(requests[2]["tool_choice"], "none");
    requests.clear();
    answer_at_last = true;
    auto ok = askLlm("q", o, ioOf(chat, agent));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ(ok->rounds, 3u);
    EXPECT_TRUE(ok->verification.ok());
}

TEST(AssistantLlmLoop, EndpointErrorsBadAnswersAndTheDeadline) {
    FakeAgent agent;
    auto once = [&](std::function<netprobe::Result<json>(const json&, milliseconds)> chat, LlmOptions o = {}) {
        return askLlm("q", o, ioOf(std::move(chat), agent));
    };
    auto r = once([](const json&, milliseconds) -> netprobe::Result<json> {
        return std::unexpected(netprobe::makeError("cannot reach the LLM endpoint: Connection"));
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, LlmFailure::Kind::Endpoint);
    EXPECT_NE(r.error().message.find("Connection"), std::string::npos);
    r = once([](const json&, milliseconds) -> netprobe::Result<json> {
        return std::unexpected(netprobe::Error{ETIMEDOUT, "did not answer within 1.0 s"});
    });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, LlmFailure::Kind::Timeout);
    r = once([](const json&, milliseconds) -> netprobe::Result<json> { return json{{"error", {{"message", "model not found"}}}}; });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, LlmFailure::Kind::Endpoint);
    EXPECT_NE(r.error().message.find("model not found"), std::string::npos);
    for (const char* bad : {R"({"choices":[]})", R"({"object":"list"})", R"([1,2])",
                            R"({"choices":[{"message":{"content":5}}]})",
                            R"({"choices":[{"message":{"content":null,"tool_calls":{"a":1}}}]})"}) {
        r = once([bad](const json&, milliseconds) -> netprobe::Result<json> { return json::parse(bad); });
        ASSERT_FALSE(r) << bad;
        EXPECT_EQ(r.error().kind, LlmFailure::Kind::BadResponse) << bad << ": " << r.error().message;
    }
    r = once([](const json&, milliseconds) -> netprobe::Result<json> { return textMessage("   "); });
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().kind, LlmFailure::Kind::NoAnswer);

    // The deadline: each chat request gets what is left, and none starts after it.
    auto now = std::chrono::steady_clock::time_point{};
    std::vector<milliseconds> given;
    LlmIo io = ioOf(
        [&](const json&, milliseconds left) -> netprobe::Result<json> {
            given.push_back(left);
            now += std::chrono::seconds(10);
            return callsMessage({toolCall("t" + std::to_string(given.size()), "list_interfaces", json::object())});
        },
        agent);
    io.clock.mono = [&] { return now; };
    LlmOptions o;
    o.deadline = std::chrono::seconds(15);
    auto t = askLlm("q", o, io);
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().kind, LlmFailure::Kind::Timeout);
    EXPECT_EQ(given, (std::vector<milliseconds>{milliseconds(15000), milliseconds(5000)}));
}

TEST(AssistantLlmLoop, AgentErrorsAndTruncationReachTheModel) {
    FakeAgent agent;  // no documents: every call is a 404
    json big = {{"flows", json::array()}};
    for (int i = 0; i < 400; ++i) big["flows"].push_back({{"src_port", 1000 + i}, {"bytes", i * 10}});
    std::vector<json> requests;
    auto chat = [&](const json& req, milliseconds) -> netprobe::Result<json> {
        requests.push_back(req);
        if (requests.size() == 1) return callsMessage({toolCall("e", "list_interfaces", json::object())});
        if (requests.size() == 2) {
            agent.docs["/api/v1/flows"] = big;
            // Ollama sends arguments as an object
            const json fn = {{"name", "list_flows"}, {"arguments", {{"limit", 400}}}};
            return callsMessage({json{{"id", "f"}, {"type", "function"}, {"function", fn}}});
        }
        const auto tm = toolMessages(req);
        EXPECT_TRUE(tm.at("e").starts_with("error: the NetProbe agent could not answer GET /api/v1/interfaces"));
        EXPECT_NE(tm.at("f").find("was truncated"), std::string::npos);
        return textMessage("The list was cut.");
    };
    LlmOptions o;
    o.max_result_bytes = 2048;
    auto r = askLlm("q", o, ioOf(chat, agent));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(r->calls.size(), 2u);
    EXPECT_FALSE(r->calls[0].error.empty());
    EXPECT_TRUE(r->calls[1].truncated);
    EXPECT_EQ(r->calls[1].arguments, (json{{"limit", 400}}));
    EXPECT_LE(r->calls[1].result.find("\n\n"), 2048u);
}

TEST(AssistantLlmLoop, WithAnonymizeNoNameOrAddressReachesTheModel) {
    FakeAgent agent;
    agent.docs["/api/v1/pods"] = json::parse(kPods);
    agent.docs["/api/v1/flows"] = json::parse(R"({"total":1,"returned":1,"flows":[
        {"src_ip":"198.18.0.7","src_port":41000,"dst_ip":"203.0.113.9","dst_port":443,"protocol":"tcp",
         "bytes":52000,"packets":40,"src_pod":"cart-1","src_namespace":"shop","src_workload":"cart",
         "dst_service":"billing/ledger","interface":"veth1"}]})");
    std::vector<std::string> sent;
    json flows_result;
    auto chat = [&](const json& req, milliseconds) -> netprobe::Result<json> {
        sent.push_back(req.dump());
        if (sent.size() == 1) {
            // the question's pod and address arrive as placeholders: ask with the address's
            const std::string q = req["messages"][1]["content"];
            const auto at = q.find("ip-");
            EXPECT_NE(at, std::string::npos) << q;
            return callsMessage({toolCall("f", "list_flows", {{"ip", q.substr(at, q.find_first_of(" ?", at) - at)}})});
        }
        flows_result = json::parse(toolMessages(req).at("f"));
        const json& f = flows_result["flows"][0];
        return textMessage("Pod " + f["src_namespace"].get<std::string>() + "/" + f["src_pod"].get<std::string>() +
                           " (" + f["src_ip"].get<std::string>() + ") sent " + std::to_string(f["bytes"].get<int>()) +
                           " bytes to " + f["dst_ip"].get<std::string>() + ":443 (" + f["dst_service"].get<std::string>() +
                           "); pod-99 is not one of them.");
    };
    LlmOptions o;
    o.anonymize = true;
    o.anonymize_prime = {{"/api/v1/pods", {}}};
    auto r = askLlm("what does pod shop/cart-1 at 198.18.0.7 send on worker-a?", o, ioOf(chat, agent));
    ASSERT_TRUE(r) << r.error().message;
    ASSERT_EQ(sent.size(), 2u);
    for (const auto& s : sent)
        for (const char* original : {"shop", "cart-1", "198.18.0.7", "203.0.113.9", "worker-a", "billing", "ledger",
                                     "fd00::8", "198.18.0.8"})
            EXPECT_EQ(s.find(original), std::string::npos) << original << " reached the model";
    EXPECT_EQ(flows_result["flows"][0]["src_pod"], "pod-1");
    // the agent got the real address, the reader gets the real names
    ASSERT_EQ(agent.got.size(), 2u);
    EXPECT_EQ(agent.got[1].query.at("ip"), "198.18.0.7");
    EXPECT_EQ(r->calls[0].arguments["ip"], "198.18.0.7");
    EXPECT_TRUE(r->text.starts_with("Pod shop/cart-1 (198.18.0.7) sent 52000 bytes to 203.0.113.9:443 (billing/ledger)"))
        << r->text;
    EXPECT_TRUE(r->anonymized);
    EXPECT_GE(r->placeholders, 8u);
    // every figure checked but the placeholder the model made up
    ASSERT_EQ(r->verification.unchecked(), 1u) << r->verification.toJson().dump(1);
    const auto u = r->verification.toJson()["unchecked"][0];
    EXPECT_EQ(u["text"], "pod-99");
    EXPECT_EQ(u["kind"], "placeholder");
}

// ---------------------------------------------------------------------------
// the chat-completions client and the command line

TEST(AssistantLlmClient, EndpointUrls) {
    using netprobe::cli::llm::parseChatUrl;
    auto full = [](const char* u) {
        auto r = parseChatUrl(u);
        return r ? r->full() : "error: " + r.error().message;
    };
    EXPECT_EQ(full("http://127.0.0.1:8080"), "http://127.0.0.1:8080/v1/chat/completions");
    EXPECT_EQ(full("http://localhost:11434/v1/"), "http://localhost:11434/v1/chat/completions");
    EXPECT_EQ(full("https://api.example.com/openai/v1/chat/completions"),
              "https://api.example.com/openai/v1/chat/completions");
    EXPECT_EQ(full("http://[::1]:8080/api"), "http://[::1]:8080/api/chat/completions");
    for (const char* bad : {"ftp://x", "http://", "http://user:key@host:1/v1", "http://h:99999", "http://h:8080/v1?x=1",
                            "http://h:/v1", "http://h 1"})
        EXPECT_FALSE(parseChatUrl(bad)) << bad;
}

class ChatServer {
public:
    ChatServer() {
        port_ = svr_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { svr_.listen_after_bind(); });
        for (int i = 0; i < 2000 && !svr_.is_running(); ++i) std::this_thread::sleep_for(milliseconds(1));
    }
    ~ChatServer() {
        {
            std::lock_guard lk(mu_);
            release_ = true;
        }
        cv_.notify_all();
        svr_.stop();
        thread_.join();
    }
    httplib::Server& svr() { return svr_; }
    void hold() {  // a handler that never answers until the server ends
        std::unique_lock lk(mu_);
        cv_.wait(lk, [this] { return release_; });
    }
    netprobe::cli::llm::ChatClient client(const std::string& path = "/v1/chat/completions") {
        return {{"http://127.0.0.1:" + std::to_string(port_), path}, "s3cret-key", "", 4096};
    }

private:
    httplib::Server svr_;
    int port_ = 0;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool release_ = false;
};

TEST(AssistantLlmClient, PostsWithTheKeyAndReportsStatusesBodiesSizesAndTimeouts) {
    using netprobe::cli::llm::chatCompletion;
    ChatServer s;
    std::string auth, body;
    s.svr().Post("/v1/chat/completions", [&](const httplib::Request& req, httplib::Response& res) {
        auth = req.get_header_value("Authorization");
        body = req.body;
        res.set_content(textMessage("ok").dump(), "application/json");
    });
    s.svr().Post("/500", [](const httplib::Request&, httplib::Response& res) {
        res.status = 500;
        res.set_content(R"({"error":{"message":"the model crashed"}})", "application/json");
    });
    s.svr().Post("/401", [](const httplib::Request&, httplib::Response& res) {
        res.status = 401;
        res.set_content("no", "text/plain");
    });
    s.svr().Post("/garbage", [](const httplib::Request&, httplib::Response& res) {
        res.set_content("<html>not json</html>", "text/html");
    });
    s.svr().Post("/huge", [](const httplib::Request&, httplib::Response& res) {
        res.set_content(std::string(100000, ' ') + "{}", "application/json");
    });
    s.svr().Post("/hang", [&](const httplib::Request&, httplib::Response& res) {
        s.hold();
        res.set_content("{}", "application/json");
    });
    const json req = {{"messages", json::array()}};
    auto ok = chatCompletion(s.client(), req, milliseconds(5000));
    ASSERT_TRUE(ok) << ok.error().message;
    EXPECT_EQ((*ok)["choices"][0]["message"]["content"], "ok");
    EXPECT_EQ(auth, "Bearer s3cret-key");
    EXPECT_EQ(json::parse(body), req);

    auto e = chatCompletion(s.client("/500"), req, milliseconds(5000));
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("answered 500: the model crashed"), std::string::npos) << e.error().message;
    e = chatCompletion(s.client("/401"), req, milliseconds(5000));
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("refused the request (401"), std::string::npos) << e.error().message;
    EXPECT_EQ(e.error().message.find("s3cret"), std::string::npos);
    e = chatCompletion(s.client("/garbage"), req, milliseconds(5000));
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("is not JSON: \"<html>not json</html>\""), std::string::npos) << e.error().message;
    e = chatCompletion(s.client("/huge"), req, milliseconds(5000));
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().message.find("more than 4096 bytes"), std::string::npos) << e.error().message;
    const auto t0 = std::chrono::steady_clock::now();
    e = chatCompletion(s.client("/hang"), req, milliseconds(700));
    const auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_FALSE(e);
    EXPECT_EQ(e.error().code, ETIMEDOUT) << e.error().message;
    EXPECT_GE(took, milliseconds(650));
    EXPECT_LT(took, milliseconds(3000));
    // nothing listens: not a timeout
    netprobe::cli::llm::ChatClient none{{"http://127.0.0.1:1", "/v1/chat/completions"}, "", "", 4096};
    e = chatCompletion(none, req, milliseconds(2000));
    ASSERT_FALSE(e);
    EXPECT_NE(e.error().code, ETIMEDOUT);
    EXPECT_NE(e.error().message.find("cannot reach the LLM endpoint http://127.0.0.1:1/v1/chat/completions"),
              std::string::npos)
        << e.error().message;
}

netprobe::cli::ParseResult parseCli(std::vector<const char*> args, std::map<std::string, std::string> env = {}) {
    args.insert(args.begin(), "netprobe");
    return netprobe::cli::parse(static_cast<int>(args.size()), args.data(), env, false);
}

TEST(AssistantLlmCli, AskLlmOptions) {
    using netprobe::cli::LlmSettings;
    auto r = parseCli({"ask", "why is it slow"});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.llm.mode, LlmSettings::Mode::Auto);
    EXPECT_TRUE(r.inv.llm.endpoint.empty());
    EXPECT_EQ(r.inv.llm.timeout, milliseconds(120000));
    EXPECT_EQ(r.inv.llm.max_rounds, 8u);

    const std::string keyfile = ::testing::TempDir() + "/llm-key";
    {
        std::ofstream f(keyfile);
        f << "sk-from-file\n";
    }
    r = parseCli({"ask", "--llm=always", "--llm-endpoint", "http://127.0.0.1:8080", "--llm-model", "qwen2.5",
                  "--llm-key-file", keyfile.c_str(), "--llm-timeout", "30s", "--llm-max-rounds", "3", "--anonymize",
                  "--llm-max-result-bytes", "4096", "who", "is", "slow"},
                 {{"NETPROBE_LLM_KEY", "sk-from-env"}});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.llm.mode, LlmSettings::Mode::Always);
    EXPECT_EQ(r.inv.llm.endpoint, "http://127.0.0.1:8080");
    EXPECT_EQ(r.inv.llm.model, "qwen2.5");
    EXPECT_EQ(r.inv.llm.key, "sk-from-file");
    EXPECT_EQ(r.inv.llm.timeout, milliseconds(30000));
    EXPECT_EQ(r.inv.llm.max_rounds, 3u);
    EXPECT_EQ(r.inv.llm.max_result_bytes, 4096u);
    EXPECT_TRUE(r.inv.llm.anonymize);
    EXPECT_EQ(r.inv.question, "who is slow");

    r = parseCli({"ask", "q"}, {{"NETPROBE_LLM_ENDPOINT", "http://h:1/v1"}, {"NETPROBE_LLM_KEY", "sk-env"},
                                {"NETPROBE_LLM_MODEL", "m"}});
    ASSERT_TRUE(r.run) << r.output;
    EXPECT_EQ(r.inv.llm.endpoint, "http://h:1/v1");
    EXPECT_EQ(r.inv.llm.key, "sk-env");
    EXPECT_EQ(r.inv.llm.model, "m");

    const std::vector<std::pair<std::vector<const char*>, std::string>> bad = {
        {{"ask", "--llm-key", "sk-123", "q"}, "never taken from the command line"},
        {{"ask", "--llm=always", "q"}, "needs --llm-endpoint"},
        {{"ask", "--llm=sometimes", "q"}, "invalid --llm"},
        {{"ask", "--llm-endpoint", "ftp://x", "q"}, "invalid --llm-endpoint"},
        {{"ask", "--llm-timeout", "0s", "q"}, "invalid --llm-timeout"},
        {{"ask", "--llm-max-rounds", "0", "q"}, "invalid --llm-max-rounds"},
        {{"ask", "--llm-max-result-bytes", "10", "q"}, "invalid --llm-max-result-bytes"},
        {{"ask", "--llm-key-file", "/nonexistent/key", "q"}, "cannot be read"},
    };
    for (const auto& [args, want] : bad) {
        auto b = parseCli(args);
        EXPECT_FALSE(b.run) << args[1];
        EXPECT_EQ(b.exit_code, netprobe::cli::kExitUsage) << args[1];
        EXPECT_NE(b.output.find(want), std::string::npos) << b.output;
        EXPECT_EQ(b.output.find("sk-123"), std::string::npos) << "the key is not echoed";
    }
}

TEST(AssistantLlmCli, TextAndJsonOfAnAnswer) {
    LlmAnswer a;
    a.text = "198.19.0.2 sent 312600 bytes and 7 packets.";
    a.model = "m";
    a.rounds = 2;
    ToolCallRecord c;
    c.tool = "get_topology";
    c.request = ApiRequest{"/api/v1/topology", {{"window", "5m"}}};
    a.calls.push_back(c);
    Facts f;
    f.addDocument("get_topology #1", json::parse(R"({"edges":[{"source":"198.19.0.2","bytes_out":312600}]})"));
    a.verification = verifyFigures(a.text, f);
    const std::string t = netprobe::cli::llm::answerText(a, "http://h/v1/chat/completions", false, false);
    EXPECT_NE(t.find("GET /api/v1/topology?window=5m"), std::string::npos) << t;
    EXPECT_NE(t.find("2 checked, 1 NOT in the tool results (unchecked)"), std::string::npos) << t;
    EXPECT_NE(t.find("unchecked \"7\""), std::string::npos) << t;
    EXPECT_EQ(netprobe::cli::llm::exitCode(a), netprobe::cli::kExitUnchecked);
    const auto j = netprobe::cli::llm::answerJson("q", "--llm=always", "http://h/v1/chat/completions", a);
    EXPECT_EQ(j["mode"], "llm");
    EXPECT_EQ(j["tool_calls"][0]["target"], "/api/v1/topology?window=5m");
    EXPECT_FALSE(j["verification"]["ok"].get<bool>());
    LlmFailure fl{LlmFailure::Kind::Timeout, "late", {}, 1};
    EXPECT_EQ(netprobe::cli::llm::exitCode(fl), netprobe::cli::kExitLlmTimeout);
    fl.kind = LlmFailure::Kind::BadResponse;
    EXPECT_EQ(netprobe::cli::llm::exitCode(fl), netprobe::cli::kExitLlmError);
}

}  // namespace

namespace {

// Whatever the text (a model's answer, a result's strings), the checker and the
// anonymizer end, and restoring what was masked gives back the learned names.
TEST(AssistantLlmRobustness, RandomTextNeverCrashesOrHangs) {
    static const char* kPieces[] = {"1", "2", "0", "9", ".", ",", ":", "::", "-", "/", " ", "%", "k", "M", "B", "KiB",
                                    "ms", "s", "m", "h", "e", "E", "x", "a", "f", "[", "]", "ip-", "pod-", "ns-",
                                    "\xC2\xB5", "\xE2\x80\xAF", "\xE2\x88\x92", "\xFF", "am", "pm", "T", "Z", "+",
                                    "198.18.0.", "fd00::", "shop", "cart-1", "about ", "two", "twenty-", "\n", "\""};
    std::uint64_t seed = 12345;
    auto next = [&] {
        seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
        return static_cast<std::size_t>(seed >> 33);
    };
    Facts facts;
    facts.addDocument("doc", json::parse(kPods));
    for (int round = 0; round < 3000; ++round) {
        std::string s;
        const std::size_t n = next() % 40;
        for (std::size_t i = 0; i < n; ++i) s += kPieces[next() % std::size(kPieces)];
        (void)extractFigures(s);
        (void)verifyFigures(s, facts);
        Anonymizer a;
        a.learnDocument(json::parse(kPods));
        a.learnQuestion(s);
        const std::string m = a.mask(s);
        for (const auto& original : {"cart-1", "shop"})
            if (s.find(original) != std::string::npos && a.restore(m).find(original) == std::string::npos)
                ADD_FAILURE() << "lost " << original << " in " << json(s).dump(-1, ' ', false, json::error_handler_t::replace) << " masked " << json(m).dump(-1, ' ', false, json::error_handler_t::replace);
        (void)a.unknownPlaceholders(m);
    }
    // a number too large for a double, deeply nested arguments
    EXPECT_EQ(extractFigures(std::string(400, '9') + " bytes").size(), 1u);
    FakeAgent agent;
    int n = 0;
    auto chat = [&](const json&, milliseconds) -> netprobe::Result<json> {
        if (n++ == 0)
            return callsMessage({json{{"id", "d"},
                                      {"type", "function"},
                                      {"function", {{"name", "list_flows"},
                                                    {"arguments", std::string(100000, '[') + std::string(100000, ']')}}}}});
        return textMessage("none");
    };
    auto r = askLlm("q", {}, ioOf(chat, agent));
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_NE(r->calls[0].error.find("not a JSON object"), std::string::npos) << r->calls[0].error;
}

}  // namespace
