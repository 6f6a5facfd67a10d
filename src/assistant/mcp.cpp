#include <netprobe/assistant/mcp.hpp>

#include <algorithm>
#include <chrono>
#include <exception>

namespace netprobe::assistant::mcp {

namespace {

using nlohmann::json;

constexpr std::size_t kMaxDepth = 64;        // nesting of a message (arrays and objects)
constexpr std::size_t kMaxBatch = 32;        // messages in one batch

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json success(const json& id, json result) { return {{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}}; }

bool validId(const json& id) { return id.is_string() || id.is_number(); }

// Deeper nesting than kMaxDepth (outside strings): refused before parsing, so that no
// recursive walk (dump, destruction) can meet it.
bool tooDeep(std::string_view text) {
    std::size_t depth = 0;
    bool in_string = false, escaped = false;
    for (char c : text) {
        if (in_string) {
            if (escaped) escaped = false;
            else if (c == '\\') escaped = true;
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > kMaxDepth) return true;
        } else if ((c == ']' || c == '}') && depth > 0) {
            --depth;
        }
    }
    return false;
}

const char* kInstructions =
    "NetProbe is an eBPF network observability agent. These read-only tools query one agent's API: "
    "interfaces, flows, TCP connections, security events, the service map (get_topology), diagnosis findings "
    "with fixes (get_diagnosis: start here for 'is anything wrong'), bottlenecks, QoS, L7 requests, forecasts, "
    "anomalies, history and cost. Results are the API's JSON documents; `enabled: false` means the agent runs "
    "without that feature. Large results are truncated (a second text says so): narrow them with filters and "
    "limit. Quote figures only from tool results.";

}  // namespace

bool supportedVersion(std::string_view v) {
    return std::find(kProtocolVersions.begin(), kProtocolVersions.end(), v) != kProtocolVersions.end();
}

std::string_view negotiateVersion(std::string_view requested) {
    return supportedVersion(requested) ? requested : kProtocolVersions.front();
}

json errorResponse(const json& id, int code, std::string message, const json& data) {
    json e = {{"code", code}, {"message", std::move(message)}};
    if (!data.is_null()) e["data"] = data;
    return {{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(e)}};
}

Dispatcher::Dispatcher(Options options, Fetch fetch) : options_(std::move(options)), fetch_(std::move(fetch)) {}

json Dispatcher::toolList() const {
    json tools = json::array();
    for (const auto& t : toolCatalogue()) {
        tools.push_back({{"name", t.name},
                         {"title", t.title},
                         {"description", t.description},
                         {"inputSchema", t.inputSchema()},
                         {"annotations",
                          {{"title", t.title},
                           {"readOnlyHint", true},
                           {"destructiveHint", false},
                           {"idempotentHint", true},
                           {"openWorldHint", false}}}});
    }
    return {{"tools", std::move(tools)}};
}

json Dispatcher::callResult(const ApiRequest& request) const {
    auto failed = [&](const std::string& why) {
        return json{{"content", json::array({{{"type", "text"}, {"text", why}}})}, {"isError", true}};
    };
    Result<std::string> body = std::unexpected(makeError("no agent connection"));
    try {
        if (fetch_) body = fetch_(request);
    } catch (const std::exception& e) {
        body = std::unexpected(makeError(e.what()));
    }
    if (!body) return failed("The NetProbe agent could not answer GET " + request.target() + ": " + body.error().what());
    auto doc = json::parse(*body, nullptr, false);
    if (doc.is_discarded() || tooDeep(*body))
        return failed("The NetProbe agent's answer to GET " + request.target() + " is not a JSON document.");
    auto b = boundJson(doc, options_.max_result_bytes);
    json content = json::array({{{"type", "text"}, {"text", std::move(b.text)}}});
    if (b.truncated) content.push_back({{"type", "text"}, {"text", std::move(b.note)}});
    return {{"content", std::move(content)}, {"isError", false}};
}

json Dispatcher::call(const json& id, const json& params) const {
    if (!params.is_object()) return errorResponse(id, kInvalidParams, "Invalid params: tools/call takes an object");
    const auto name = params.find("name");
    if (name == params.end() || !name->is_string())
        return errorResponse(id, kInvalidParams, "Invalid params: \"name\" (the tool's name, a string) is required");
    const auto& tool_name = name->get_ref<const std::string&>();
    const Tool* tool = findTool(tool_name);
    if (!tool)
        return errorResponse(id, kInvalidParams, "Unknown tool: " + tool_name.substr(0, 100) + " (tools/list lists them)");
    json args = params.value("arguments", json());
    if (!args.is_null() && !args.is_object())
        return errorResponse(id, kInvalidParams, "Invalid params: \"arguments\" must be an object");
    const std::int64_t now = options_.now_unix ? options_.now_unix()
                                               : std::chrono::duration_cast<std::chrono::seconds>(
                                                     std::chrono::system_clock::now().time_since_epoch())
                                                     .count();
    auto req = tool->request(args, now);
    if (!req)
        return errorResponse(id, kInvalidParams, "Invalid arguments for tool " + tool->name + ": " + req.error().what(),
                             {{"tool", tool->name}});
    return success(id, callResult(*req));
}

std::optional<json> Dispatcher::one(const json& msg, Session& s, bool in_batch, bool& initialized) const {
    if (!msg.is_object())
        return errorResponse(nullptr, kInvalidRequest, "Invalid Request: a message is a JSON object");
    const auto id_it = msg.find("id");
    const bool has_id = id_it != msg.end();
    const json id = has_id && validId(*id_it) ? *id_it : json();
    const auto method = msg.find("method");
    if (method == msg.end()) {
        // A response to a request of ours (we send none): nothing to answer.
        if (has_id && (msg.contains("result") || msg.contains("error"))) return std::nullopt;
        return errorResponse(id, kInvalidRequest, "Invalid Request: no \"method\"");
    }
    const auto version = msg.find("jsonrpc");
    if (version == msg.end() || *version != "2.0")
        return errorResponse(id, kInvalidRequest, "Invalid Request: \"jsonrpc\" must be \"2.0\"");
    if (!method->is_string()) return errorResponse(id, kInvalidRequest, "Invalid Request: \"method\" must be a string");
    if (has_id && !validId(*id_it))
        return errorResponse(nullptr, kInvalidRequest, "Invalid Request: \"id\" must be a string or a number");
    const auto params_it = msg.find("params");
    const json params = params_it == msg.end() ? json::object() : *params_it;
    const auto& m = method->get_ref<const std::string&>();
    if (!has_id) {  // a notification: never answered
        if (m == "notifications/initialized") s.client_ready = true;
        return std::nullopt;
    }
    if (!params.is_object() && !params.is_array())
        return errorResponse(id, kInvalidRequest, "Invalid Request: \"params\" must be an object or an array");
    if (m == "initialize") {
        if (in_batch) return errorResponse(id, kInvalidRequest, "Invalid Request: initialize must not be part of a batch");
        if (!params.is_object()) return errorResponse(id, kInvalidParams, "Invalid params: initialize takes an object");
        const auto pv = params.find("protocolVersion");
        if (pv == params.end() || !pv->is_string())
            return errorResponse(id, kInvalidParams, "Invalid params: \"protocolVersion\" (a string) is required");
        const std::string v(negotiateVersion(pv->get_ref<const std::string&>()));
        s.initialized = true;
        s.protocol_version = v;
        s.client_name.clear();
        if (auto ci = params.find("clientInfo"); ci != params.end() && ci->is_object())
            if (auto n = ci->find("name"); n != ci->end() && n->is_string())
                s.client_name = n->get_ref<const std::string&>().substr(0, 100);
        initialized = true;
        return success(id, {{"protocolVersion", v},
                            {"capabilities", {{"tools", {{"listChanged", false}}}}},
                            {"serverInfo",
                             {{"name", options_.server_name},
                              {"title", "NetProbe network observability"},
                              {"version", options_.server_version}}},
                            {"instructions", kInstructions}});
    }
    if (m == "ping") return success(id, json::object());
    if (m == "tools/list") {
        if (!params.is_object()) return errorResponse(id, kInvalidParams, "Invalid params: tools/list takes an object");
        if (auto c = params.find("cursor"); c != params.end() && !c->is_null())
            return errorResponse(id, kInvalidParams, "Invalid params: unknown cursor (the list has one page)");
        return success(id, toolList());
    }
    if (m == "tools/call") return call(id, params);
    return errorResponse(id, kMethodNotFound, "Method not found: " + m.substr(0, 100));
}

Outcome Dispatcher::handleParsed(const json& msg, Session& session) const {
    Outcome o;
    try {
        if (msg.is_array()) {
            if (msg.empty() || msg.size() > kMaxBatch) {
                o.malformed = true;
                o.response = dump(errorResponse(nullptr, kInvalidRequest,
                                                msg.empty() ? "Invalid Request: an empty batch"
                                                            : "Invalid Request: a batch of more than " +
                                                                  std::to_string(kMaxBatch) + " messages"));
                return o;
            }
            json out = json::array();
            bool init = false;
            for (const auto& m : msg)
                if (auto r = one(m, session, true, init)) out.push_back(std::move(*r));
            if (!out.empty()) o.response = dump(out);
            return o;
        }
        auto r = one(msg, session, false, o.initialize);
        if (r) {
            if (auto e = r->find("error"); e != r->end() && (*e)["code"] == kInvalidRequest) o.malformed = true;
            o.response = dump(*r);
        }
    } catch (const std::exception& e) {
        o = Outcome{};
        o.response = dump(errorResponse(nullptr, kInternalError, std::string("Internal error: ") + e.what()));
    }
    return o;
}

std::expected<json, Outcome> parseMessage(std::string_view text) {
    auto parseError = [](const std::string& why) {
        Outcome o;
        o.malformed = true;
        o.response = dump(errorResponse(nullptr, kParseError, "Parse error: " + why));
        return std::unexpected(std::move(o));
    };
    if (tooDeep(text)) return parseError("nested deeper than " + std::to_string(kMaxDepth) + " levels");
    try {
        return json::parse(text);
    } catch (const json::parse_error& e) {
        std::string why = e.what();
        if (auto p = why.find("] "); why.starts_with("[json.exception") && p != std::string::npos) why = why.substr(p + 2);
        return parseError(why);
    } catch (const std::exception& e) {
        return parseError(e.what());
    }
}

bool isInitialize(const json& m) {
    if (!m.is_object()) return false;
    const auto method = m.find("method");
    return method != m.end() && *method == "initialize" && m.contains("id");
}

Outcome Dispatcher::handle(std::string_view text, Session& session) const {
    auto msg = parseMessage(text);
    if (!msg) return std::move(msg.error());
    return handleParsed(*msg, session);
}

}  // namespace netprobe::assistant::mcp
