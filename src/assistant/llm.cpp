// The tool-calling loop of `netprobe ask` with an LLM (llm.hpp).
#include <netprobe/assistant/llm.hpp>

#include <algorithm>
#include <cerrno>

namespace netprobe::assistant {

namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::string dumpText(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

std::string shorten(std::string s, std::size_t max) {
    if (s.size() <= max) return s;
    s.resize(max);
    while (!s.empty() && (static_cast<unsigned char>(s.back()) & 0xC0) == 0x80) s.pop_back();
    if (!s.empty() && static_cast<unsigned char>(s.back()) >= 0xC0) s.pop_back();
    return s + "...";
}

// A message of the conversation; `ours` are masked when sent (the model's are sent back
// as it wrote them: already in placeholders). A tool result keeps its document, masked
// as JSON (string values and keys, unescaped) rather than as text, and its note.
struct Message {
    json body;
    bool ours = true;
    std::optional<json> doc;
    std::string note;
};

// The text of a message's content: a string, or an array of {"type":"text","text"} parts.
std::optional<std::string> contentText(const json& content) {
    if (content.is_null()) return std::string();
    if (content.is_string()) return content.get<std::string>();
    if (content.is_array()) {
        std::string out;
        for (const auto& p : content) {
            if (p.is_string()) out += p.get<std::string>();
            else if (p.is_object() && p.value("type", "") == "text" && p.contains("text") && p["text"].is_string())
                out += p["text"].get<std::string>();
        }
        return out;
    }
    return std::nullopt;
}

// Nested deeper than limit (checked without deeper recursion than limit).
bool deeperThan(const json& j, int limit) {
    if (limit < 0) return true;
    if (j.is_array() || j.is_object())
        for (const auto& x : j)
            if (deeperThan(x, limit - 1)) return true;
    return false;
}

std::string trim(std::string s) {
    const auto b = s.find_first_not_of(" \t\r\n");
    if (b == std::string::npos) return {};
    const auto e = s.find_last_not_of(" \t\r\n");
    return s.substr(b, e - b + 1);
}

std::string toolNames() {
    std::string s;
    for (const auto& t : toolCatalogue()) s += (s.empty() ? "" : ", ") + t.name;
    return s;
}

// Where a word stands in text as a whole word (from `from`), or npos.
std::size_t findWord(std::string_view text, std::string_view w, std::size_t from) {
    auto alnum = [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; };
    for (std::size_t p = text.find(w, from); p != std::string_view::npos; p = text.find(w, p + 1)) {
        const bool before = p == 0 || !alnum(text[p - 1]);
        const bool after = p + w.size() >= text.size() || !alnum(text[p + w.size()]);
        if (before && after) return p;
    }
    return std::string_view::npos;
}

}  // namespace

std::string_view toString(LlmFailure::Kind k) {
    switch (k) {
        case LlmFailure::Kind::Endpoint: return "endpoint";
        case LlmFailure::Kind::Timeout: return "timeout";
        case LlmFailure::Kind::BadResponse: return "bad_response";
        case LlmFailure::Kind::NoAnswer: return "no_answer";
    }
    return "endpoint";
}

std::string llmSystemPrompt(bool anonymized) {
    std::string p =
        "You answer questions about the network of one Linux node. NetProbe, an agent on that node, observes its "
        "traffic with eBPF; the tools are NetProbe's read-only HTTP API and each call returns a JSON document from "
        "the agent. Call the tools you need (narrow them with their arguments), then answer in a few plain sentences.\n"
        "Rules:\n"
        "- Every figure in your answer (a count, bytes, a rate, a duration, a percentage, an address, a port, a time) "
        "must come from a tool result: copy it as the result has it, or convert its unit (bytes to KiB or MiB, "
        "seconds to milliseconds, a ratio to a percentage) or round it. Do not estimate, extrapolate or compute "
        "other figures (a sum of a result's values is fine).\n"
        "- If the tool results do not hold what the question asks, say so. Never guess.\n"
        "- Name the tools whose results you used.\n"
        "Every figure of your answer is checked against the tool results; figures that are not in them are flagged "
        "to the reader as unchecked.";
    if (anonymized)
        p += "\nNames and addresses are replaced by placeholders (ip-N for addresses, pod-N, ns-N for namespaces, "
             "node-N, wl-N for workloads, svc-N for Services) in the question and in the tool results. Use them exactly "
             "as they are, in tool arguments too; they are replaced back for the reader.";
    return p;
}

json llmTools() {
    json tools = json::array();
    for (const auto& t : toolCatalogue())
        tools.push_back({{"type", "function"},
                         {"function", {{"name", t.name}, {"description", t.description}, {"parameters", t.inputSchema()}}}});
    return tools;
}

json ToolCallRecord::toJson() const {
    json j = {{"round", round}, {"id", id}, {"tool", tool}, {"arguments", arguments}};
    if (request) j["target"] = request->target();
    if (!error.empty()) j["error"] = error;
    j["truncated"] = truncated;
    j["result"] = result;
    return j;
}

json LlmAnswer::toJson() const {
    json c = json::array();
    for (const auto& r : calls) c.push_back(r.toJson());
    return {{"text", text},
            {"model", model},
            {"rounds", rounds},
            {"tool_calls", std::move(c)},
            {"verification", verification.toJson()},
            {"anonymized", anonymized},
            {"placeholders", placeholders}};
}

std::expected<LlmAnswer, LlmFailure> askLlm(std::string_view question, const LlmOptions& o, const LlmIo& io) {
    const auto mono = [&] { return io.clock.mono ? io.clock.mono() : std::chrono::steady_clock::now(); };
    const auto unixNow = [&]() -> std::int64_t {
        return io.clock.unix_now ? io.clock.unix_now()
                                 : std::chrono::duration_cast<std::chrono::seconds>(
                                       std::chrono::system_clock::now().time_since_epoch())
                                       .count();
    };
    const auto deadline = mono() + o.deadline;
    const auto remaining = [&] { return std::chrono::duration_cast<milliseconds>(deadline - mono()); };

    std::vector<ToolCallRecord> calls;
    std::size_t rounds = 0;
    auto fail = [&](LlmFailure::Kind k, std::string message) {
        return std::unexpected(LlmFailure{k, std::move(message), calls, rounds});
    };
    const std::string timed_out =
        "no answer from the model within the LLM timeout (" + std::to_string(o.deadline.count()) + " ms)";
    if (!io.chat) return fail(LlmFailure::Kind::Endpoint, "no chat-completions endpoint");

    Anonymizer anon;
    if (o.anonymize) {
        // The node's names first, so that the question's are recognised too.
        for (const auto& r : o.anonymize_prime) {
            if (remaining() <= milliseconds(0)) return fail(LlmFailure::Kind::Timeout, timed_out);
            if (!io.tool) break;
            auto body = io.tool(r, remaining());
            if (!body) continue;
            auto doc = json::parse(*body, nullptr, false);
            if (!doc.is_discarded() && !deeperThan(doc, 128)) anon.learnDocument(doc);
        }
        anon.learnQuestion(question);
    }

    Facts facts(io.clock.utc_offset_seconds);
    facts.addText("the question", question);

    std::vector<Message> history;
    history.push_back({{{"role", "system"}, {"content", llmSystemPrompt(o.anonymize)}}, false});
    history.push_back({{{"role", "user"}, {"content", std::string(question)}}, true});
    const json tools = llmTools();

    auto wire = [&]() {
        json msgs = json::array();
        for (const auto& m : history) {
            if (!o.anonymize || !m.ours) {
                msgs.push_back(m.body);
                continue;
            }
            json b = m.body;
            if (m.doc) {
                std::string c = dumpText(anon.maskJson(*m.doc));
                if (!m.note.empty()) c += "\n\n" + anon.mask(std::string_view(m.note));
                b["content"] = std::move(c);
            } else if (b.contains("content") && b["content"].is_string()) {
                b["content"] = anon.mask(std::string_view(b["content"].get_ref<const std::string&>()));
            }
            msgs.push_back(std::move(b));
        }
        return msgs;
    };

    bool nudged = false;
    for (;;) {
        const bool final_round = rounds >= o.max_rounds;
        if (final_round && !nudged) {
            history.push_back({{{"role", "user"},
                                {"content", "That was the last round of tool calls. Answer the question now from the "
                                            "tool results above, without calling tools."}},
                               false});
            nudged = true;
        }
        json req = {{"messages", wire()},
                    {"tools", tools},
                    {"tool_choice", final_round ? "none" : "auto"},
                    {"temperature", 0},
                    {"stream", false}};
        if (!o.model.empty()) req["model"] = o.model;
        const auto left = remaining();
        if (left <= milliseconds(0)) return fail(LlmFailure::Kind::Timeout, timed_out);
        ++rounds;
        Result<json> resp = std::unexpected(makeError("no answer"));
        try {
            resp = io.chat(req, left);
        } catch (const std::exception& e) {
            resp = std::unexpected(makeError(e.what()));
        }
        if (!resp) {
            if (resp.error().code == ETIMEDOUT || remaining() <= milliseconds(0))
                return fail(LlmFailure::Kind::Timeout, timed_out + ": " + resp.error().message);
            return fail(LlmFailure::Kind::Endpoint, resp.error().message);
        }
        const json& r = *resp;
        if (!r.is_object()) return fail(LlmFailure::Kind::BadResponse, "the answer is not a JSON object");
        if (const auto e = r.find("error"); e != r.end() && !e->is_null()) {
            std::string msg = e->is_object() && e->contains("message") && (*e)["message"].is_string()
                                  ? (*e)["message"].get<std::string>()
                                  : dumpText(*e);
            return fail(LlmFailure::Kind::Endpoint, "the server answered with an error: " + shorten(msg, 500));
        }
        const auto ch = r.find("choices");
        if (ch == r.end() || !ch->is_array() || ch->empty() || !(*ch)[0].is_object() ||
            !(*ch)[0].contains("message") || !(*ch)[0]["message"].is_object())
            return fail(LlmFailure::Kind::BadResponse,
                        "not a chat-completions answer (no choices[0].message): " + shorten(dumpText(r), 300));
        const json& msg = (*ch)[0]["message"];
        const std::string model = r.contains("model") && r["model"].is_string() ? r["model"].get<std::string>() : "";
        const auto content = contentText(msg.value("content", json()));
        if (!content) return fail(LlmFailure::Kind::BadResponse, "choices[0].message.content is neither text nor null");
        json tool_calls = msg.value("tool_calls", json());
        if (!tool_calls.is_null() && !tool_calls.is_array())
            return fail(LlmFailure::Kind::BadResponse, "choices[0].message.tool_calls is not an array");

        if (tool_calls.is_array() && !tool_calls.empty()) {
            if (final_round)
                return fail(LlmFailure::Kind::NoAnswer, "the model still called tools after " +
                                                            std::to_string(o.max_rounds) +
                                                            " rounds (--llm-max-rounds) instead of answering");
            // The model's message as it will be sent back (every call with an id).
            json sent_calls = json::array();
            std::vector<Message> results;
            for (std::size_t idx = 0; idx < tool_calls.size(); ++idx) {
                const json& call = tool_calls[idx];
                ToolCallRecord rec;
                rec.round = rounds;
                rec.id = call.is_object() && call.contains("id") && call["id"].is_string() && !call["id"].get_ref<const std::string&>().empty()
                             ? call["id"].get<std::string>()
                             : "call_" + std::to_string(rounds) + "_" + std::to_string(idx);
                const json fn = call.is_object() ? call.value("function", json()) : json();
                rec.tool = fn.is_object() && fn.contains("name") && fn["name"].is_string() ? fn["name"].get<std::string>() : "";
                const json raw_args = fn.is_object() ? fn.value("arguments", json()) : json();
                json args;
                bool args_ok = true;
                if (raw_args.is_string()) {
                    const auto& s = raw_args.get_ref<const std::string&>();
                    if (s.find_first_not_of(" \t\r\n") == std::string::npos) {
                        args = nullptr;
                    } else {
                        args = json::parse(s, nullptr, false);
                        args_ok = !args.is_discarded() && !deeperThan(args, 32);
                    }
                } else if (raw_args.is_object() || raw_args.is_null()) {
                    args = raw_args;
                    args_ok = !deeperThan(args, 32);
                } else {
                    args_ok = false;
                }
                sent_calls.push_back({{"id", rec.id},
                                      {"type", "function"},
                                      {"function",
                                       {{"name", rec.tool},
                                        {"arguments", raw_args.is_string() ? raw_args : json(dumpText(raw_args))}}}});
                if (args_ok) rec.arguments = o.anonymize ? anon.restoreJson(args) : args;
                else rec.arguments = raw_args.is_string() ? raw_args : json(dumpText(raw_args));

                const Tool* tool = rec.tool.empty() ? nullptr : findTool(rec.tool);
                std::optional<json> sent_doc;  // the bounded document, when it is still JSON
                std::string note;
                if (idx >= o.max_calls_per_round) {
                    rec.error = "not run: at most " + std::to_string(o.max_calls_per_round) +
                                " tool calls are run per answer; ask for the rest in the next one";
                } else if (rec.tool.empty()) {
                    rec.error = "not run: the call has no function name";
                } else if (!tool) {
                    rec.error = "not run: there is no tool \"" + shorten(rec.tool, 64) + "\" (the tools: " + toolNames() + ")";
                } else if (!args_ok) {
                    rec.error = "not run: the arguments are not a JSON object: " + shorten(dumpText(raw_args), 200);
                } else if (auto ar = tool->request(rec.arguments, unixNow()); !ar) {
                    rec.error = "not run: invalid arguments for " + tool->name + ": " + ar.error().what();
                } else {
                    rec.request = *ar;
                    const auto tl = remaining();
                    if (tl <= milliseconds(0)) return fail(LlmFailure::Kind::Timeout, timed_out);
                    Result<std::string> body = std::unexpected(makeError("no agent connection"));
                    if (io.tool) {
                        try {
                            body = io.tool(*ar, tl);
                        } catch (const std::exception& e) {
                            body = std::unexpected(makeError(e.what()));
                        }
                    }
                    if (!body) {
                        rec.error = "the NetProbe agent could not answer GET " + ar->target() + ": " + body.error().what();
                    } else if (auto doc = json::parse(*body, nullptr, false); doc.is_discarded() || deeperThan(doc, 128)) {
                        rec.error = "the NetProbe agent's answer to GET " + ar->target() + " is not JSON (or nested too deeply)";
                    } else {
                        if (o.anonymize) anon.learnDocument(doc);
                        auto b = boundJson(doc, o.max_result_bytes);
                        const std::string label = tool->name + " #" + std::to_string(calls.size() + 1);
                        if (auto seen = json::parse(b.text, nullptr, false); !seen.is_discarded()) {
                            facts.addDocument(label, seen);
                            sent_doc = std::move(seen);
                        } else {
                            facts.addText(label, b.text);
                        }
                        note = b.note;
                        rec.truncated = b.truncated;
                        rec.result = std::move(b.text);
                        if (b.truncated) {
                            facts.addText(label + " (its truncation note)", b.note);
                            rec.result += "\n\n" + b.note;
                        }
                    }
                }
                Message m{{{"role", "tool"},
                           {"tool_call_id", rec.id},
                           {"content", rec.error.empty() ? rec.result : "error: " + rec.error}},
                          true};
                if (rec.error.empty() && sent_doc) {
                    m.doc = std::move(sent_doc);
                    m.note = note;
                }
                results.push_back(std::move(m));
                calls.push_back(std::move(rec));
            }
            json assistant = {{"role", "assistant"}, {"tool_calls", std::move(sent_calls)}};
            assistant["content"] = content->empty() ? json(nullptr) : json(*content);
            history.push_back({std::move(assistant), false});
            for (auto& m : results) history.push_back(std::move(m));
            continue;
        }

        // The final answer.
        const std::string text = trim(*content);
        if (text.empty()) return fail(LlmFailure::Kind::NoAnswer, "the model answered with no text and no tool call");
        LlmAnswer a;
        a.text = o.anonymize ? anon.restore(text) : text;
        a.model = model;
        a.rounds = rounds;
        a.calls = std::move(calls);
        a.anonymized = o.anonymize;
        a.placeholders = anon.size();
        a.verification = verifyFigures(a.text, facts);
        if (o.anonymize) {
            // Placeholders the anonymizer never issued: names the model made up.
            std::size_t from = 0;
            for (const auto& [off, w] : anon.unknownPlaceholders(text)) {
                (void)off;
                const auto at = findWord(a.text, w, from);
                CheckedFigure cf;
                cf.figure.kind = Figure::Kind::Placeholder;
                cf.figure.text = w;
                cf.figure.offset = at == std::string_view::npos ? a.text.size() : at;
                cf.context = "a placeholder that stands for no name or address of the tool results";
                if (at != std::string_view::npos) from = at + w.size();
                a.verification.figures.push_back(std::move(cf));
            }
            std::stable_sort(a.verification.figures.begin(), a.verification.figures.end(),
                             [](const auto& x, const auto& y) { return x.figure.offset < y.figure.offset; });
        }
        return a;
    }
}

}  // namespace netprobe::assistant
