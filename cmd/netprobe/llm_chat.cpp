#include "llm_chat.hpp"

#include <httplib.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <iostream>
#include <mutex>
#include <thread>

#include "agent_api.hpp"

namespace netprobe::cli::llm {

namespace {

using nlohmann::json;
using std::chrono::milliseconds;

std::string printable(std::string_view s, std::size_t max) {
    std::string o;
    for (char c : s) {
        if (o.size() >= max) {
            o += "...";
            break;
        }
        o += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? ' ' : c;
    }
    return o;
}

// Nesting deeper than this is not parsed (a hostile server must not exhaust the stack).
bool tooDeep(std::string_view s, int max_depth = 256) {
    int depth = 0;
    bool in_str = false, esc = false;
    for (char c : s) {
        if (in_str) {
            if (esc) esc = false;
            else if (c == '\\') esc = true;
            else if (c == '"') in_str = false;
            continue;
        }
        if (c == '"') in_str = true;
        else if (c == '[' || c == '{') {
            if (++depth > max_depth) return true;
        } else if (c == ']' || c == '}') {
            --depth;
        }
    }
    return false;
}

// The server's own words about an error status: {"error":{"message"}}, {"error":"..."},
// {"message"}, or the body's first line.
std::string errorMessage(const std::string& body) {
    if (!tooDeep(body)) {
        auto j = json::parse(body, nullptr, false);
        if (j.is_object()) {
            if (auto e = j.find("error"); e != j.end()) {
                if (e->is_string()) return printable(e->get<std::string>(), 300);
                if (e->is_object() && e->contains("message") && (*e)["message"].is_string())
                    return printable((*e)["message"].get<std::string>(), 300);
            }
            if (j.contains("message") && j["message"].is_string()) return printable(j["message"].get<std::string>(), 300);
        }
    }
    return printable(body.substr(0, body.find('\n')), 300);
}

// Stops the client when the time is up (a server that trickles bytes, or never answers).
class Watchdog {
public:
    Watchdog(httplib::Client& cli, milliseconds timeout)
        : thread_([this, &cli, timeout] {
              std::unique_lock lk(mu_);
              if (!cv_.wait_for(lk, timeout, [this] { return done_; })) {
                  fired_ = true;
                  lk.unlock();
                  cli.stop();
              }
          }) {}
    ~Watchdog() { finish(); }
    Watchdog(const Watchdog&) = delete;
    Watchdog& operator=(const Watchdog&) = delete;
    void finish() {
        {
            std::lock_guard lk(mu_);
            done_ = true;
        }
        cv_.notify_all();
        if (thread_.joinable()) thread_.join();
    }
    bool fired() {
        std::lock_guard lk(mu_);
        return fired_;
    }

private:
    std::mutex mu_;
    std::condition_variable cv_;
    bool done_ = false;
    bool fired_ = false;
    std::thread thread_;  // last: starts once the rest is constructed
};

std::string plural(std::size_t n, const char* one, const char* many) {
    return std::to_string(n) + " " + (n == 1 ? one : many);
}

}  // namespace

Result<ChatUrl> parseChatUrl(std::string_view url) {
    auto bad = [&](const std::string& why) {
        return std::unexpected(makeError("invalid --llm-endpoint \"" + printable(url, 200) + "\": " + why));
    };
    std::string_view rest;
    std::string scheme;
    if (url.starts_with("http://")) scheme = "http", rest = url.substr(7);
    else if (url.starts_with("https://")) scheme = "https", rest = url.substr(8);
    else return bad("expected http://HOST:PORT[/PATH] or https://...");
    const auto slash = rest.find('/');
    const std::string_view authority = rest.substr(0, slash);
    std::string path(slash == std::string_view::npos ? std::string_view() : rest.substr(slash));
    if (authority.empty()) return bad("no host");
    if (authority.find('@') != std::string_view::npos)
        return bad("credentials in the URL are not accepted (the key goes in --llm-key-file or NETPROBE_LLM_KEY)");
    if (path.find_first_of("?#") != std::string::npos) return bad("a query or fragment is not expected");
    if (std::any_of(url.begin(), url.end(), [](char c) { return static_cast<unsigned char>(c) <= 0x20 || c == 0x7f; }))
        return bad("spaces or control characters");
    // host[:port] or [v6][:port]
    std::string_view host = authority, port;
    if (authority.starts_with('[')) {
        const auto close = authority.find(']');
        if (close == std::string_view::npos) return bad("an unclosed [");
        host = authority.substr(0, close + 1);
        if (close + 1 < authority.size()) {
            if (authority[close + 1] != ':') return bad("expected :PORT after ]");
            port = authority.substr(close + 2);
        }
    } else if (const auto colon = authority.rfind(':'); colon != std::string_view::npos) {
        host = authority.substr(0, colon);
        port = authority.substr(colon + 1);
    }
    if (host.empty() || host == "[]") return bad("no host");
    if (!port.empty() || authority.ends_with(':')) {
        if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; }) ||
            std::stoi(std::string(port)) < 1 || std::stoi(std::string(port)) > 65535)
            return bad("the port must be 1-65535");
    }
    while (path.ends_with('/')) path.pop_back();
    if (!path.ends_with("/chat/completions")) path += path.empty() ? "/v1/chat/completions" : "/chat/completions";
    return ChatUrl{scheme + "://" + std::string(authority), path};
}

Result<json> chatCompletion(const ChatClient& c, const json& request, milliseconds timeout) {
    const std::string where = c.url.full();
    httplib::Client cli(c.url.base);
    if (!cli.is_valid()) return std::unexpected(makeError("invalid LLM endpoint " + where));
    timeout = std::max(timeout, milliseconds(1));
    const auto secs = std::chrono::duration_cast<std::chrono::seconds>(timeout);
    const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(timeout - secs);
    cli.set_connection_timeout(secs.count(), usecs.count());
    cli.set_read_timeout(secs.count(), usecs.count());
    cli.set_write_timeout(secs.count(), usecs.count());
    if (!c.ca_file.empty()) cli.set_ca_cert_path(c.ca_file);
    cli.enable_server_certificate_verification(true);
    cli.set_keep_alive(false);

    httplib::Request req;
    req.method = "POST";
    req.path = c.url.path;
    req.body = request.dump(-1, ' ', false, json::error_handler_t::replace);
    req.set_header("Content-Type", "application/json");
    req.set_header("Accept", "application/json");
    if (!c.key.empty()) req.set_header("Authorization", "Bearer " + c.key);
    std::string body;
    bool too_big = false;
    req.response_handler = [&](const httplib::Response& r) {
        if (r.has_header("Content-Length")) {
            const auto n = std::strtoull(r.get_header_value("Content-Length").c_str(), nullptr, 10);
            if (n > c.max_response_bytes) {
                too_big = true;
                return false;
            }
        }
        return true;
    };
    req.content_receiver = [&](const char* data, std::size_t n, std::uint64_t, std::uint64_t) {
        if (body.size() + n > c.max_response_bytes) {
            too_big = true;
            return false;
        }
        body.append(data, n);
        return true;
    };
    const auto t0 = std::chrono::steady_clock::now();
    Watchdog dog(cli, timeout);
    auto res = cli.send(req);
    dog.finish();
    const auto took = std::chrono::steady_clock::now() - t0;
    const auto secsText = [&] {
        char b[32];
        std::snprintf(b, sizeof b, "%.1f s", std::chrono::duration<double>(timeout).count());
        return std::string(b);
    };
    if (too_big)
        return std::unexpected(makeError("the LLM endpoint " + where + " answered more than " +
                                         std::to_string(c.max_response_bytes) + " bytes"));
    if (!res) {
        const bool timed_out = dog.fired() || took >= timeout - milliseconds(20) ||
                               res.error() == httplib::Error::ConnectionTimeout;
        if (timed_out)
            return std::unexpected(Error{ETIMEDOUT, "the LLM endpoint " + where + " did not answer within " + secsText()});
        std::string why = httplib::to_string(res.error());
        if (res.error() == httplib::Error::SSLServerVerification)
            why += " (its certificate is not signed by a trusted CA or --llm-ca-file, or its name does not match the URL)";
        return std::unexpected(makeError("cannot reach the LLM endpoint " + where + ": " + why));
    }
    if (res->status == 401 || res->status == 403)
        return std::unexpected(makeError("the LLM endpoint " + where + " refused the request (" + std::to_string(res->status) +
                                         ": " + errorMessage(body) + "); check the key (--llm-key-file or NETPROBE_LLM_KEY)"));
    if (res->status != 200)
        return std::unexpected(makeError("the LLM endpoint " + where + " answered " + std::to_string(res->status) + ": " +
                                         errorMessage(body)));
    if (tooDeep(body)) return std::unexpected(makeError("the LLM endpoint's answer is nested too deeply"));
    auto j = json::parse(body, nullptr, false);
    if (j.is_discarded())
        return std::unexpected(makeError("the LLM endpoint's answer is not JSON: \"" + printable(body, 120) + "\""));
    return j;
}

std::string answerText(const assistant::LlmAnswer& a, const std::string& endpoint, bool wide, bool color) {
    const auto bold = [&](const std::string& s) { return color ? "\033[1m" + s + "\033[0m" : s; };
    const auto red = [&](const std::string& s) { return color ? "\033[1;31m" + s + "\033[0m" : s; };
    std::string out = a.text + "\n\n";
    out += bold("tool calls") + " (" + plural(a.calls.size(), "call", "calls") + " in " +
           plural(a.rounds, "round", "rounds") + "; model " + (a.model.empty() ? "?" : a.model) + " at " + endpoint + "):\n";
    if (a.calls.empty()) out += "  none: the answer uses no data of the agent\n";
    for (const auto& c : a.calls) {
        if (c.request && c.error.empty()) {
            out += "  GET " + c.request->target() + (c.truncated ? "  (truncated for the model)" : "") + "\n";
        } else {
            std::string args = c.arguments.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            if (args.size() > 80) args = args.substr(0, 77) + "...";
            out += "  " + (c.tool.empty() ? std::string("?") : c.tool) + " " + args + ": " + c.error + "\n";
        }
    }
    const auto& v = a.verification;
    if (v.figures.empty()) {
        out += bold("figures") + ": none in the answer\n";
    } else if (v.ok()) {
        out += bold("figures") + ": all " + std::to_string(v.checked()) + " checked against the tool results\n";
    } else {
        out += bold("figures") + ": " + std::to_string(v.checked()) + " checked, " +
               red(std::to_string(v.unchecked()) + " NOT in the tool results (unchecked)") + ":\n";
        for (const auto& f : v.figures)
            if (!f.checked) out += "  " + red("unchecked") + " \"" + f.figure.text + "\" in \"" + f.context + "\"\n";
    }
    if (wide)
        for (const auto& f : v.figures)
            if (f.checked) out += "  checked \"" + f.figure.text + "\": " + f.source + "\n";
    if (a.anonymized)
        out += bold("anonymized") + ": " + plural(a.placeholders, "name or address", "names and addresses") +
               " went to the model as placeholders and were restored here\n";
    return out;
}

json answerJson(const std::string& question, const std::string& why, const std::string& endpoint,
                const assistant::LlmAnswer& a) {
    json j = a.toJson();
    j["question"] = question;
    j["mode"] = "llm";
    j["why"] = why;
    j["endpoint"] = endpoint;
    return j;
}

json failureJson(const std::string& question, const std::string& why, const std::string& endpoint,
                 const assistant::LlmFailure& f) {
    json calls = json::array();
    for (const auto& c : f.calls) calls.push_back(c.toJson());
    return {{"question", question},
            {"mode", "llm"},
            {"why", why},
            {"endpoint", endpoint},
            {"rounds", f.rounds},
            {"error", {{"kind", assistant::toString(f.kind)}, {"message", f.message}}},
            {"tool_calls", std::move(calls)}};
}

int exitCode(const assistant::LlmAnswer& a) { return a.verification.ok() ? kExitOk : kExitUnchecked; }

int exitCode(const assistant::LlmFailure& f) {
    return f.kind == assistant::LlmFailure::Kind::Timeout ? kExitLlmTimeout : kExitLlmError;
}

int run(const Invocation& inv, const std::string& why) {
    const auto& s = inv.llm;
    auto url = parseChatUrl(s.endpoint);
    if (!url) {
        std::cerr << "netprobe: " << url.error().what() << "\n";
        return kExitUsage;
    }
    const ChatClient client{*url, s.key, s.ca_file, 8 * 1024 * 1024};
    assistant::LlmOptions o;
    o.model = s.model;
    o.max_rounds = s.max_rounds;
    o.deadline = s.timeout;
    o.max_result_bytes = s.max_result_bytes;
    o.anonymize = s.anonymize;
    if (s.anonymize) o.anonymize_prime = {assistant::ApiRequest{"/api/v1/pods", {}}};

    const std::time_t now = std::time(nullptr);
    std::tm local{};
    localtime_r(&now, &local);
    assistant::LlmIo io;
    io.chat = [&client](const json& req, milliseconds timeout) { return chatCompletion(client, req, timeout); };
    io.tool = [conn = inv.conn](const assistant::ApiRequest& r, milliseconds timeout) {
        Connection c = conn;
        c.timeout = std::max(milliseconds(1), std::min(c.timeout, timeout));
        return agentGet(c, r.path, r.query);
    };
    io.clock.utc_offset_seconds = static_cast<std::int32_t>(local.tm_gmtoff);

    const std::string endpoint = url->full();
    auto res = assistant::askLlm(inv.question, o, io);
    const bool json_out = inv.output == Output::Json || inv.output == Output::Yaml;
    if (!res) {
        if (json_out)
            std::cout << structuredText(failureJson(inv.question, why, endpoint, res.error()), inv.output);
        std::cerr << "netprobe: ask with the LLM at " << endpoint << " failed ("
                  << assistant::toString(res.error().kind) << "): " << res.error().message << "\n";
        std::cout.flush();
        return exitCode(res.error());
    }
    if (json_out)
        std::cout << structuredText(answerJson(inv.question, why, endpoint, *res), inv.output);
    else
        std::cout << answerText(*res, endpoint, inv.output == Output::Wide, inv.color);
    std::cout.flush();
    if (!res->verification.ok())
        std::cerr << "netprobe: the answer has " << res->verification.unchecked()
                  << " figure(s) that are not in the tool results (exit " << kExitUnchecked << ")\n";
    return exitCode(*res);
}

}  // namespace netprobe::cli::llm
