#include "netprobe/history/prometheus.hpp"

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <fstream>
#include <sstream>

#include "netprobe/util/parse.hpp"

namespace netprobe::history {

namespace {

// "https://host:port/prefix" -> ("https://host:port", "/prefix"), the prefix without a trailing "/"
std::pair<std::string, std::string> splitUrl(const std::string& url) {
    const auto scheme_end = url.find("://");
    const auto host_start = scheme_end == std::string::npos ? 0 : scheme_end + 3;
    const auto path_start = url.find('/', host_start);
    if (path_start == std::string::npos) return {url, ""};
    std::string prefix = url.substr(path_start);
    while (!prefix.empty() && prefix.back() == '/') prefix.pop_back();
    return {url.substr(0, path_start), prefix};
}

std::string firstLine(const std::string& s) {
    std::string l = s.substr(0, s.find('\n'));
    if (l.size() > 300) l = l.substr(0, 300) + "...";
    return l;
}

// The figures edges() asks for: name in the answer, metric, whether it has a direction.
struct Figure {
    const char* name;
    const char* metric;
    bool directed;
};
constexpr Figure kFigures[] = {
    {"bytes", "netprobe_topology_edge_bytes_total", true},
    {"packets", "netprobe_topology_edge_packets_total", true},
    {"connections", "netprobe_topology_edge_connections_total", false},
    {"connections_failed", "netprobe_topology_edge_connections_failed_total", false},
    {"retransmits", "netprobe_topology_edge_retransmits_total", false},
    {"requests", "netprobe_topology_edge_requests_total", false},
    {"request_errors", "netprobe_topology_edge_request_errors_total", false},
};

}  // namespace

Result<void> checkPrometheusUrl(const std::string& url) {
    const auto scheme_end = url.find("://");
    if (scheme_end == std::string::npos || (url.substr(0, scheme_end) != "http" && url.substr(0, scheme_end) != "https"))
        return std::unexpected(makeError("--prometheus-url " + url + ": expected http://HOST:PORT or https://HOST:PORT"));
    const auto [origin, prefix] = splitUrl(url);
    if (origin.size() <= scheme_end + 3)
        return std::unexpected(makeError("--prometheus-url " + url + ": no host"));
    if (url.find_first_of("?#") != std::string::npos)
        return std::unexpected(makeError("--prometheus-url " + url + ": no query or fragment expected"));
    httplib::Client cli(origin);
    if (!cli.is_valid()) return std::unexpected(makeError("--prometheus-url " + url + ": not a usable url"));
    return {};
}

PrometheusTopology::PrometheusTopology(PrometheusOptions options) : options_(std::move(options)) {}

PrometheusStats PrometheusTopology::stats() const { return {queries_.load(), errors_.load(), skipped_.load()}; }

Result<std::vector<PromSample>> PrometheusTopology::query(const std::string& expr) const {
    {
        std::lock_guard lock(mu_);
        if (std::chrono::steady_clock::now() < down_until_) {
            ++skipped_;
            return std::unexpected(makeError(last_error_ + " (not retried for " +
                                             std::to_string(options_.retry_after.count() / 1000) + " s)"));
        }
    }
    ++queries_;
    auto fail = [&](const std::string& why) -> Result<std::vector<PromSample>> {
        ++errors_;
        std::lock_guard lock(mu_);
        last_error_ = "prometheus " + options_.url + ": " + why;
        down_until_ = std::chrono::steady_clock::now() + options_.retry_after;
        return std::unexpected(makeError(last_error_));
    };
    const auto [origin, prefix] = splitUrl(options_.url);
    httplib::Client cli(origin);
    if (!cli.is_valid()) return fail("not a usable url");
    cli.set_connection_timeout(options_.connect_timeout);
    cli.set_read_timeout(options_.read_timeout);
    cli.set_write_timeout(options_.read_timeout);
    if (!options_.ca_file.empty()) cli.set_ca_cert_path(options_.ca_file.c_str());
    cli.enable_server_certificate_verification(true);
    httplib::Headers h{{"User-Agent", "netprobe-agent/" NETPROBE_VERSION}};
    if (!options_.user.empty()) cli.set_basic_auth(options_.user, options_.password);
    if (!options_.bearer_token_file.empty()) {
        std::ifstream f(options_.bearer_token_file);
        std::stringstream ss;
        ss << f.rdbuf();
        std::string token = ss.str();
        while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
        if (!f || token.empty()) return fail("cannot read the bearer token file " + options_.bearer_token_file);
        h.emplace("Authorization", "Bearer " + token);
    }
    const auto timeout_s = std::max<std::int64_t>(1, options_.read_timeout.count() / 1000);
    auto res = cli.Get(prefix + "/api/v1/query?query=" + util::urlEncode(expr) + "&timeout=" +
                           std::to_string(timeout_s) + "s",
                       h);
    if (!res) return fail("no answer (" + httplib::to_string(res.error()) + ")");
    nlohmann::json j = nlohmann::json::parse(res->body, nullptr, false);
    if (res->status != 200) {
        std::string why = "HTTP " + std::to_string(res->status);
        if (j.is_object() && j.value("error", std::string()).size()) why += ": " + j.value("error", std::string());
        else why += ": " + firstLine(res->body);
        return fail(why);
    }
    if (!j.is_object() || j.value("status", std::string()) != "success" || !j.contains("data") ||
        !j["data"].is_object() || j["data"].value("resultType", std::string()) != "vector" ||
        !j["data"].contains("result") || !j["data"]["result"].is_array())
        return fail("not an instant vector answer: " + firstLine(res->body));
    std::vector<PromSample> out;
    for (const auto& r : j["data"]["result"]) {
        if (!r.is_object() || !r.contains("metric") || !r["metric"].is_object() || !r.contains("value") ||
            !r["value"].is_array() || r["value"].size() != 2 || !r["value"][1].is_string())
            return fail("unexpected sample in the answer");
        PromSample s;
        for (const auto& [k, v] : r["metric"].items())
            if (v.is_string()) s.labels.emplace(k, v.get<std::string>());
        const std::string text = r["value"][1].get<std::string>();
        char* end = nullptr;
        s.value = std::strtod(text.c_str(), &end);
        if (end == text.c_str() || !std::isfinite(s.value)) continue;  // NaN, Inf: no figure
        out.push_back(std::move(s));
    }
    return out;
}

std::string PrometheusTopology::edgesQuery(std::size_t window_seconds) {
    const std::string w = "[" + std::to_string(window_seconds) + "s]";
    const std::string edge = "source, target, port, transport";
    std::string q;
    for (const auto& f : kFigures) {
        if (!q.empty()) q += " or ";
        q += std::string("max by (figure, ") + edge + (f.directed ? ", direction" : "") + ") (label_replace(increase(" +
             f.metric + "{source!=\"other\"}" + w + "), \"figure\", \"" + f.name + "\", \"\", \"\"))";
    }
    // the agents that saw the edge
    q += " or max by (figure, " + edge + ", instance) (label_replace(increase(netprobe_topology_edge_bytes_total"
         "{source!=\"other\", direction=\"to_server\"}" + w + ") > 0, \"figure\", \"observed\", \"\", \"\"))";
    return q;
}

Result<std::vector<PromEdge>> PrometheusTopology::edges(std::size_t window_seconds) const {
    auto samples = query(edgesQuery(window_seconds));
    if (!samples) return std::unexpected(samples.error());
    std::map<std::tuple<std::string, std::string, std::uint16_t, std::string>, PromEdge> edges;
    auto label = [](const PromSample& s, const char* k) {
        auto it = s.labels.find(k);
        return it == s.labels.end() ? std::string() : it->second;
    };
    for (const auto& s : *samples) {
        std::uint16_t port = 0;
        const std::string src = label(s, "source"), dst = label(s, "target"), transport = label(s, "transport");
        if (src.empty() || dst.empty() || !util::parseNumber(label(s, "port"), port)) continue;
        auto& e = edges[{src, dst, port, transport}];
        e.source = src, e.target = dst, e.port = port, e.transport = transport;
        const std::string fig = label(s, "figure");
        const bool to_server = label(s, "direction") == "to_server";
        if (fig == "bytes") (to_server ? e.bytes_to_server : e.bytes_to_client) = s.value;
        else if (fig == "packets") (to_server ? e.packets_to_server : e.packets_to_client) = s.value;
        else if (fig == "connections") e.connections = s.value;
        else if (fig == "connections_failed") e.connections_failed = s.value;
        else if (fig == "retransmits") e.retransmits = s.value;
        else if (fig == "requests") e.requests = s.value;
        else if (fig == "request_errors") e.request_errors = s.value;
        else if (fig == "observed") e.observed_by.push_back(label(s, "instance"));
    }
    std::vector<PromEdge> out;
    out.reserve(edges.size());
    for (auto& [_, e] : edges) {
        std::sort(e.observed_by.begin(), e.observed_by.end());
        out.push_back(std::move(e));
    }
    return out;
}

}  // namespace netprobe::history
