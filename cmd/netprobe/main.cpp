// netprobe: the command line over a NetProbe agent's HTTP API (cli.hpp).
#include <httplib.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <optional>
#include <set>
#include <thread>

#include "cli.hpp"
#include "llm_chat.hpp"
#include "mcp.hpp"

namespace {

// --follow ends on SIGINT/SIGTERM: between polls, after whole lines (exit 0).
std::atomic<bool> g_stop{false};
extern "C" void onStopSignal(int) { g_stop.store(true); }
void stopOnSignals() {
    struct sigaction sa{};
    sa.sa_handler = onStopSignal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
}
// Sleeps `d` in short steps; true when a stop signal came.
bool pauseOrStop(std::chrono::milliseconds d) {
    const auto end = std::chrono::steady_clock::now() + d;
    while (!g_stop.load()) {
        const auto now = std::chrono::steady_clock::now();
        if (now >= end) return false;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(end - now, std::chrono::milliseconds(50)));
    }
    return true;
}

using namespace netprobe::cli;

struct Failure {
    std::string message;
};

class Api {
public:
    explicit Api(const Connection& c) : c_(c), cli_(c.server) {
        const auto secs = std::chrono::duration_cast<std::chrono::seconds>(c.timeout);
        const auto usecs = std::chrono::duration_cast<std::chrono::microseconds>(c.timeout - secs);
        cli_.set_connection_timeout(secs.count(), usecs.count());
        cli_.set_read_timeout(secs.count(), usecs.count());
        cli_.set_write_timeout(secs.count(), usecs.count());
        if (!c.user.empty()) cli_.set_basic_auth(c.user, c.password);
        if (!c.ca_file.empty()) cli_.set_ca_cert_path(c.ca_file);
        cli_.enable_server_certificate_verification(!c.insecure);
    }

    std::string get(const std::string& path, const std::map<std::string, std::string>& query) {
        std::string target = path;
        char sep = '?';
        for (const auto& [k, v] : query) {
            target += sep + k + "=" + httplib::detail::encode_query_param(v);
            sep = '&';
        }
        auto res = cli_.Get(target);
        if (!res) {
            std::string why = httplib::to_string(res.error());
            if (res.error() == httplib::Error::SSLServerVerification)
                why += " (the agent's certificate is not signed by --ca-file, or its name does not match the URL)";
            throw Failure{"cannot reach the agent at " + c_.server + ": " + why};
        }
        if (res->status == 401)
            throw Failure{"the agent at " + c_.server + " wants credentials (401): --user and NETPROBE_PASSWORD"};
        if (res->status != 200) {
            std::string body = res->body.substr(0, res->body.find('\n'));
            throw Failure{"the agent answered " + std::to_string(res->status) + " for " + path + ": " + body};
        }
        return res->body;
    }

    nlohmann::json getJson(const std::string& path, const std::map<std::string, std::string>& query) {
        const auto body = get(path, query);
        auto j = nlohmann::json::parse(body, nullptr, false);
        if (j.is_discarded()) throw Failure{"the agent's answer for " + path + " is not JSON"};
        return j;
    }

private:
    Connection c_;
    httplib::Client cli_;
};

// RFC 3339 (as the agent writes it, UTC) -> Unix seconds; 0 when unparsable.
std::time_t unixOf(const std::string& t) {
    std::tm tm{};
    if (!strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm)) return 0;
    return timegm(&tm);
}

nlohmann::json tableJson(const Table& t) {
    auto arr = nlohmann::json::array();
    for (const auto& r : t.rows) {
        nlohmann::json o;
        for (std::size_t i = 0; i < t.header.size() && i < r.size(); ++i) {
            std::string k = t.header[i];
            for (auto& ch : k) ch = ch == ' ' ? '_' : static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            o[k] = r[i];
        }
        arr.push_back(std::move(o));
    }
    return arr;
}

// Flows with a packet within `since` (0: all), at most `limit`.
nlohmann::json selectFlows(nlohmann::json doc, std::chrono::seconds since, std::size_t limit) {
    const std::time_t cutoff = since.count() ? std::time(nullptr) - since.count() : 0;
    auto kept = nlohmann::json::array();
    for (auto& f : doc.value("flows", nlohmann::json::array())) {
        if (cutoff && unixOf(f.value("last_seen", std::string())) < cutoff) continue;
        if (kept.size() >= limit) break;
        kept.push_back(std::move(f));
    }
    doc["returned"] = kept.size();
    doc["flows"] = std::move(kept);
    return doc;
}

std::string flowKey(const nlohmann::json& f) {
    return f.value("interface", "") + "|" + f.value("direction", "") + "|" + f.value("protocol", "") + "|" +
           f.value("src_ip", "") + "|" + std::to_string(f.value("src_port", 0)) + "|" +
           f.value("dst_ip", "") + "|" + std::to_string(f.value("dst_port", 0));
}

int run(const Invocation& inv) {
    const bool wide = inv.output == Output::Wide;
    const bool json = inv.output == Output::Json || inv.output == Output::Yaml;  // a document, not a table
    const bool yaml = inv.output == Output::Yaml;
    // --follow: one JSON object per line, or one YAML document per item
    auto item = [&](const nlohmann::json& x) {
        std::cout << (yaml ? "---\n" + structuredText(x, Output::Yaml) : x.dump() + "\n");
    };
    Api api(inv.conn);
    auto print = [&](const Table& t, const nlohmann::json& doc, bool header = true) {
        if (json) {
            std::cout << structuredText(doc, inv.output);
        } else {
            std::string s = t.render(inv.color);
            if (!header) s = s.substr(s.find('\n') + 1);
            std::cout << s;
        }
        std::cout.flush();
        return t.rows.size();
    };
    // --follow: polls until a stop signal (SIGINT/SIGTERM, between polls) or the reader goes
    // away; fresh(doc, first) picks what was not printed yet, printed as items (json, yaml)
    // or as table rows under one header.
    auto follow = [&](const std::map<std::string, std::string>& query, const char* key, auto&& table_of,
                      auto&& fresh_of) {
        stopOnSignals();
        for (bool first = true;; first = false) {
            nlohmann::json out{{key, fresh_of(api.getJson(inv.path, query), first)}};
            const auto& fresh = out[key];
            if (!fresh.empty() || first) {
                if (json) {
                    for (const auto& x : fresh) item(x);
                    std::cout.flush();
                } else {
                    print(table_of(out, wide), out, first);
                }
            }
            if (!std::cout || pauseOrStop(inv.interval)) return kExitOk;  // the reader went away, or stopped
        }
    };
    auto done = [&](std::size_t rows) { return rows == 0 && inv.fail_if_empty ? kExitNotFound : kExitOk; };
    // An API answering enabled=false (the agent runs without that part): a line on stderr
    // for a terminal (-o json/yaml print the document), and "nothing matched" for scripts.
    auto off = [&](const nlohmann::json& doc, const char* why) -> std::optional<int> {
        if (doc.value("enabled", true) || json) return std::nullopt;
        std::cerr << "netprobe: " << why << "\n";
        return inv.fail_if_empty ? kExitNotFound : kExitOk;
    };
    using K = Invocation::Kind;
    switch (inv.kind) {
        case K::Completion:
            std::cout << completionScript(inv.shell);
            return kExitOk;
        case K::Flows: {
            if (!inv.follow) {
                auto doc = selectFlows(api.getJson(inv.path, inv.query), inv.since, inv.limit);
                return done(print(flowsTable(doc, wide), doc));
            }
            // --follow: each poll prints the flows whose last packet is newer than what was printed.
            std::map<std::string, std::string> seen;  // flow -> last_seen printed
            return follow(inv.query, "flows", flowsTable, [&](const nlohmann::json& doc, bool first) {
                auto fresh = nlohmann::json::array();
                for (auto& f : doc.value("flows", nlohmann::json::array())) {
                    auto& last = seen[flowKey(f)];
                    const std::string ls = f.value("last_seen", std::string());
                    if (ls <= last) continue;
                    last = ls;
                    fresh.push_back(f);
                }
                if (first && inv.since.count() == 0) {
                    // Start with the newest `limit` flows, like tail.
                    while (fresh.size() > inv.limit) fresh.erase(fresh.begin() + static_cast<std::ptrdiff_t>(inv.limit));
                }
                return fresh;
            });
        }
        case K::Connections: {
            auto doc = api.getJson(inv.path, inv.query);
            return done(print(connectionsTable(doc, wide), doc));
        }
        case K::Events: {
            auto query = inv.query;
            if (inv.since.count()) query["since"] = std::to_string(std::time(nullptr) - inv.since.count());
            if (!inv.follow) {
                auto doc = api.getJson(inv.path, query);
                return done(print(eventsTable(doc, wide), doc));
            }
            std::set<std::string> seen;
            return follow(query, "events", eventsTable, [&](const nlohmann::json& doc, bool) {
                auto fresh = nlohmann::json::array();
                auto evs = doc.value("events", nlohmann::json::array());
                for (auto it = evs.rbegin(); it != evs.rend(); ++it) {  // oldest first
                    // the id is a number in the API (a string here threw type_error 302 at the first event)
                    if (seen.insert((it->contains("id") ? (*it)["id"].dump() : std::string()) +
                                    (it->value("active", false) ? "" : "/ended"))
                            .second)
                        fresh.push_back(*it);
                }
                return fresh;
            });
        }
        case K::Interfaces: {
            auto doc = api.getJson(inv.path, inv.query);
            return done(print(interfacesTable(doc, wide), doc));
        }
        case K::Intel: {
            auto doc = api.getJson(inv.path, inv.query);
            if (!doc.value("enabled", false) && !json) {
                std::cerr << "netprobe: the agent has no threat-intel feeds (--intel-config)\n";
                return inv.fail_if_empty ? kExitNotFound : kExitOk;
            }
            return done(print(intelTable(doc, wide), doc));
        }
        case K::Pods: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent has no Kubernetes configuration: no pods")) return *rc;
            return done(print(podsTable(doc, wide), doc));
        }
        case K::Requests:
        case K::Routes: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent runs without --l7=on: no application-layer requests")) return *rc;
            return done(print(inv.kind == K::Requests ? requestsTable(doc, wide) : routesTable(doc, wide), doc));
        }
        case K::Trace: {
            // Start one (unless --id), then poll it until it finished (the agent arms it at its
            // next collection and ends it at the first collection after its time).
            std::string id;
            double seconds = 10;
            if (inv.query.contains("id")) {
                id = inv.query.at("id");
            } else {
                auto started = api.getJson(inv.path, inv.query);
                id = std::to_string(started.value("id", 0ull));
                seconds = started.value("seconds", 10.0);
                if (!inv.trace_wait) {
                    if (json) std::cout << structuredText(started, inv.output);
                    else std::cout << "trace " << id << " started (" << seconds << "s): netprobe trace --id " << id << "\n";
                    return kExitOk;
                }
                if (!json) std::cerr << "tracing for " << seconds << "s (trace " << id << ")...\n";
            }
            const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds + 60);
            nlohmann::json doc;
            for (;;) {
                doc = api.getJson(inv.path, {{"id", id}});
                const std::string state = doc.value("state", "");
                if (state == "finished" || state == "failed" || !inv.trace_wait) break;
                if (std::chrono::steady_clock::now() > deadline) throw Failure{"trace " + id + " did not finish in time"};
                std::this_thread::sleep_for(std::chrono::milliseconds(500));
            }
            if (doc.value("state", "") == "failed") {
                std::cerr << "netprobe: trace " << id << " failed: " << doc.value("error", "") << "\n";
                return kExitError;
            }
            if (!json) std::cout << traceSummary(doc);
            return done(print(traceTable(doc, wide), doc));
        }
        case K::Topology: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent has no topology stage")) return *rc;
            return done(print(topologyTable(doc, wide), doc));
        }
        case K::TopTalkers:
        case K::TopPorts:
        case K::TopEndpoints: {
            const auto by = inv.kind == K::TopTalkers ? TopBy::Talkers : inv.kind == K::TopPorts ? TopBy::Ports : TopBy::Endpoints;
            auto t = topTable(api.getJson(inv.path, inv.query), by, inv.limit);
            return done(print(t, tableJson(t)));
        }
        case K::TopDrops: {
            const auto a = api.get(inv.path, {});
            const auto t0 = std::chrono::steady_clock::now();
            std::this_thread::sleep_for(inv.interval);
            const auto b = api.get(inv.path, {});
            const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            if (metricSamples(b, "netprobe_packet_drops_total").empty()) {
                std::cerr << "netprobe: the agent exports no netprobe_packet_drops_total (socket monitor off?)\n";
                return inv.fail_if_empty ? kExitNotFound : kExitOk;
            }
            auto t = dropsTable(a, b, secs, inv.limit);
            return done(print(t, tableJson(t)));
        }
        case K::TopRetransmits: {
            auto t = retransmitsTable(api.getJson(inv.path, inv.query), inv.limit);
            return done(print(t, tableJson(t)));
        }
        case K::Bottlenecks: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent has no bottleneck stage")) return *rc;
            return done(print(bottlenecksTable(doc, wide), doc));
        }
        case K::Qos: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent has no QoS stage")) return *rc;
            return done(print(qosTable(doc, wide, inv.qos_services), doc));
        }
        case K::Cost: {
            auto doc = api.getJson(inv.path, inv.query);
            if (auto rc = off(doc, "the agent has no cost stage")) return *rc;
            if (!json) std::cout << costSummary(doc);
            return done(print(costTable(doc, wide), doc));
        }
        case K::Diagnose: {
            auto doc = api.getJson(inv.path, inv.query);
            if (json) std::cout << structuredText(doc, inv.output);
            else std::cout << diagnosisText(doc, inv.color);
            std::cout.flush();
            return inv.exit_code && !doc.value("findings", nlohmann::json::array()).empty() ? kExitFindings : kExitOk;
        }
        case K::Mcp:
            return mcp::run(inv);
        case K::Ask: {
            // With an LLM (--llm=always, or auto for a question the offline parser cannot map).
            const bool use_llm = inv.llm.mode != LlmSettings::Mode::Never && !inv.llm.endpoint.empty();
            if (inv.llm.mode == LlmSettings::Mode::Always) return llm::run(inv, "--llm=always");
            // The caller's clock and time zone: "since 14:00" is local.
            const std::time_t now = std::time(nullptr);
            std::tm local{};
            localtime_r(&now, &local);
            const netprobe::assistant::Clock clock{static_cast<std::int64_t>(now),
                                                   static_cast<std::int32_t>(local.tm_gmtoff)};
            auto intent = netprobe::assistant::parse(inv.question, clock);
            if (!intent && use_llm)
                return llm::run(inv, "the offline parser cannot map the question: " + intent.error().reason);
            if (!intent) {
                if (json) std::cout << structuredText(refusalJson(inv.question, intent.error()), inv.output);
                else std::cerr << refusalText(intent.error());
                return kExitCannotAnswer;
            }
            std::vector<nlohmann::json> docs;
            for (const auto& q : intent->queries) docs.push_back(api.getJson(q.target(), {}));
            auto a = netprobe::assistant::answer(*intent, docs);
            if (!a) throw Failure{a.error().what()};
            if (json) std::cout << structuredText(askJson(inv.question, *intent, *a), inv.output);
            else std::cout << askText(*a, wide, inv.color);
            std::cout.flush();
            const bool empty = std::all_of(a->tables.begin(), a->tables.end(), [](const auto& t) { return t.rows.empty(); });
            return empty && inv.fail_if_empty ? kExitNotFound : kExitOk;
        }
        case K::None:
            break;
    }
    return kExitUsage;
}

}  // namespace

int main(int argc, char** argv) {
    std::map<std::string, std::string> env;
    for (const char* k : {"NETPROBE_SERVER", "NETPROBE_USER", "NETPROBE_PASSWORD", "NO_COLOR", "NETPROBE_LLM_ENDPOINT",
                          "NETPROBE_LLM_MODEL", "NETPROBE_LLM_KEY"})
        if (const char* v = std::getenv(k)) env[k] = v;
    auto p = parse(argc, argv, env, isatty(STDOUT_FILENO) == 1);
    if (!p.run) {
        (p.exit_code == kExitOk ? std::cout : std::cerr) << p.output << (p.output.ends_with('\n') ? "" : "\n");
        return p.exit_code;
    }
    try {
        return run(p.inv);
    } catch (const Failure& f) {
        std::cerr << "netprobe: " << f.message << "\n";
        return kExitError;
    } catch (const std::exception& e) {
        std::cerr << "netprobe: " << e.what() << "\n";
        return kExitError;
    }
}
