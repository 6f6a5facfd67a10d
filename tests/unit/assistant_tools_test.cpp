// The assistant's tool catalogue (include/netprobe/assistant/tools.hpp): every tool's
// arguments are checked (types, enums, ranges, formats) and become API parameters that
// the agent's own query parsers accept; results are bounded; docs/mcp.md lists them all.
#include <gtest/gtest.h>

#include <fstream>
#include <functional>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include <netprobe/assistant/tools.hpp>
#include <netprobe/metrics/bottlenecks.hpp>
#include <netprobe/metrics/l7.hpp>
#include <netprobe/metrics/models.hpp>
#include <netprobe/metrics/policy.hpp>
#include <netprobe/metrics/qos.hpp>
#include <netprobe/metrics/security.hpp>
#include <netprobe/metrics/topology.hpp>
#include <netprobe/util/ip.hpp>

#include "metrics/json_api.hpp"

namespace {

using nlohmann::json;
using netprobe::assistant::ApiRequest;
using netprobe::assistant::ArgType;
using netprobe::assistant::boundJson;
using netprobe::assistant::findTool;
using netprobe::assistant::Tool;
using netprobe::assistant::toolCatalogue;
namespace metrics = netprobe::metrics;

constexpr std::int64_t kNow = 1780000000;

ApiRequest request(const std::string& tool, const json& args) {
    const Tool* t = findTool(tool);
    if (!t) throw std::runtime_error("no tool " + tool);
    auto r = t->request(args, kNow);
    if (!r) throw std::runtime_error(tool + " " + args.dump() + ": " + r.error().what());
    return *r;
}

std::string refusal(const std::string& tool, const json& args) {
    auto r = findTool(tool)->request(args, kNow);
    return r ? std::string("(accepted)") : r.error().what();
}

// The agent's own parser of each path's query (src/metrics): "" when it accepts.
std::string agentAccepts(const ApiRequest& r) {
    const std::vector<std::pair<std::string, std::string>> q(r.query.begin(), r.query.end());
    auto err = [](const auto& res) -> std::string { return res ? std::string() : std::string(res.error()); };
    const auto& p = r.path;
    if (p == "/api/v1/flows") return err(metrics::parseFlowQuery(q, 100, 10000));
    if (p == "/api/v1/connections") return err(metrics::parseConnectionQuery(q, 100, 10000));
    if (p == "/api/v1/events") return err(metrics::parseEventQuery(q, 10000));
    if (p == "/api/v1/l7/endpoints") return err(metrics::parseL7Query(q, false));
    if (p == "/api/v1/l7/requests") return err(metrics::parseL7Query(q, true));
    if (p == "/api/v1/topology") return err(metrics::parseTopologyQuery(q));
    if (p == "/api/v1/qos") return err(metrics::parseQosQuery(q));
    if (p == "/api/v1/bottlenecks") return err(metrics::parseBottleneckQuery(q));
    if (p == "/api/v1/policies") return err(metrics::parsePolicyQuery(q));
    if (p == "/api/v1/forecast") return err(metrics::forecastJson(nullptr, q));
    if (p == "/api/v1/anomalies") return err(metrics::anomaliesJson(nullptr, q));
    if (p == "/api/v1/cost") return err(metrics::costJson(nullptr, q));
    if (p == "/api/v1/history") {
        auto h = metrics::historyJson({}, q, kNow);
        return h ? std::string() : h.error().message;
    }
    if (p == "/api/v1/l7/dns/names") {  // (parsed inline by the server: ip only)
        for (const auto& [k, v] : q)
            if (k != "ip" || !netprobe::util::parseAddr(v)) return "bad parameter " + k;
        return {};
    }
    for (const char* none : {"/api/v1/interfaces", "/api/v1/diagnosis", "/api/v1/pods", "/api/v1/containers",
                             "/api/v1/intel", "/api/v1/responses"})
        if (p == none) return q.empty() ? "" : "this endpoint takes no parameters";
    return "no such API path " + p;
}

// A valid value of each argument (the first enum value, a range's bounds, a format).
std::vector<json> samples(const netprobe::assistant::ToolArg& a) {
    switch (a.type) {
        case ArgType::Integer: {
            if (!a.values.empty()) {
                std::vector<json> v;
                for (const auto& x : a.values) v.push_back(std::stoll(x));
                return v;
            }
            return {a.min, a.max};
        }
        case ArgType::Boolean: return {true, false};
        case ArgType::Enum: return {a.values.begin(), a.values.end()};
        case ArgType::EnumList: return {json::array({a.values.front()}), json(a.values)};
        case ArgType::Duration: return {"30s", "1m30s"};
        case ArgType::String: break;
    }
    static const std::map<std::string, std::vector<json>> kText = {
        {"ip", {"198.18.0.1", "fd00::1"}},
        {"src_ip", {"198.18.0.2"}},
        {"dst_ip", {"2001:db8::7"}},
        {"protocol", {"tcp", "udp", "17"}},
        {"container", {"0123abcd", std::string(64, 'f')}},
        {"since", {"2026-11-28T18:00:00Z", "2026-11-28T18:00:00.250+01:00", "1780000000", "-15m"}},
        {"from", {"-6h", "1779990000"}},
        {"to", {"-1m", "1780000000"}},
        {"status", {"404", "5xx", "NXDOMAIN", "NOT_FOUND", "error"}},
        {"interface", {"eth0"}},
        {"namespace", {"shop"}},
        {"service", {"shop/cart", "198.18.0.1:80"}},
        {"method", {"GET"}},
        {"series", {"iface/eth0/rx_bytes_rate"}},
        {"prefix", {"iface/", ""}},
        {"node", {"node-1"}},
    };
    auto it = kText.find(a.name);
    if (it == kText.end()) throw std::runtime_error("no sample for string argument " + a.name);
    return it->second;
}

TEST(AssistantTools, NamesDescriptionsAndSchemasAreWellFormed) {
    std::set<std::string> names;
    const std::regex snake("^[a-z][a-z0-9]*(_[a-z0-9]+)*$");
    ASSERT_GE(toolCatalogue().size(), 16u);
    for (const auto& t : toolCatalogue()) {
        SCOPED_TRACE(t.name);
        EXPECT_TRUE(std::regex_match(t.name, snake));
        EXPECT_LE(t.name.size(), 64u);
        EXPECT_TRUE(names.insert(t.name).second) << "duplicate";
        EXPECT_GE(t.description.size(), 80u) << "a description a model can use";
        EXPECT_FALSE(t.title.empty());
        EXPECT_TRUE(t.path.starts_with("/api/v1/"));
        EXPECT_EQ(findTool(t.name), &t);
        const json s = t.inputSchema();
        EXPECT_EQ(s["type"], "object");
        EXPECT_EQ(s["additionalProperties"], false);
        ASSERT_TRUE(s["properties"].is_object());
        EXPECT_EQ(s["properties"].size(), t.args.size());
        for (const auto& a : t.args) {
            SCOPED_TRACE(a.name);
            EXPECT_TRUE(std::regex_match(a.name, snake));
            const json& p = s["properties"][a.name];
            ASSERT_TRUE(p.is_object());
            EXPECT_FALSE(p["description"].get<std::string>().empty());
            const std::string type = p["type"];
            switch (a.type) {
                case ArgType::String: case ArgType::Enum: case ArgType::Duration: EXPECT_EQ(type, "string"); break;
                case ArgType::Integer: EXPECT_EQ(type, "integer"); break;
                case ArgType::Boolean: EXPECT_EQ(type, "boolean"); break;
                case ArgType::EnumList:
                    EXPECT_EQ(type, "array");
                    EXPECT_EQ(p["items"]["enum"].size(), a.values.size());
                    break;
            }
            if (a.type == ArgType::Enum) {
                EXPECT_EQ(p["enum"].size(), a.values.size());
            }
            if (a.type == ArgType::Integer && a.values.empty()) {
                EXPECT_EQ(p["minimum"], a.min);
                EXPECT_EQ(p["maximum"], a.max);
            }
        }
        if (s.contains("required")) {
            for (const auto& r : s["required"]) EXPECT_TRUE(s["properties"].contains(r.get<std::string>()));
        }
    }
    EXPECT_EQ(findTool("no_such_tool"), nullptr);
    EXPECT_EQ(findTool(""), nullptr);
}

TEST(AssistantTools, OnlyReadEndpointsOfTheAgent) {
    // No tool reaches outside /api/v1 (not /metrics, the probes or the UI), and every
    // path is one the agent answers (its parsers know it).
    for (const auto& t : toolCatalogue()) {
        SCOPED_TRACE(t.name);
        const json none = t.name == "get_history" ? json{{"series", "iface/eth0/rx_bytes_rate"}} : json();
        const auto r = request(t.name, none);
        EXPECT_EQ(r.path, t.path);
        EXPECT_EQ(agentAccepts(r), "");
    }
}

TEST(AssistantTools, EveryValidValueIsOneTheAgentAccepts) {
    // Each argument alone, with each sample value: the request's parameters pass the
    // agent's own query parser for that path (the catalogue cannot drift from the API).
    std::size_t checked = 0;
    for (const auto& t : toolCatalogue()) {
        for (const auto& a : t.args) {
            for (const auto& v : samples(a)) {
                SCOPED_TRACE(t.name + " " + a.name + "=" + v.dump());
                json args = {{a.name, v}};
                if (t.name == "get_history" && a.name != "series") args["series"] = "iface/eth0/rx_bytes_rate";
                const auto r = request(t.name, args);
                ASSERT_TRUE(r.query.contains(a.param));
                if (t.path == "/api/v1/history" && a.name == "source" && v == "clickhouse") {
                    // accepted by the catalogue; the agent refuses it unless it has a cluster store
                    EXPECT_NE(agentAccepts(r).find("clickhouse"), std::string::npos);
                } else {
                    EXPECT_EQ(agentAccepts(r), "");
                }
                ++checked;
            }
        }
    }
    EXPECT_GT(checked, 100u);
}

TEST(AssistantTools, ArgumentsBecomeQueryParameters) {
    auto r = request("list_flows", {{"port", 443}, {"protocol", "tcp"}, {"ip", "198.18.0.1"}, {"sort", "rate"},
                                    {"limit", 5}, {"direction", "ingress"}, {"encap", "vxlan"}});
    EXPECT_EQ(r.path, "/api/v1/flows");
    EXPECT_EQ(r.query, (std::map<std::string, std::string>{{"port", "443"},
                                                           {"protocol", "tcp"},
                                                           {"ip", "198.18.0.1"},
                                                           {"sort", "rate"},
                                                           {"limit", "5"},
                                                           {"direction", "ingress"},
                                                           {"encap", "vxlan"}}));
    EXPECT_EQ(request("list_flows", json::object()).query.size(), 0u);
    EXPECT_EQ(request("list_flows", nullptr).query.size(), 0u);
    // Event types: an array -> comma-separated; a relative since -> Unix seconds.
    r = request("list_events", {{"type", {"port_scan", "syn_flood"}}, {"since", "-10m"}});
    EXPECT_EQ(r.query.at("type"), "port_scan,syn_flood");
    EXPECT_EQ(r.query.at("since"), std::to_string(kNow - 600));
    EXPECT_EQ(request("list_events", {{"since", "2026-11-28T18:00:00Z"}}).query.at("since"), "2026-11-28T18:00:00Z");
    // Booleans and integer enums.
    EXPECT_EQ(request("get_anomalies", {{"open", false}}).query.at("open"), "false");
    EXPECT_EQ(request("list_connections", {{"ip_version", 6}}).query.at("ip_version"), "6");
    // History: listing always sends prefix (the agent's list mode); get_history the series.
    EXPECT_EQ(request("list_history_series", nullptr).query, (std::map<std::string, std::string>{{"prefix", ""}}));
    EXPECT_EQ(request("list_history_series", {{"prefix", "iface/"}}).query.at("prefix"), "iface/");
    r = request("get_history", {{"series", "iface/eth0/rx_bytes_rate"}, {"from", "-6h"}, {"resolution", "hour"}});
    EXPECT_EQ(r.query, (std::map<std::string, std::string>{
                           {"series", "iface/eth0/rx_bytes_rate"}, {"from", "-6h"}, {"resolution", "hour"}}));
    // target(): the query percent-encoded.
    EXPECT_EQ((ApiRequest{"/api/v1/l7/requests", {{"service", "shop/cart"}, {"status", "5xx"}}}).target(),
              "/api/v1/l7/requests?service=shop%2Fcart&status=5xx");
    EXPECT_EQ((ApiRequest{"/api/v1/interfaces", {}}).target(), "/api/v1/interfaces");
}

TEST(AssistantTools, BadArgumentsAreRefusedWithTheReason) {
    struct Case {
        const char* tool;
        json args;
        const char* says;
    };
    const std::vector<Case> cases = {
        {"list_flows", json::array(), "arguments: expected an object"},
        {"list_flows", "port=80", "arguments: expected an object"},
        {"list_flows", {{"port", 70000}}, "argument \"port\": expected an integer from 0 to 65535, got 70000"},
        {"list_flows", {{"port", -1}}, "argument \"port\""},
        {"list_flows", {{"port", "80"}}, "expected an integer from 0 to 65535, got \"80\""},
        {"list_flows", {{"port", 80.5}}, "argument \"port\""},
        {"list_flows", {{"port", 1e30}}, "argument \"port\""},
        {"list_flows", {{"port", 18446744073709551615ULL}}, "argument \"port\""},
        {"list_flows", {{"port", true}}, "argument \"port\""},
        {"list_flows", {{"port", nullptr}}, "argument \"port\""},
        {"list_flows", {{"limit", 0}}, "argument \"limit\": expected an integer from 1 to 10000"},
        {"list_flows", {{"limit", 10001}}, "argument \"limit\""},
        {"list_flows", {{"ip", "198.18.0.300"}}, "argument \"ip\": expected an IPv4 or IPv6 address"},
        {"list_flows", {{"ip", 3321888769}}, "argument \"ip\""},
        {"list_flows", {{"protocol", "tcpx"}}, "argument \"protocol\""},
        {"list_flows", {{"direction", "in"}}, "argument \"direction\": expected one of ingress or egress, got \"in\""},
        {"list_flows", {{"sort", "size"}}, "expected one of bytes, packets, rate or last_seen"},
        {"list_flows", {{"container", "ABC"}}, "argument \"container\": expected a container id"},
        {"list_flows", {{"interface", ""}}, "argument \"interface\": expected a non-empty string"},
        {"list_flows", {{"interface", std::string(65, 'x')}}, "of at most 64 bytes"},
        {"list_flows", {{"interface", std::string("et\0h0", 5)}}, "without NUL"},
        {"list_flows", {{"bogus", 1}}, "unknown argument \"bogus\" (known: interface, direction, protocol"},
        {"list_interfaces", {{"limit", 5}}, "unknown argument \"limit\" (this tool takes no arguments)"},
        {"list_connections", {{"ip_version", 5}}, "argument \"ip_version\": expected one of the integers 4 or 6"},
        {"list_connections", {{"pid", 0}}, "argument \"pid\""},
        {"list_connections", {{"state", "OPEN"}}, "argument \"state\""},
        {"list_events", {{"type", "port_scan"}}, "argument \"type\": expected a non-empty array"},
        {"list_events", {{"type", json::array()}}, "argument \"type\": expected a non-empty array"},
        {"list_events", {{"type", {"port_scan", "port_scan"}}}, "\"port_scan\" twice"},
        {"list_events", {{"type", {"portscan"}}}, "\"portscan\" is not one"},
        {"list_events", {{"type", {1}}}, "argument \"type\""},
        {"list_events", {{"since", "yesterday"}}, "argument \"since\": expected an RFC 3339 time"},
        {"list_events", {{"since", "-0s"}}, "argument \"since\""},
        {"list_events", {{"since", "2026-13-28 18:00"}}, "argument \"since\""},
        {"list_events", {{"since", 1780000000}}, "argument \"since\""},
        {"get_topology", {{"window", "5 minutes"}}, "argument \"window\": expected a Go duration"},
        {"get_topology", {{"window", "0s"}}, "argument \"window\""},
        {"get_topology", {{"window", "48h"}}, "up to 24h"},
        {"get_topology", {{"group_by", "team"}}, "argument \"group_by\""},
        {"get_qos", {{"group_by", "segment"}}, "argument \"group_by\""},
        {"get_bottlenecks", {{"kind", {"disk"}}}, "argument \"kind\""},
        {"get_bottlenecks", {{"severity", "high"}}, "argument \"severity\""},
        {"get_anomalies", {{"open", "true"}}, "argument \"open\": expected true or false, got \"true\""},
        {"list_l7_requests", {{"status", "5 xx"}}, "argument \"status\""},
        {"list_l7_requests", {{"min_duration", "-5ms"}}, "argument \"min_duration\""},
        {"list_l7_requests", {{"protocol", "ftp"}}, "argument \"protocol\""},
        {"get_history", json::object(), "argument \"series\" is required"},
        {"get_history", nullptr, "argument \"series\" is required"},
        {"get_history", {{"series", "x"}, {"from", "1h"}}, "argument \"from\": expected Unix seconds or -DURATION"},
        {"get_history", {{"series", "x"}, {"source", "remote"}}, "argument \"source\""},
        {"list_history_series", {{"limit", 100001}}, "argument \"limit\""},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.tool) + " " + c.args.dump(-1, ' ', false, json::error_handler_t::replace));
        const auto why = refusal(c.tool, c.args);
        EXPECT_NE(why.find(c.says), std::string::npos) << why;
        EXPECT_LT(why.size(), 600u);
    }
    // The value shown in a message is cut short.
    const auto why = refusal("list_flows", {{"interface", std::string(5000, 'x')}});
    EXPECT_LT(why.size(), 300u) << why;
}

TEST(AssistantTools, EnumsAreTheAgentsOwnLists) {
    // The agent's error messages name every value it accepts: the tools offer the same.
    auto listed = [](std::string msg) {
        // "... expected http, http2, grpc or amqp" -> {http, http2, grpc, amqp}
        msg = msg.substr(msg.rfind("expected ") + 9);
        std::set<std::string> out;
        const std::regex word("[a-z0-9_]+");
        for (auto it = std::sregex_iterator(msg.begin(), msg.end(), word); it != std::sregex_iterator(); ++it)
            if (it->str() != "or") out.insert(it->str());
        return out;
    };
    auto values = [](const std::string& tool, const std::string& arg) {
        for (const auto& a : findTool(tool)->args)
            if (a.name == arg) return std::set<std::string>(a.values.begin(), a.values.end());
        return std::set<std::string>();
    };
    const auto l7 = metrics::parseL7Query({{"protocol", "?"}}, true);
    ASSERT_FALSE(l7);
    EXPECT_EQ(values("list_l7_requests", "protocol"), listed(l7.error()));
    EXPECT_EQ(values("list_l7_endpoints", "protocol"), listed(l7.error()));
    const auto flows = metrics::parseFlowQuery({{"encap", "?"}}, 100, 10000);
    ASSERT_FALSE(flows);
    EXPECT_EQ(values("list_flows", "encap"), listed(flows.error()));
    const auto topo = metrics::parseTopologyQuery({{"group_by", "?"}});
    ASSERT_FALSE(topo);
    EXPECT_EQ(values("get_topology", "group_by"), listed(topo.error()));
    const auto qos = metrics::parseQosQuery({{"group_by", "segment"}});
    ASSERT_FALSE(qos);
    EXPECT_EQ(values("get_qos", "group_by"), listed(qos.error()));
    const auto anomalies = metrics::anomaliesJson(nullptr, {{"scope", "?"}});
    ASSERT_FALSE(anomalies);
    EXPECT_EQ(values("get_anomalies", "scope"), listed(anomalies.error()));
    // Event types and bottleneck kinds: "(port_scan, syn_flood, ...)" / "(known: ...)".
    const auto ev = metrics::parseEventQuery({{"type", "x"}}, 100);
    ASSERT_FALSE(ev);
    auto inParens = [&](const std::string& msg) {
        const auto open = msg.rfind('('), close = msg.rfind(')');
        return listed("expected " + msg.substr(open + 1, close - open - 1));
    };
    auto types = inParens(ev.error());
    EXPECT_EQ(values("list_events", "type"), types);
    const auto bn = metrics::parseBottleneckQuery({{"kind", "x"}});
    ASSERT_FALSE(bn);
    auto kinds = inParens(bn.error());
    kinds.erase("known");
    EXPECT_EQ(values("get_bottlenecks", "kind"), kinds);
}

json flowsDoc(std::size_t n) {
    json flows = json::array();
    for (std::size_t i = 0; i < n; ++i)
        flows.push_back({{"src_ip", "198.18.0." + std::to_string(i % 250)}, {"src_port", 40000 + i}, {"dst_port", 443},
                         {"protocol", "tcp"}, {"bytes", 1000 * i}, {"tcp_flags", {"SYN", "ACK"}}});
    return {{"total", n}, {"returned", n}, {"flows", flows}};
}

TEST(AssistantTools, SmallResultsAreTheApiDocumentUnchanged) {
    const json doc = flowsDoc(3);
    const auto b = boundJson(doc, 64 * 1024);
    EXPECT_FALSE(b.truncated);
    EXPECT_TRUE(b.note.empty());
    EXPECT_EQ(json::parse(b.text), doc);
}

TEST(AssistantTools, LargeResultsKeepTheirLeadingItemsAndSaySo) {
    const json doc = flowsDoc(2000);
    for (std::size_t max : {4096u, 20000u, 65536u}) {
        SCOPED_TRACE(max);
        const auto b = boundJson(doc, max);
        ASSERT_TRUE(b.truncated);
        EXPECT_LE(b.text.size(), max);
        const json got = json::parse(b.text);  // still valid JSON
        EXPECT_EQ(got["total"], 2000);
        const auto kept = got["flows"].size();
        ASSERT_GT(kept, 0u);
        ASSERT_LT(kept, 2000u);
        for (std::size_t i = 0; i < kept; ++i) EXPECT_EQ(got["flows"][i], doc["flows"][i]);
        // As many as fit: one more would not.
        json more = got;
        more["flows"].push_back(doc["flows"][kept]);
        EXPECT_GT(more.dump().size(), max);
        EXPECT_NE(b.note.find("/flows kept " + std::to_string(kept) + " of 2000 items"), std::string::npos) << b.note;
        EXPECT_NE(b.note.find("larger than " + std::to_string(max) + " bytes"), std::string::npos);
    }
}

TEST(AssistantTools, NestedAndTopLevelArraysAndCutText) {
    // The largest array is cut first; then the next.
    json doc = {{"a", json::array()}, {"b", {{"inner", json::array()}}}};
    for (int i = 0; i < 300; ++i) doc["a"].push_back(std::string(20, 'a'));
    for (int i = 0; i < 100; ++i) doc["b"]["inner"].push_back(std::string(20, 'b'));
    auto b = boundJson(doc, 1000);
    ASSERT_TRUE(b.truncated);
    EXPECT_LE(b.text.size(), 1000u);
    json got = json::parse(b.text);
    EXPECT_LT(got["a"].size(), 300u);
    EXPECT_NE(b.note.find("/a kept"), std::string::npos) << b.note;
    b = boundJson(doc, 200);
    got = json::parse(b.text);
    EXPECT_NE(b.note.find("/b/inner kept"), std::string::npos) << b.note;
    // A top-level array.
    json arr = json::array();
    for (int i = 0; i < 100; ++i) arr.push_back(i * 1000);
    b = boundJson(arr, 64);
    EXPECT_LE(b.text.size(), 64u);
    EXPECT_TRUE(json::parse(b.text).is_array());
    EXPECT_NE(b.note.find("the top-level array kept"), std::string::npos) << b.note;
    // A single large string cannot be shortened as JSON: the text is cut (at a UTF-8
    // character boundary) and the note says it is not complete.
    std::string big;
    for (int i = 0; i < 2000; ++i) big += "\xc3\xa9";  // é
    b = boundJson({{"name", big}}, 1001);
    ASSERT_TRUE(b.truncated);
    EXPECT_LE(b.text.size(), 1001u);
    EXPECT_TRUE(json::parse(b.text, nullptr, false).is_discarded());
    EXPECT_NE(b.note.find("not complete JSON"), std::string::npos) << b.note;
    // The cut text is valid UTF-8 (as a JSON string it dumps without replacement).
    EXPECT_NO_THROW((void)json(b.text).dump());
}

TEST(AssistantTools, DocsListEveryToolAndNoOther) {
    std::ifstream f(std::string(NETPROBE_SOURCE_DIR) + "/docs/mcp.md");
    ASSERT_TRUE(f) << "docs/mcp.md";
    std::stringstream ss;
    ss << f.rdbuf();
    const std::string doc = ss.str();
    // The tool table's rows: | `name` | `GET /api/v1/...` | ...
    const std::regex row(R"(\n\| `([a-z0-9_]+)` \| `GET (/api/v1/[a-z0-9/]+)`)");
    std::map<std::string, std::string> documented;
    for (auto it = std::sregex_iterator(doc.begin(), doc.end(), row); it != std::sregex_iterator(); ++it)
        documented[(*it)[1]] = (*it)[2];
    for (const auto& t : toolCatalogue()) {
        SCOPED_TRACE(t.name);
        ASSERT_TRUE(documented.contains(t.name)) << "docs/mcp.md has no row for " << t.name;
        EXPECT_EQ(documented[t.name], t.path);
        for (const auto& a : t.args)
            EXPECT_NE(doc.find("`" + a.name + "`"), std::string::npos) << "argument " << a.name << " undocumented";
    }
    for (const auto& [name, path] : documented) EXPECT_NE(findTool(name), nullptr) << name << " is not a tool";
}

}  // namespace
