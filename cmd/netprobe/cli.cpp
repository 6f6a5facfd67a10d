#include "cli.hpp"
#include "llm_chat.hpp"
#include "mcp.hpp"

#include <CLI/CLI.hpp>
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <netprobe/metrics/qos.hpp>
#include <netprobe/util/duration.hpp>

namespace netprobe::cli {

namespace {

std::string firstLine(const std::string& s) { return s.substr(0, s.find('\n')); }

std::string str(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end() || it->is_null()) return "";
    if (it->is_string()) return it->get<std::string>();
    return it->dump();
}

double num(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? it->get<double>() : 0.0;
}

// "2026-12-03T17:18:42.145Z" -> "17:18:42" (the time of day is what a terminal needs).
std::string clock(const std::string& rfc3339) {
    auto t = rfc3339.find('T');
    if (t == std::string::npos || rfc3339.size() < t + 9) return rfc3339;
    return rfc3339.substr(t + 1, 8);
}

std::string join(const nlohmann::json& arr, const char* sep) {
    std::string out;
    if (!arr.is_array()) return out;
    for (const auto& x : arr) {
        if (!out.empty()) out += sep;
        out += x.is_string() ? x.get<std::string>() : x.dump();
    }
    return out;
}

std::string podOf(const nlohmann::json& f, const char* side) {
    const std::string ns = str(f, (std::string(side) + "_namespace").c_str());
    const std::string pod = str(f, (std::string(side) + "_pod").c_str());
    if (pod.empty()) return ns.empty() ? "" : ns + "/";
    return ns + "/" + pod;
}

}  // namespace

std::string humanBytes(double b) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) b /= 1024, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : (b < 10 ? "%.1f%s" : "%.0f%s"), b, units[u]);
    return buf;
}

std::string humanCount(double n) {
    static const char* units[] = {"", "k", "M", "G", "T"};
    int u = 0;
    while (n >= 1000 && u < 4) n /= 1000, ++u;
    char buf[32];
    std::snprintf(buf, sizeof buf, u == 0 ? "%.0f%s" : (n < 10 ? "%.1f%s" : "%.0f%s"), n, units[u]);
    return buf;
}

std::string endpoint(const std::string& ip, std::uint64_t port) {
    const bool v6 = ip.find(':') != std::string::npos;
    if (port == 0) return ip;
    return (v6 ? "[" + ip + "]" : ip) + ":" + std::to_string(port);
}

std::string Table::render(bool color) const {
    std::vector<std::size_t> w(header.size(), 0);
    for (std::size_t i = 0; i < header.size(); ++i) w[i] = header[i].size();
    for (const auto& r : rows)
        for (std::size_t i = 0; i < r.size() && i < w.size(); ++i) w[i] = std::max(w[i], r[i].size());
    auto line = [&](const std::vector<std::string>& cells, bool head) {
        std::string out;
        for (std::size_t i = 0; i < w.size(); ++i) {
            const std::string c = i < cells.size() ? cells[i] : "";
            const bool last = i + 1 == w.size();
            const bool r = i < right.size() && right[i];
            std::string pad(w[i] - std::min(w[i], c.size()), ' ');
            std::string cell = r ? pad + c : (last ? c : c + pad);
            if (head && color) cell = "\033[1m" + cell + "\033[0m";
            out += cell;
            if (!last) out += "  ";
        }
        while (!out.empty() && out.back() == ' ') out.pop_back();
        return out + "\n";
    };
    std::string out = line(header, true);
    for (const auto& r : rows) out += line(r, false);
    return out;
}

Table flowsTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"SOURCE", "DESTINATION", "PROTO", "INTERFACE", "DIR", "PACKETS", "BYTES", "RATE", "LAST SEEN"};
    t.right = {false, false, false, false, false, true, true, true, false};
    if (wide) {
        for (const char* h : {"SRC POD", "DST POD", "DST SERVICE", "FLAGS", "ENCAP"}) t.header.push_back(h);
        t.right.resize(t.header.size(), false);
    }
    for (const auto& f : doc.value("flows", nlohmann::json::array())) {
        std::vector<std::string> r = {
            endpoint(str(f, "src_ip"), static_cast<std::uint64_t>(num(f, "src_port"))),
            endpoint(str(f, "dst_ip"), static_cast<std::uint64_t>(num(f, "dst_port"))),
            str(f, "protocol"),
            str(f, "interface"),
            str(f, "direction") == "ingress" ? "in" : "out",
            humanCount(num(f, "packets")),
            humanBytes(num(f, "bytes")),
            humanBytes(num(f, "bytes_rate")) + "/s",
            clock(str(f, "last_seen")),
        };
        if (wide) {
            r.push_back(podOf(f, "src"));
            r.push_back(podOf(f, "dst"));
            r.push_back(str(f, "dst_service"));
            r.push_back(join(f.value("tcp_flags", nlohmann::json::array()), ","));
            // the tunnel an inner (pod) flow was carried in; "" for plain flows
            const std::string encap = str(f, "encap");
            r.push_back(encap == "none" ? std::string() : encap);
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

namespace {
std::string millis(double seconds) {
    char b[32];
    std::snprintf(b, sizeof b, seconds < 0.01 ? "%.2fms" : "%.1fms", seconds * 1000);
    return b;
}
}  // namespace

Table requestsTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"TIME", "SIDE", "SERVICE", "METHOD", "PATH", "STATUS", "DURATION", "SENT", "RECEIVED"};
    t.right = {false, false, false, false, false, false, true, true, true};
    if (wide) {
        for (const char* h : {"CLIENT", "PID", "ROUTE"}) t.header.push_back(h);
        t.right.resize(t.header.size(), false);
    }
    for (const auto& r : doc.value("requests", nlohmann::json::array())) {
        const bool dns = str(r, "protocol") == "dns";
        std::vector<std::string> row = {
            clock(str(r, "time")),
            str(r, "side"),
            str(r, "service"),
            str(r, "method"),
            str(r, "path"),
            dns ? str(r, "rcode") : std::to_string(static_cast<int>(num(r, "status"))),
            millis(num(r, "duration_seconds")),
            humanBytes(num(r, "request_bytes")),
            humanBytes(num(r, "response_bytes")),
        };
        if (wide) {
            row.push_back(endpoint(str(r, "client"), static_cast<std::uint64_t>(num(r, "client_port"))));
            row.push_back(std::to_string(static_cast<std::uint64_t>(num(r, "pid"))));
            row.push_back(str(r, "route"));
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

Table topologyTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"CLIENT", "SERVER", "PORT", "PROTO", "RATE", "CONNS", "REQ/S", "ERRORS", "P99", "RTT"};
    t.right = {false, false, true, false, true, true, true, true, true, true};
    if (wide) {
        for (const char* h : {"SENT", "RECEIVED", "FAILED", "RETRANS", "BOUNDARY"}) t.header.push_back(h);
        t.right.resize(t.header.size(), true);
    }
    std::map<std::string, std::string> names;
    for (const auto& n : doc.value("nodes", nlohmann::json::array())) names[str(n, "id")] = str(n, "name");
    auto name = [&](const std::string& id) { return names.contains(id) ? names[id] : id; };
    for (const auto& e : doc.value("edges", nlohmann::json::array())) {
        const bool l7 = e.contains("requests");
        char rps[32] = "", err[32] = "", rtt[32] = "";
        if (l7) {
            std::snprintf(rps, sizeof rps, "%.2f", num(e, "requests_per_second"));
            std::snprintf(err, sizeof err, "%.1f%%", num(e, "error_rate") * 100);
        }
        if (num(e, "rtt_ms") > 0) std::snprintf(rtt, sizeof rtt, "%.2fms", num(e, "rtt_ms"));
        std::vector<std::string> row = {name(str(e, "source")), name(str(e, "target")),
                                        std::to_string(static_cast<long long>(num(e, "port"))),
                                        e.contains("protocol") ? str(e, "protocol") : str(e, "transport"),
                                        humanBytes(num(e, "bytes_per_second")) + "/s",
                                        humanCount(num(e, "connections_opened")), rps, err,
                                        l7 ? millis(num(e, "p99_seconds")) : std::string(), rtt};
        if (wide) {
            row.push_back(humanBytes(num(e, "bytes_out")));
            row.push_back(humanBytes(num(e, "bytes_in")));
            row.push_back(humanCount(num(e, "connections_failed")));
            row.push_back(humanCount(num(e, "retransmits")));
            row.push_back(e.value("boundary", false) ? "yes" : "");
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

namespace {
std::string fixed(double v, const char* fmt) {
    char b[48];
    std::snprintf(b, sizeof b, fmt, v);
    return b;
}
// A figure the API leaves out when it has no samples (no handshake, no jitter): blank.
std::string msOrBlank(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_number() ? fixed(it->get<double>(), "%.2fms") : std::string();
}
}  // namespace

Table qosTable(const nlohmann::json& doc, bool wide, bool services) {
    Table t;
    if (!services) t.header = {"CLIENT"};
    for (const char* h : {"SERVER", "PORT", "CONNS", "FAILED", "RTT P50", "RTT P99", "JITTER", "LOSS", "RETRANS", "DROPS",
                          "BYTES"})
        t.header.push_back(h);
    if (wide)
        for (const char* h : {"SRTT", "SERVER SIDE", "CLIENT SIDE", "L7", "REQ", "ERRORS", "L7 P99", "DROP REASONS"})
            t.header.push_back(h);
    t.right.assign(t.header.size(), true);
    t.right[0] = false;
    if (!services) t.right[1] = false;
    if (wide) t.right.back() = false, t.right[t.right.size() - 5] = false;
    for (const auto& e : doc.value(services ? "services" : "edges", nlohmann::json::array())) {
        std::vector<std::string> r;
        if (!services) r.push_back(str(e, "client"));
        const auto rtt = e.value("rtt_ms", nlohmann::json::object());
        const auto loss = e.value("loss_ratio", nlohmann::json::object());
        const auto drops = e.value("drops", nlohmann::json::object());
        r.insert(r.end(), {str(e, "server"), std::to_string(static_cast<long long>(num(e, "port"))),
                           humanCount(num(e, "connections_opened")), humanCount(num(e, "connections_failed")),
                           msOrBlank(rtt, "p50"), msOrBlank(rtt, "p99"), msOrBlank(e, "jitter_ms"),
                           fixed(num(loss, "total") * 100, "%.2f%%"),
                           humanCount(num(e, "retransmits_client") + num(e, "retransmits_server")),
                           humanCount(num(drops, "client_to_server") + num(drops, "server_to_client")),
                           humanBytes(num(e, "bytes_out") + num(e, "bytes_in"))});
        if (wide) {
            const auto l7 = e.value("l7", nlohmann::json::object());
            std::string reasons;
            const auto by_reason = drops.value("by_reason", nlohmann::json::object());
            for (const auto& [k, v] : by_reason.items())
                reasons += (reasons.empty() ? "" : ",") + k + " " + humanCount(v.is_number() ? v.get<double>() : 0);
            r.insert(r.end(), {msOrBlank(e, "srtt_ms"), msOrBlank(e, "server_side_rtt_ms_p50"),
                               msOrBlank(e, "client_side_rtt_ms_p50"), str(l7, "protocol"),
                               l7.empty() ? "" : humanCount(num(l7, "requests")),
                               l7.empty() ? "" : fixed(num(l7, "error_rate") * 100, "%.1f%%"),
                               l7.empty() ? "" : millis(num(l7, "p99_seconds")), reasons});
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

namespace {
constexpr std::array<const char*, 5> kCostClasses = {"same_node", "same_zone", "cross_zone", "private", "internet"};
std::string money(double v, const std::string& currency) {
    return fixed(v, std::fabs(v) < 0.01 && v != 0 ? "%.6f" : "%.2f") + (currency.empty() ? "" : " " + currency);
}
}  // namespace

Table costTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"ENTITY"};
    for (const char* c : kCostClasses) {
        std::string h = std::string("SENT ") + c;
        for (auto& ch : h) ch = ch == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        t.header.push_back(h);
    }
    if (wide) t.header.push_back("RECEIVED");
    t.header.insert(t.header.end(), {"COST", "COST/HOUR"});
    t.right.assign(t.header.size(), true);
    t.right[0] = false;
    const std::string currency = str(doc, "currency");
    for (const auto& e : doc.value("entities", nlohmann::json::array())) {
        std::vector<std::string> r = {str(e, "entity")};
        const auto sent = e.value("bytes_sent", nlohmann::json::object());
        for (const char* c : kCostClasses) r.push_back(humanBytes(num(sent, c)));
        if (wide) {
            double received = 0;
            const auto by_class = e.value("bytes_received", nlohmann::json::object());
            for (const auto& [_, v] : by_class.items())
                received += v.is_number() ? v.get<double>() : 0;
            r.push_back(humanBytes(received));
        }
        r.push_back(money(num(e, "cost"), currency));
        r.push_back(money(num(e, "cost_per_hour"), currency));
        t.rows.push_back(std::move(r));
    }
    return t;
}

std::string costSummary(const nlohmann::json& doc) {
    const std::string currency = str(doc, "currency");
    std::string zone = str(doc, "zone");
    if (zone.empty()) zone = "unknown";
    const std::string source = str(doc, "zone_source");
    std::string prices;
    const auto p = doc.value("price_per_gb", nlohmann::json::object());
    for (const char* c : kCostClasses)
        if (p.contains(c)) prices += (prices.empty() ? "" : ", ") + std::string(c) + " " + fixed(num(p, c), "%g");
    return "zone " + zone + (source.empty() ? "" : " (from " + source + ")") + ", window " +
           fixed(num(doc, "window_seconds"), "%.0f") + " s, price per GB" + (currency.empty() ? "" : " in " + currency) +
           ": " + prices + "\ntotal " + money(num(doc, "total_cost"), currency) + " over the window, " +
           money(num(doc, "total_cost_per_hour"), currency) + " per hour\n\n";
}

Table traceTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"DIRECTION", "STAGE", "PACKETS", "BYTES", "DEVICE", "DROPS"};
    t.right = {false, false, true, true, false, false};
    if (wide) {
        t.header.push_back("IFINDEX");
        t.right.push_back(true);
    }
    const auto path = doc.value("path", nlohmann::json::object());
    for (const char* dir : {"forward", "reply"}) {
        for (const auto& st : path.value(dir, nlohmann::json::array())) {
            std::string devs, idx, drops;
            for (const char* side : {"in", "out"})
                for (const auto& d : st.value(side, nlohmann::json::array())) {
                    devs += (devs.empty() ? "" : ",") + std::string(side) + " " +
                            (str(d, "name").empty() ? "#" + str(d, "ifindex") : str(d, "name"));
                    idx += (idx.empty() ? "" : ",") + str(d, "ifindex");
                }
            for (const auto& x : st.value("drops", nlohmann::json::array()))
                drops += (drops.empty() ? "" : ",") + str(x, "reason") + " " + humanCount(num(x, "packets"));
            std::vector<std::string> r = {dir, str(st, "stage"), humanCount(num(st, "packets")), humanBytes(num(st, "bytes")),
                                          devs, drops};
            if (wide) r.push_back(idx);
            t.rows.push_back(std::move(r));
        }
    }
    return t;
}

std::string traceSummary(const nlohmann::json& doc) {
    const auto m = doc.value("match", nlohmann::json::object());
    auto side = [&](const char* ip, const char* port) {
        const std::string a = str(m, ip).empty() ? "*" : str(m, ip);
        return endpoint(a, static_cast<std::uint64_t>(num(m, port)));
    };
    std::string out = "trace " + str(doc, "id") + " (" + str(doc, "state") + "): " + side("src", "sport") + " -> " +
                      side("dst", "dport") + (str(m, "proto").empty() ? "" : " " + str(m, "proto")) + ", " +
                      str(doc, "seconds") + "s from " + clock(str(doc, "started")) + "\n";
    if (doc.contains("error")) out += "error: " + str(doc, "error") + "\n";
    for (const auto& e : doc.value("egress", nlohmann::json::array()))
        if (str(e, "stage") == "forward")
            out += "forwarded out of " + (str(e, "name").empty() ? "#" + str(e, "ifindex") : str(e, "name")) + " (" +
                   str(e, "direction") + ", " + humanCount(num(e, "packets")) + " packets)\n";
    for (const auto& p : doc.value("processes", nlohmann::json::array()))
        out += std::string(str(p, "direction") == "forward" ? "delivered to" : "sent by") + " pid " + str(p, "pid") + " (" +
               str(p, "comm") + "): " + humanCount(num(p, "calls")) + " calls, " + humanBytes(num(p, "bytes")) + "\n";
    return out;
}

std::expected<std::map<std::string, std::string>, std::string> parseTraceFlow(const std::vector<std::string>& words) {
    std::map<std::string, std::string> q;
    std::size_t i = 0;
    if (words.size() == 3) q["proto"] = words[i++];
    if (words.size() - i != 2) return std::unexpected("a flow is [PROTO] SRC[:PORT] DST[:PORT], e.g. udp 198.18.0.1 198.18.0.2:5000");
    for (const char* side : {"src", "dst"}) {
        std::string w = words[i++], ip = w, port;
        if (w.starts_with('[')) {  // [v6]:port
            const auto close = w.find(']');
            if (close == std::string::npos) return std::unexpected("\"" + w + "\": no closing ]");
            ip = w.substr(1, close - 1);
            if (close + 1 < w.size()) {
                if (w[close + 1] != ':') return std::unexpected("\"" + w + "\": expected [ADDRESS]:PORT");
                port = w.substr(close + 2);
            }
        } else if (std::count(w.begin(), w.end(), ':') == 1) {  // v4:port (a bare v6 has several)
            ip = w.substr(0, w.find(':'));
            port = w.substr(w.find(':') + 1);
        }
        if (ip.empty()) return std::unexpected("\"" + w + "\": no address");
        q[side] = ip;
        if (!port.empty()) q[std::string(side) == "src" ? "sport" : "dport"] = port;
    }
    return q;
}

Table routesTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"SERVICE", "SIDE", "METHOD", "ROUTE", "REQ/S", "ERRORS", "P50", "P99"};
    t.right = {false, false, false, false, true, true, true, true};
    if (wide) {
        for (const char* h : {"REQUESTS", "P90", "SENT", "RECEIVED"}) t.header.push_back(h);
        t.right.resize(t.header.size(), true);
    }
    for (const auto& e : doc.value("endpoints", nlohmann::json::array())) {
        char rate[32], err[32];
        std::snprintf(rate, sizeof rate, "%.2f", num(e, "rate"));
        std::snprintf(err, sizeof err, "%.1f%%", num(e, "error_rate") * 100);
        std::vector<std::string> row = {str(e, "service"), str(e, "side"),  str(e, "method"),
                                        str(e, "route"),   rate,           err,
                                        millis(num(e, "p50_seconds")), millis(num(e, "p99_seconds"))};
        if (wide) {
            row.push_back(humanCount(num(e, "requests")));
            row.push_back(millis(num(e, "p90_seconds")));
            row.push_back(humanBytes(num(e, "request_bytes")));
            row.push_back(humanBytes(num(e, "response_bytes")));
        }
        t.rows.push_back(std::move(row));
    }
    return t;
}

Table connectionsTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"SOURCE", "DESTINATION", "STATE", "PID", "COMMAND", "SENT", "RECEIVED", "RTT", "RETRANS"};
    t.right = {false, false, false, true, false, true, true, true, true};
    if (wide) {
        for (const char* h : {"CONTAINER", "POD", "COOKIE", "STARTED"}) t.header.push_back(h);
        t.right.resize(t.header.size(), false);
    }
    for (const auto& c : doc.value("connections", nlohmann::json::array())) {
        const double rtt = num(c, "rtt_seconds");
        char rtt_s[32];
        std::snprintf(rtt_s, sizeof rtt_s, rtt >= 0.001 ? "%.1fms" : "%.0fus", rtt >= 0.001 ? rtt * 1e3 : rtt * 1e6);
        std::vector<std::string> r = {
            endpoint(str(c, "src_ip"), static_cast<std::uint64_t>(num(c, "src_port"))),
            endpoint(str(c, "dst_ip"), static_cast<std::uint64_t>(num(c, "dst_port"))),
            str(c, "state"),
            str(c, "pid"),
            str(c, "comm"),
            humanBytes(num(c, "bytes_sent")),
            humanBytes(num(c, "bytes_received")),
            c.contains("rtt_seconds") && !c["rtt_seconds"].is_null() ? std::string(rtt_s) : "",
            humanCount(num(c, "retransmits")),
        };
        if (wide) {
            const std::string id = str(c, "container_id");
            r.push_back(id.substr(0, 12));
            r.push_back(str(c, "namespace").empty() ? "" : str(c, "namespace") + "/" + str(c, "pod"));
            r.push_back(str(c, "cookie"));
            r.push_back(clock(str(c, "start")));
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

Table eventsTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"DETECTED", "TYPE", "SEVERITY", "SOURCE", "TARGET", "ACTIVE"};
    t.right = {false, false, false, false, false, false};
    if (wide) {
        for (const char* h : {"ID", "LAST SEEN", "TARGETS", "BLOCKED"}) t.header.push_back(h);
        t.right.resize(t.header.size(), false);
    }
    for (const auto& e : doc.value("events", nlohmann::json::array())) {
        std::vector<std::string> r = {clock(str(e, "detected_at")), str(e, "type"), str(e, "severity"),
                                      str(e, "src_ip"), str(e, "dst_ip"),
                                      e.value("active", false) ? "yes" : "no"};
        if (wide) {
            r.push_back(str(e, "id"));
            r.push_back(clock(str(e, "last_seen")));
            r.push_back(std::to_string(e.value("targets", nlohmann::json::array()).size()));
            r.push_back(str(e, "blocked"));
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

Table interfacesTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"INTERFACE", "RX PACKETS", "RX BYTES", "TX PACKETS", "TX BYTES", "RX RATE", "TX RATE", "TC", "XDP"};
    t.right = {false, true, true, true, true, true, true, false, false};
    if (wide) {
        for (const char* h : {"INDEX", "PEER NETNS", "POD"}) t.header.push_back(h);
        t.right.resize(t.header.size(), false);
    }
    const auto& list = doc.is_array() ? doc : doc.value("interfaces", nlohmann::json::array());
    for (const auto& i : list) {
        std::vector<std::string> r = {
            str(i, "name"), humanCount(num(i, "ingress_packets")), humanBytes(num(i, "ingress_bytes")),
            humanCount(num(i, "egress_packets")), humanBytes(num(i, "egress_bytes")),
            humanBytes(num(i, "ingress_bytes_rate")) + "/s", humanBytes(num(i, "egress_bytes_rate")) + "/s",
            str(i, "tc_mode"), str(i, "xdp_mode")};
        if (wide) {
            r.push_back(str(i, "index"));
            const auto peer = i.value("peer", nlohmann::json::object());
            r.push_back(str(peer, "netns_name"));
            r.push_back(str(peer, "pod"));
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

Table intelTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"FEED", "TYPE", "ACTION", "STATUS", "IPS", "DOMAINS", "MALFORMED", "FROM PKTS", "TO PKTS", "DROPPED",
                "LAST LOAD"};
    t.right = {false, false, false, false, true, true, true, true, true, true, false};
    if (wide) {
        t.header.push_back("SOURCE");
        t.header.push_back("ERROR");
        t.right.resize(t.header.size(), false);
    }
    for (const auto& f : doc.value("feeds", nlohmann::json::array())) {
        const auto m = f.value("matched", nlohmann::json::object());
        auto pk = [&](const char* k) { return humanCount(num(m.value(k, nlohmann::json::object()), "packets")); };
        std::vector<std::string> r = {str(f, "name"), str(f, "type"), str(f, "action"), str(f, "status"),
                                      humanCount(num(f, "ips")), humanCount(num(f, "domains")),
                                      humanCount(num(f, "malformed_lines")), pk("from"), pk("to"), pk("dropped"),
                                      str(f, "last_load")};
        if (wide) {
            r.push_back(str(f, "source"));
            r.push_back(str(f, "error"));
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

Table podsTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"NAMESPACE", "POD", "WORKLOAD", "IPS", "RX BYTES", "TX BYTES"};
    t.right = {false, false, false, false, true, true};
    if (wide) {
        t.header.push_back("NODE");
        t.header.push_back("UID");
        t.right.resize(t.header.size(), false);
    }
    for (const auto& p : doc.value("pods", nlohmann::json::array())) {
        std::vector<std::string> r = {str(p, "namespace"), str(p, "name"), str(p, "workload"),
                                      join(p.value("ips", nlohmann::json::array()), ","),
                                      humanBytes(num(p, "rx_bytes")), humanBytes(num(p, "tx_bytes"))};
        if (wide) {
            r.push_back(str(p, "node"));
            r.push_back(str(p, "uid"));
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

Table topTable(const nlohmann::json& flows, TopBy by, std::size_t limit) {
    struct Agg {
        double rate = 0, bytes = 0, packets = 0;
        std::size_t flows = 0;
    };
    std::map<std::string, Agg> agg;
    for (const auto& f : flows.value("flows", nlohmann::json::array())) {
        std::vector<std::string> keys;
        const std::string src = str(f, "src_ip"), dst = str(f, "dst_ip"), proto = str(f, "protocol");
        switch (by) {
            case TopBy::Talkers: keys.push_back(src + " -> " + dst); break;
            case TopBy::Ports: {
                // The server end: the lower port (an ephemeral client port is above it).
                const auto sp = static_cast<std::uint64_t>(num(f, "src_port")), dp = static_cast<std::uint64_t>(num(f, "dst_port"));
                const auto server = sp && (sp < dp || !dp) ? sp : dp;
                keys.push_back(proto + "/" + std::to_string(server));
                break;
            }
            case TopBy::Endpoints: keys = {src, dst}; break;
        }
        for (const auto& k : keys) {
            auto& a = agg[k];
            a.rate += num(f, "bytes_rate");
            a.bytes += num(f, "bytes");
            a.packets += num(f, "packets");
            ++a.flows;
        }
    }
    std::vector<std::pair<std::string, Agg>> v(agg.begin(), agg.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) {
        return a.second.rate != b.second.rate ? a.second.rate > b.second.rate : a.second.bytes > b.second.bytes;
    });
    Table t;
    t.header = {by == TopBy::Talkers ? "SOURCE -> DESTINATION" : by == TopBy::Ports ? "PORT" : "ENDPOINT", "RATE",
                "BYTES", "PACKETS", "FLOWS"};
    t.right = {false, true, true, true, true};
    for (std::size_t i = 0; i < v.size() && i < limit; ++i) {
        const auto& [k, a] = v[i];
        t.rows.push_back({k, humanBytes(a.rate) + "/s", humanBytes(a.bytes), humanCount(a.packets),
                          std::to_string(a.flows)});
    }
    return t;
}

std::map<std::string, double> metricSamples(const std::string& text, const std::string& name) {
    std::map<std::string, double> out;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        if (!line.starts_with(name)) continue;
        const char next = line.size() > name.size() ? line[name.size()] : '\0';
        if (next != '{' && next != ' ') continue;
        std::string labels;
        std::size_t valpos = name.size();
        if (next == '{') {
            const auto close = line.find("} ", name.size());
            if (close == std::string::npos) continue;
            labels = line.substr(name.size() + 1, close - name.size() - 1);
            valpos = close + 1;
        }
        try {
            out[labels] += std::stod(line.substr(valpos + 1));
        } catch (...) {
        }
    }
    return out;
}

Table dropsTable(const std::string& before, const std::string& after, double secs, std::size_t limit) {
    const auto a = metricSamples(before, "netprobe_packet_drops_total");
    const auto b = metricSamples(after, "netprobe_packet_drops_total");
    std::vector<std::tuple<double, double, std::string>> v;  // rate, total, reason
    for (const auto& [labels, total] : b) {
        std::string reason = labels;
        if (auto p = labels.find("reason=\""); p != std::string::npos)
            reason = labels.substr(p + 8, labels.find('"', p + 8) - p - 8);
        const auto it = a.find(labels);
        const double d = it == a.end() ? total : std::max(0.0, total - it->second);
        v.emplace_back(secs > 0 ? d / secs : 0.0, total, reason);
    }
    std::sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
        return std::get<0>(x) != std::get<0>(y) ? std::get<0>(x) > std::get<0>(y) : std::get<1>(x) > std::get<1>(y);
    });
    Table t;
    t.header = {"REASON", "RATE", "TOTAL"};
    t.right = {false, true, true};
    char buf[32];
    for (std::size_t i = 0; i < v.size() && i < limit; ++i) {
        std::snprintf(buf, sizeof buf, "%.1f/s", std::get<0>(v[i]));
        t.rows.push_back({std::get<2>(v[i]), buf, humanCount(std::get<1>(v[i]))});
    }
    return t;
}

Table retransmitsTable(const nlohmann::json& connections, std::size_t limit) {
    std::vector<nlohmann::json> v;
    for (const auto& c : connections.value("connections", nlohmann::json::array()))
        if (num(c, "retransmits") > 0) v.push_back(c);
    std::stable_sort(v.begin(), v.end(),
                     [](const auto& a, const auto& b) { return num(a, "retransmits") > num(b, "retransmits"); });
    nlohmann::json doc{{"connections", nlohmann::json::array()}};
    for (std::size_t i = 0; i < v.size() && i < limit; ++i) doc["connections"].push_back(v[i]);
    return connectionsTable(doc, false);
}

namespace {
void emitYaml(YAML::Emitter& e, const nlohmann::json& j) {
    switch (j.type()) {
        case nlohmann::json::value_t::object:
            e << YAML::BeginMap;
            for (const auto& [k, v] : j.items()) {
                e << YAML::Key << YAML::DoubleQuoted << k << YAML::Value;
                emitYaml(e, v);
            }
            e << YAML::EndMap;
            break;
        case nlohmann::json::value_t::array:
            e << YAML::BeginSeq;
            for (const auto& v : j) emitYaml(e, v);
            e << YAML::EndSeq;
            break;
        case nlohmann::json::value_t::string:
            e << YAML::DoubleQuoted << j.get_ref<const std::string&>();
            break;
        case nlohmann::json::value_t::boolean:
            e << j.get<bool>();
            break;
        case nlohmann::json::value_t::number_integer:
            e << j.get<std::int64_t>();
            break;
        case nlohmann::json::value_t::number_unsigned:
            e << j.get<std::uint64_t>();
            break;
        case nlohmann::json::value_t::number_float: {
            const double d = j.get<double>();
            if (std::isnan(d)) { e << ".nan"; break; }
            if (std::isinf(d)) { e << (d > 0 ? ".inf" : "-.inf"); break; }
            // JSON's shortest round-trip text, with a dot before an exponent: YAML 1.1
            // (PyYAML) reads "1e-05" as a string, "1.0e-05" as a float.
            std::string t = j.dump();
            if (t.find_first_of(".eE") == std::string::npos) t += ".0";
            else if (const auto x = t.find_first_of("eE"); x != std::string::npos && t.find('.') == std::string::npos)
                t.insert(x, ".0");
            if (const auto x = t.find_first_of("eE"); x != std::string::npos && x + 1 < t.size() && t[x + 1] != '-' &&
                                                      t[x + 1] != '+')
                t.insert(x + 1, "+");
            e << t;
            break;
        }
        default:
            e << YAML::Null;
            break;
    }
}
}  // namespace

std::string structuredText(const nlohmann::json& doc, Output output) {
    if (output != Output::Yaml) return doc.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
    // yaml-cpp writes the bytes it is given: make them valid UTF-8 the way the JSON text does.
    const auto clean = nlohmann::json::parse(doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
    YAML::Emitter e;
    emitYaml(e, clean);
    std::string out = e.c_str();
    if (!out.ends_with('\n')) out += '\n';
    return out;
}

Table bottlenecksTable(const nlohmann::json& doc, bool wide) {
    Table t;
    t.header = {"RANK", "SEVERITY", "KIND", "SUBJECT", "TITLE"};
    t.right = {true, false, false, false, false};
    if (wide) {
        t.header.insert(t.header.end(), {"SCORE", "EVIDENCE", "SINCE"});
        t.right.insert(t.right.end(), {true, false, false});
    }
    for (const auto& f : doc.value("findings", nlohmann::json::array())) {
        std::vector<std::string> r = {std::to_string(static_cast<long long>(num(f, "rank"))), str(f, "severity"),
                                      str(f, "kind"), str(f, "subject"), str(f, "title")};
        if (wide) {
            char b[64];
            std::snprintf(b, sizeof b, "%.2f", num(f, "score"));
            std::string ev;
            for (const auto& e : f.value("evidence", nlohmann::json::array())) {
                char v[64];
                const double x = num(e, "value");
                std::snprintf(v, sizeof v, x == std::floor(x) && std::fabs(x) < 1e15 ? "%.0f" : "%.3g", x);
                ev += (ev.empty() ? "" : ", ") + str(e, "name") + " " + v + (str(e, "unit").empty() ? "" : " " + str(e, "unit"));
            }
            r.insert(r.end(), {b, ev, clock(str(f, "since"))});
        }
        t.rows.push_back(std::move(r));
    }
    return t;
}

std::string diagnosisText(const nlohmann::json& doc, bool color) {
    const auto findings = doc.value("findings", nlohmann::json::array());
    char win[64];
    std::snprintf(win, sizeof win, "%.0f s", num(doc, "window_seconds"));
    if (findings.empty()) return std::string("No findings (the last ") + win + " of traffic, drops, connections and events).\n";
    std::string out;
    for (const auto& f : findings) {
        std::string sev = str(f, "severity");
        for (auto& c : sev) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        if (color) sev = (sev == "CRITICAL" ? "\033[1;31m" : sev == "WARNING" ? "\033[1;33m" : "\033[1m") + sev + "\033[0m";
        out += sev + "  " + str(f, "rule") + "  " + str(f, "subject") + "  (since " + clock(str(f, "since")) + ")\n";
        out += "  " + str(f, "title") + "\n";
        std::string ev;
        for (const auto& e : f.value("evidence", nlohmann::json::array())) {
            if (!ev.empty()) ev += ", ";
            const double v = num(e, "value");
            char b[64];
            std::snprintf(b, sizeof b, v == std::floor(v) && std::fabs(v) < 1e15 ? "%.0f" : "%.3g", v);
            ev += str(e, "name") + " " + b + " " + str(e, "unit");
        }
        out += "  evidence (last " + std::string(win) + "): " + ev + "\n";
        out += "  cause: " + str(f, "cause") + "\n";
        out += "  fix:\n";
        for (const auto& x : f.value("fix", nlohmann::json::array())) out += "    " + x.get<std::string>() + "\n";
        out += "  query: " + str(f, "query") + "\n\n";
    }
    return out;
}

std::string askText(const assistant::Answer& a, bool wide, bool color) {
    std::string out = a.text;
    if (wide) {
        for (const auto& t : a.tables) {
            if (t.rows.empty()) continue;
            Table tab;
            for (const auto& c : t.columns) {
                std::string h = c.name;
                for (auto& ch : h) ch = ch == '_' ? ' ' : static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
                tab.header.push_back(h);
                tab.right.push_back(c.unit != assistant::Column::Unit::Text);
            }
            for (const auto& r : t.rows) {
                std::vector<std::string> row;
                for (const auto& c : t.columns) row.push_back(assistant::formatCell(c, r.value(c.name, nlohmann::json())));
                tab.rows.push_back(std::move(row));
            }
            out += "\n" + t.title + ":\n" + tab.render(color);
        }
    }
    out += "\n";
    for (const auto& q : a.queries) out += "query: GET " + q.target() + "\n";
    return out;
}

std::string refusalText(const assistant::CannotAnswer& c) {
    std::string out = "netprobe: cannot answer: " + c.reason + "\nQuestions it answers, for example:\n";
    for (const auto& e : c.examples) out += "  netprobe ask \"" + e + "\"\n";
    return out;
}

nlohmann::json askJson(const std::string& question, const assistant::Intent& intent, const assistant::Answer& answer) {
    auto j = answer.toJson();
    j["question"] = question;
    j["intent"] = intent.toJson();
    return j;
}

nlohmann::json refusalJson(const std::string& question, const assistant::CannotAnswer& c) {
    return {{"question", question}, {"cannot_answer", {{"reason", c.reason}, {"examples", c.examples}}}};
}

std::string completionScript(const std::string& shell) {
    const std::string cmds = "flows connections events interfaces pods intel top requests routes topology bottlenecks qos cost diagnose trace ask mcp completion";
    const std::string global = "--server --user --password-file --ca-file --insecure --timeout --output -o --color --help";
    if (shell == "bash") {
        return "# netprobe bash completion: source <(netprobe completion bash)\n"
               "_netprobe() {\n"
               "  local cur=${COMP_WORDS[COMP_CWORD]} cmd=${COMP_WORDS[1]}\n"
               "  if [[ $COMP_CWORD -eq 1 ]]; then COMPREPLY=($(compgen -W \"" + cmds + " " + global +
               "\" -- \"$cur\")); return; fi\n"
               "  case $cmd in\n"
               "    flows) COMPREPLY=($(compgen -W \"--ip --src-ip --dst-ip --port --src-port --dst-port --protocol "
               "--namespace --pod --container --interface --direction --encap --sort --limit --since --follow --interval "
               "--fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    connections) COMPREPLY=($(compgen -W \"--state --ip --port --pid --container --limit "
               "--fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    events) COMPREPLY=($(compgen -W \"--type --since --limit --follow --interval --fail-if-empty " +
               global + "\" -- \"$cur\")) ;;\n"
               "    top) COMPREPLY=($(compgen -W \"talkers ports endpoints drops retransmits --limit --interval " +
               global + "\" -- \"$cur\")) ;;\n"
               "    requests) COMPREPLY=($(compgen -W \"--protocol --service --side --method --status --min-duration "
               "--limit --fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    routes) COMPREPLY=($(compgen -W \"--protocol --service --side --method --limit --fail-if-empty " +
               global + "\" -- \"$cur\")) ;;\n"
               "    topology) COMPREPLY=($(compgen -W \"--window --group-by --namespace --protocol --limit "
               "--fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    bottlenecks) COMPREPLY=($(compgen -W \"--kind --severity --limit --fail-if-empty " + global +
               "\" -- \"$cur\")) ;;\n"
               "    qos) COMPREPLY=($(compgen -W \"--window --group-by --namespace --services --limit --fail-if-empty " +
               global + "\" -- \"$cur\")) ;;\n"
               "    cost) COMPREPLY=($(compgen -W \"--limit --fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    mcp) COMPREPLY=($(compgen -W \"--listen --max-result-bytes " + global + "\" -- \"$cur\")) ;;\n"
               "    ask) COMPREPLY=($(compgen -W \"--fail-if-empty --llm --llm-endpoint --llm-model --llm-key-file "
               "--llm-ca-file --llm-timeout --llm-max-rounds --llm-max-result-bytes --anonymize " + global +
               "\" -- \"$cur\")) ;;\n"
               "    trace) COMPREPLY=($(compgen -W \"--src --dst --sport --dport --protocol --seconds --id --no-wait "
               "--fail-if-empty " + global + "\" -- \"$cur\")) ;;\n"
               "    completion) COMPREPLY=($(compgen -W \"bash zsh\" -- \"$cur\")) ;;\n"
               "    *) COMPREPLY=($(compgen -W \"" + global + "\" -- \"$cur\")) ;;\n"
               "  esac\n"
               "}\n"
               "complete -F _netprobe netprobe\n";
    }
    return "#compdef netprobe\n# netprobe zsh completion: netprobe completion zsh > \"${fpath[1]}/_netprobe\"\n"
           "_netprobe() {\n"
           "  if (( CURRENT == 2 )); then compadd " + cmds + "; return; fi\n"
           "  case $words[2] in\n"
           "    top) compadd talkers ports endpoints drops retransmits ;;\n"
           "    completion) compadd bash zsh ;;\n"
           "    *) _files ;;\n"
           "  esac\n"
           "}\n"
           "_netprobe \"$@\"\n";
}

ParseResult parse(int argc, const char* const* argv, const std::map<std::string, std::string>& env, bool is_tty) {
    ParseResult out;
    Invocation& inv = out.inv;
    auto envOr = [&](const char* k, const std::string& d) {
        auto it = env.find(k);
        return it != env.end() && !it->second.empty() ? it->second : d;
    };
    inv.conn.server = envOr("NETPROBE_SERVER", inv.conn.server);
    inv.conn.user = envOr("NETPROBE_USER", "");
    inv.conn.password = envOr("NETPROBE_PASSWORD", "");

    CLI::App app{"netprobe: the NetProbe agent's flows, connections, events and top lists from its API.\n"
                 "Exit codes: 0 ok, 1 the agent could not answer, 2 bad arguments, 3 nothing matched "
                 "(--fail-if-empty), 4 diagnose --exit-code found something, 5 ask: a question it cannot answer, "
                 "6 ask with an LLM: figures not in the tool results, 7 the LLM failed, 8 the LLM timed out.",
                 "netprobe"};
    app.require_subcommand(1);
    app.fallthrough();
    std::string output = "table", color = "auto", timeout = "10s", password_file;
    app.add_option("--server", inv.conn.server, "Agent API base URL (env NETPROBE_SERVER)")->capture_default_str();
    app.add_option("--user", inv.conn.user, "Basic auth user (env NETPROBE_USER; password: env NETPROBE_PASSWORD)");
    app.add_option("--password-file", password_file, "Read the basic auth password from this file");
    app.add_option("--ca-file", inv.conn.ca_file, "CA certificate(s) that sign the agent's TLS certificate");
    app.add_flag("--insecure", inv.conn.insecure, "Do not verify the agent's TLS certificate (testing only)");
    app.add_option("--timeout", timeout, "Time the agent has to answer")->capture_default_str();
    app.add_option("-o,--output", output, "table, wide, json or yaml")->capture_default_str();
    app.add_option("--color", color, "auto (on a terminal), always, never")->capture_default_str();

    std::string ip, src_ip, dst_ip, protocol, ns, container, iface, direction, encap, sort = "rate", since, state, type;
    long long port = -1, src_port = -1, dst_port = -1, pid = -1, limit = -1;
    std::string interval = "2s";
    auto* flows = app.add_subcommand("flows", "Flows seen by the agent (GET /api/v1/flows), busiest first");
    flows->add_option("--ip", ip, "Either end's address");
    flows->add_option("--src-ip", src_ip, "Source address");
    flows->add_option("--dst-ip", dst_ip, "Destination address");
    flows->add_option("--port", port, "Either end's port");
    flows->add_option("--src-port", src_port, "Source port");
    flows->add_option("--dst-port", dst_port, "Destination port");
    flows->add_option("--protocol", protocol, "tcp, udp, icmp, icmpv6 or a number");
    flows->add_option("--namespace", ns, "Kubernetes namespace of either end");
    std::string pod;
    flows->add_option("--pod", pod, "Kubernetes pod of either end: NAME or NAMESPACE/NAME");
    flows->add_option("--container", container, "Container id (or prefix) of either end (TCP)");
    flows->add_option("--interface", iface, "Interface");
    flows->add_option("--direction", direction, "ingress or egress");
    flows->add_option("--encap", encap,
                      "Overlay flows carried in this encapsulation (vxlan, geneve, ipip, gre, ...), or none");
    flows->add_option("--sort", sort, "rate, bytes, packets or last_seen")->capture_default_str();
    flows->add_option("--limit", limit, "Flows to show (default 20; with --follow, per poll)");
    flows->add_option("--since", since, "Only flows with a packet within this long (Go duration: 30s, 5m)");
    flows->add_flag("--follow,-f", inv.follow, "Keep printing flows as they see new packets");
    flows->add_option("--interval", interval, "--follow: poll interval")->capture_default_str();
    flows->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when no flow matches");

    auto* conns = app.add_subcommand("connections", "TCP connections (GET /api/v1/connections)");
    conns->add_option("--state", state, "open, closed or all");
    conns->add_option("--ip", ip, "Either end's address");
    conns->add_option("--port", port, "Either end's port");
    conns->add_option("--pid", pid, "Process id (active opens)");
    conns->add_option("--container", container, "Container id or prefix");
    conns->add_option("--limit", limit, "Connections to show (default 20)");
    conns->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when no connection matches");

    auto* events = app.add_subcommand("events", "Security events, newest first (GET /api/v1/events)");
    events->add_option("--type", type, "Event types, comma-separated (port_scan, syn_flood, ...)");
    events->add_option("--since", since, "Events detected within this long (Go duration) or since an RFC 3339 time");
    events->add_option("--limit", limit, "Events to show (default 20)");
    events->add_flag("--follow,-f", inv.follow, "Keep printing new events");
    events->add_option("--interval", interval, "--follow: poll interval")->capture_default_str();
    events->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when there is no event");

    app.add_subcommand("interfaces", "Monitored interfaces and their counters (GET /api/v1/interfaces)");
    app.add_subcommand("pods", "Local pods and their traffic (GET /api/v1/pods; with Kubernetes)");
    app.add_subcommand("intel", "Threat-intel feeds: status, indicators, matched and dropped packets "
                                "(GET /api/v1/intel; agent with --intel-config)");

    std::string topic;
    auto* top = app.add_subcommand("top", "Top talkers, ports, endpoints (by rate), drop reasons, retransmitting connections");
    top->add_option("what", topic, "talkers, ports, endpoints, drops or retransmits")->required();
    top->add_option("--limit", limit, "Rows to show (default 10)");
    top->add_option("--interval", interval, "drops: the sampling window")->capture_default_str();

    std::string service, side, method, status, min_duration;
    auto* requests = app.add_subcommand("requests", "Recent application-layer requests, newest first "
                                                    "(GET /api/v1/l7/requests; agent with --l7=on)");
    auto* routes = app.add_subcommand("routes", "Requests per service, side, method and route over the last minute: "
                                                "rate, errors, latency (GET /api/v1/l7/endpoints)");
    for (auto* sc : {requests, routes}) {
        sc->add_option("--protocol", protocol, "http, http2, grpc, dns, redis, postgres, mysql, kafka or amqp");
        sc->add_option("--service", service, "Server: address:port, or namespace/service with Kubernetes");
        sc->add_option("--side", side, "server (this node answered) or client (this node asked)");
        sc->add_option("--method", method, "HTTP method, or DNS query type");
        sc->add_option("--limit", limit, "Rows to show (default 20)");
        sc->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when nothing matches");
    }
    requests->add_option("--status", status, "Status code (404), class (5xx) or DNS response code (NXDOMAIN)");
    requests->add_option("--min-duration", min_duration, "Only requests that took at least this long (50ms)");

    std::string window = "5m", group_by = "host";
    auto* topo = app.add_subcommand("topology", "The node's service map: who calls whom (client -> server:port) with "
                                                "bytes, connections, requests, errors, latency (GET /api/v1/topology)");
    topo->add_option("--window", window, "Time covered, up to 15m")->capture_default_str();
    topo->add_option("--group-by", group_by, "host, workload, service, namespace, pod, container, process or segment")
        ->capture_default_str();
    topo->add_option("--namespace", ns, "Edges with an end in this Kubernetes namespace");
    topo->add_option("--protocol", protocol, "tcp, udp, or an L7 protocol (http, grpc, ...)");
    topo->add_option("--limit", limit, "Edges to show, busiest first (default 50)");
    topo->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when nothing matches");

    std::string bn_kind, bn_severity;
    auto* bottlenecks = app.add_subcommand("bottlenecks", "Ranked bottleneck findings: saturated links, qdisc drops and "
                                                          "queues, conntrack, socket buffers, listen overflows, "
                                                          "retransmit and RTT hotspots, top talkers "
                                                          "(GET /api/v1/bottlenecks)");
    bottlenecks->add_option("--kind", bn_kind, "Kinds, comma-separated (interface_utilisation, qdisc_drops, ...)");
    bottlenecks->add_option("--severity", bn_severity, "The least severity shown: info, warning or critical");
    bottlenecks->add_option("--limit", limit, "Findings to show (default 20)");
    bottlenecks->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when there is no finding");

    std::string qos_window = "5m", qos_group_by;
    auto* qos = app.add_subcommand("qos", "Quality of service per edge (client -> server:port over TCP): handshake RTT "
                                          "p50/p99, jitter, loss, retransmits, drops, failed connections "
                                          "(GET /api/v1/qos)");
    qos->add_option("--window", qos_window, "Time covered, up to 15m")->capture_default_str();
    qos->add_option("--group-by", qos_group_by,
                    "host, workload, namespace, pod, container, process or service (default workload)");
    qos->add_option("--namespace", ns, "Edges with an end in this Kubernetes namespace");
    qos->add_flag("--services", inv.qos_services, "Per server:port over every client instead of per edge");
    qos->add_option("--limit", limit, "Rows to show, most bytes first (default 50)");
    qos->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when nothing matches");

    auto* cost = app.add_subcommand("cost", "Bytes sent by each local workload by destination class (same node, same "
                                            "zone, cross zone, private, internet) and what they cost at the "
                                            "configured prices (GET /api/v1/cost)");
    cost->add_option("--limit", limit, "Entities to show, costliest first (default 20)");
    cost->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when nothing matches");

    auto* diag = app.add_subcommand("diagnose", "Findings of the agent's diagnosis rules with evidence, cause and fix "
                                                "(GET /api/v1/diagnosis)");
    diag->add_flag("--exit-code", inv.exit_code, "Exit 4 when there is a finding");

    std::vector<std::string> question;
    auto* ask = app.add_subcommand("ask", "Answer a question about the network from the agent's API, offline (an LLM "
                                          "only with --llm-endpoint, for what the offline parser cannot map): "
                                          "\"top talkers in the last 10 minutes\", \"who talks to 10.0.0.7:5432\", "
                                          "\"why is pod shop/cart-1 slow\" (docs/cli.md lists the forms). Shows the figures "
                                          "and the queries it ran; a question it cannot map exits 5 with examples");
    ask->add_option("question", question, "The question (quoted, or as words)")->required();
    ask->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when the answer has no rows");
    // The optional LLM (docs/cli.md, "With an LLM").
    std::string llm_mode = "auto", llm_timeout = "2m", llm_key_file, llm_key_arg;
    long long llm_rounds = -1, llm_result_bytes = -1;
    inv.llm.endpoint = envOr("NETPROBE_LLM_ENDPOINT", "");
    inv.llm.model = envOr("NETPROBE_LLM_MODEL", "");
    ask->add_option("--llm", llm_mode, "auto: the offline parser first, an LLM (--llm-endpoint) for the questions it "
                                       "cannot map; always; never")
        ->capture_default_str();
    ask->add_option("--llm-endpoint", inv.llm.endpoint,
                    "OpenAI-compatible chat-completions server: http://127.0.0.1:8080 (llama.cpp), "
                    "http://127.0.0.1:11434 (Ollama), https://HOST/v1 (env NETPROBE_LLM_ENDPOINT)");
    ask->add_option("--llm-model", inv.llm.model, "The model's name on that server (env NETPROBE_LLM_MODEL)");
    ask->add_option("--llm-key-file", llm_key_file,
                    "Read the server's API key from this file (or env NETPROBE_LLM_KEY; never on the command line)");
    ask->add_option("--llm-key", llm_key_arg, "")->group("");  // refused with a clear message
    ask->add_option("--llm-ca-file", inv.llm.ca_file, "CA certificate(s) of an https endpoint (default: the system's)");
    ask->add_option("--llm-timeout", llm_timeout, "Time the whole LLM answer may take (chat requests and tool calls)")
        ->capture_default_str();
    ask->add_option("--llm-max-rounds", llm_rounds,
                    "Rounds of tool calls the model may make before it must answer (default 8, 1-50)");
    ask->add_option("--llm-max-result-bytes", llm_result_bytes,
                    "Largest tool result sent to the model, as JSON text (default 16384, 1024-1048576)");
    ask->add_flag("--anonymize", inv.llm.anonymize,
                  "Send addresses and pod, namespace, node, workload and Service names to the model as placeholders "
                  "(ip-1, pod-1, ns-1, ...) and restore them in its answer");

    std::vector<std::string> trace_flow;
    std::string trace_src, trace_dst;
    long long trace_sport = -1, trace_dport = -1, trace_seconds = -1, trace_id = -1;
    auto* trace = app.add_subcommand("trace", "Trace a flow's path through the agent's node for N seconds: XDP, TC, the "
                                              "netfilter hooks, the socket and process; per-stage packets, drops with "
                                              "the kernel's reason, the egress device (GET /api/v1/trace)");
    trace->add_option("flow", trace_flow, "[PROTO] SRC[:PORT] DST[:PORT] (or the options below); either direction");
    trace->add_option("--src", trace_src, "Source address");
    trace->add_option("--dst", trace_dst, "Destination address");
    trace->add_option("--sport", trace_sport, "Source port");
    trace->add_option("--dport", trace_dport, "Destination port");
    trace->add_option("--protocol", protocol, "tcp, udp, icmp, icmpv6 or a number");
    trace->add_option("--seconds", trace_seconds, "How long to trace (default 10, at most 300)");
    trace->add_option("--id", trace_id, "Show trace ID (started earlier) instead of starting one");
    trace->add_flag("--no-wait{false}", inv.trace_wait, "Print the new trace's id and return at once");
    trace->add_flag("--fail-if-empty", inv.fail_if_empty, "Exit 3 when no packet matched");

    auto* comp = app.add_subcommand("completion", "Print a shell completion script (bash or zsh)");
    comp->add_option("shell", inv.shell, "bash or zsh")->required();

    long long max_result_bytes = -1;
    auto* mcp = app.add_subcommand("mcp", "Serve the agent's read-only API as Model Context Protocol tools for AI "
                                          "assistants: stdio by default, Streamable HTTP with --listen (docs/mcp.md)");
    mcp->add_option("--listen", inv.mcp_listen, "Serve MCP over HTTP at http://HOST:PORT/mcp (127.0.0.1:8090) "
                                                "instead of stdin/stdout");
    mcp->add_option("--max-result-bytes", max_result_bytes,
                    "Largest tool result (JSON text); larger ones are truncated with a note (default 65536)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp&) {
        out.output = app.help();
        for (auto* s : app.get_subcommands()) {
            if (!s->parsed()) continue;
            out.output = s->help();
            const std::string from = "Usage: " + s->get_name(), to = "Usage: netprobe [GLOBAL OPTIONS] " + s->get_name();
            if (auto p = out.output.find(from); p != std::string::npos) out.output.replace(p, from.size(), to);
            out.output += "\nGlobal options (--server, --user, --ca-file, -o ...): netprobe --help\n";
        }
        return out;
    } catch (const CLI::ParseError& e) {
        out.exit_code = kExitUsage;
        out.output = "netprobe: " + firstLine(e.what()) + " (see --help)";
        return out;
    }
    auto fail = [&](const std::string& m) {
        out.exit_code = kExitUsage;
        out.output = "netprobe: " + m;
        return out;
    };
    if (output == "table") inv.output = Output::Table;
    else if (output == "wide") inv.output = Output::Wide;
    else if (output == "json") inv.output = Output::Json;
    else if (output == "yaml") inv.output = Output::Yaml;
    else return fail("invalid --output \"" + output + "\": expected table, wide, json or yaml");
    if (color == "always") inv.color = true;
    else if (color == "never") inv.color = false;
    else if (color == "auto") inv.color = is_tty && env.find("NO_COLOR") == env.end();
    else return fail("invalid --color \"" + color + "\": expected auto, always or never");
    auto to = util::parseDuration(timeout);
    if (!to || *to < std::chrono::milliseconds(100) || *to > std::chrono::minutes(10))
        return fail("invalid --timeout \"" + timeout + "\": a duration from 100ms to 10m");
    inv.conn.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*to);
    auto iv = util::parseDuration(interval);
    if (!iv || *iv < std::chrono::milliseconds(200) || *iv > std::chrono::hours(1))
        return fail("invalid --interval \"" + interval + "\": a duration from 200ms to 1h");
    inv.interval = std::chrono::duration_cast<std::chrono::milliseconds>(*iv);
    if (!inv.conn.server.starts_with("http://") && !inv.conn.server.starts_with("https://"))
        return fail("invalid --server \"" + inv.conn.server + "\": expected http://HOST:PORT or https://HOST:PORT");
    while (inv.conn.server.ends_with('/')) inv.conn.server.pop_back();
    if (!password_file.empty()) {
        std::ifstream f(password_file);
        if (!f) return fail("--password-file " + password_file + ": cannot be read");
        std::getline(f, inv.conn.password);
    }
    if (limit != -1 && (limit < 1 || limit > 10000)) return fail("invalid --limit " + std::to_string(limit) + ": 1-10000");
    auto setPort = [&](const char* key, long long v) -> bool {
        if (v == -1) return true;
        if (v < 0 || v > 65535) return false;
        inv.query[key] = std::to_string(v);
        return true;
    };

    if (flows->parsed()) {
        inv.kind = Invocation::Kind::Flows;
        inv.path = "/api/v1/flows";
        for (auto [k, v] : {std::pair{"ip", &ip}, {"src_ip", &src_ip}, {"dst_ip", &dst_ip}, {"protocol", &protocol},
                            {"namespace", &ns}, {"container", &container}, {"interface", &iface},
                            {"direction", &direction}, {"encap", &encap}, {"pod", &pod}})
            if (!v->empty()) inv.query[k] = *v;
        if (flows->count("--pod") && (pod.empty() || pod.front() == '/' || pod.back() == '/' ||
                                      std::count(pod.begin(), pod.end(), '/') > 1))
            return fail("invalid --pod \"" + pod + "\": expected NAME or NAMESPACE/NAME");
        if (!setPort("port", port) || !setPort("src_port", src_port) || !setPort("dst_port", dst_port))
            return fail("invalid port: 0-65535");
        if (sort != "rate" && sort != "bytes" && sort != "packets" && sort != "last_seen")
            return fail("invalid --sort \"" + sort + "\": expected rate, bytes, packets or last_seen");
        inv.query["sort"] = inv.follow ? "last_seen" : sort;
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        if (!since.empty()) {
            auto d = util::parseDuration(since);
            if (!d || *d <= std::chrono::nanoseconds(0)) return fail("invalid --since \"" + since + "\": a Go duration (30s, 5m)");
            inv.since = std::chrono::duration_cast<std::chrono::seconds>(*d);
        }
        // The client filters by time (--since) and --follow compares polls: ask for more.
        inv.query["limit"] = std::to_string(inv.since.count() || inv.follow ? 10000 : inv.limit);
    } else if (conns->parsed()) {
        inv.kind = Invocation::Kind::Connections;
        inv.path = "/api/v1/connections";
        if (!state.empty()) {
            if (state != "open" && state != "closed" && state != "all")
                return fail("invalid --state \"" + state + "\": expected open, closed or all");
            inv.query["state"] = state;
        }
        if (!ip.empty()) inv.query["ip"] = ip;
        if (!container.empty()) inv.query["container"] = container;
        if (!setPort("port", port)) return fail("invalid --port: 0-65535");
        if (pid != -1) {
            if (pid < 1 || pid > 4194304) return fail("invalid --pid " + std::to_string(pid));
            inv.query["pid"] = std::to_string(pid);
        }
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (events->parsed()) {
        inv.kind = Invocation::Kind::Events;
        inv.path = "/api/v1/events";
        if (!type.empty()) inv.query["type"] = type;
        if (!since.empty()) {
            if (auto d = util::parseDuration(since); d && *d > std::chrono::nanoseconds(0)) {
                inv.since = std::chrono::duration_cast<std::chrono::seconds>(*d);
            } else if (since.find('T') != std::string::npos) {
                inv.query["since"] = since;  // RFC 3339: the agent checks it
            } else {
                return fail("invalid --since \"" + since + "\": a Go duration (10m) or an RFC 3339 time");
            }
        }
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (app.got_subcommand("interfaces")) {
        inv.kind = Invocation::Kind::Interfaces;
        inv.path = "/api/v1/interfaces";
    } else if (app.got_subcommand("intel")) {
        inv.kind = Invocation::Kind::Intel;
        inv.path = "/api/v1/intel";
    } else if (app.got_subcommand("pods")) {
        inv.kind = Invocation::Kind::Pods;
        inv.path = "/api/v1/pods";
    } else if (top->parsed()) {
        inv.limit = limit == -1 ? 10 : static_cast<std::size_t>(limit);
        if (topic == "talkers" || topic == "ports" || topic == "endpoints") {
            inv.kind = topic == "talkers" ? Invocation::Kind::TopTalkers
                       : topic == "ports" ? Invocation::Kind::TopPorts
                                          : Invocation::Kind::TopEndpoints;
            inv.path = "/api/v1/flows";
            inv.query = {{"sort", "rate"}, {"limit", "10000"}};
        } else if (topic == "drops") {
            inv.kind = Invocation::Kind::TopDrops;
            inv.path = "/metrics";
        } else if (topic == "retransmits") {
            inv.kind = Invocation::Kind::TopRetransmits;
            inv.path = "/api/v1/connections";
            inv.query = {{"state", "all"}, {"limit", "10000"}};
        } else {
            return fail("unknown top list \"" + topic + "\": expected talkers, ports, endpoints, drops or retransmits");
        }
    } else if (requests->parsed() || routes->parsed()) {
        const bool req = requests->parsed();
        inv.kind = req ? Invocation::Kind::Requests : Invocation::Kind::Routes;
        inv.path = req ? "/api/v1/l7/requests" : "/api/v1/l7/endpoints";
        if (!side.empty() && side != "server" && side != "client")
            return fail("invalid --side \"" + side + "\": expected server or client");
        static constexpr std::array<std::string_view, 9> kProtocols = {"http",     "http2", "grpc",  "dns", "redis",
                                                                        "postgres", "mysql", "kafka", "amqp"};
        if (!protocol.empty() && std::find(kProtocols.begin(), kProtocols.end(), protocol) == kProtocols.end())
            return fail("invalid --protocol \"" + protocol +
                        "\": expected http, http2, grpc, dns, redis, postgres, mysql, kafka or amqp");
        for (auto [k, v] : {std::pair{"protocol", &protocol}, {"service", &service}, {"side", &side}, {"method", &method},
                            {"status", &status}})
            if (!v->empty()) inv.query[k] = *v;
        if (!min_duration.empty()) {
            auto d = util::parseDuration(min_duration);
            if (!d) return fail("invalid --min-duration \"" + min_duration + "\": a Go duration (50ms, 1s)");
            inv.query["min_duration"] = min_duration;
        }
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (topo->parsed()) {
        inv.kind = Invocation::Kind::Topology;
        inv.path = "/api/v1/topology";
        if (!util::parseDuration(window)) return fail("invalid --window \"" + window + "\": a Go duration (5m, 30s)");
        inv.query["window"] = window;
        inv.query["group_by"] = group_by;
        if (!ns.empty()) inv.query["namespace"] = ns;
        if (!protocol.empty()) inv.query["protocol"] = protocol;
        inv.limit = limit == -1 ? 50 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (bottlenecks->parsed()) {
        inv.kind = Invocation::Kind::Bottlenecks;
        inv.path = "/api/v1/bottlenecks";
        if (!bn_kind.empty()) inv.query["kind"] = bn_kind;  // the agent checks the names
        if (!bn_severity.empty()) {
            if (bn_severity != "info" && bn_severity != "warning" && bn_severity != "critical")
                return fail("invalid --severity \"" + bn_severity + "\": expected info, warning or critical");
            inv.query["severity"] = bn_severity;
        }
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (qos->parsed()) {
        inv.kind = Invocation::Kind::Qos;
        inv.path = "/api/v1/qos";
        if (auto w = util::parseDuration(qos_window); !w || *w <= std::chrono::seconds(0) || *w > std::chrono::minutes(15))
            return fail("invalid --window \"" + qos_window + "\": a duration up to 15m (5m, 30s)");
        inv.query["window"] = qos_window;
        if (!qos_group_by.empty()) inv.query["group_by"] = qos_group_by;
        if (!ns.empty()) inv.query["namespace"] = ns;
        // the agent's own parameter check (its groupings), said before asking it
        if (auto q = metrics::parseQosQuery({inv.query.begin(), inv.query.end()}); !q) return fail("qos: " + q.error());
        inv.limit = limit == -1 ? 50 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (cost->parsed()) {
        inv.kind = Invocation::Kind::Cost;
        inv.path = "/api/v1/cost";
        inv.limit = limit == -1 ? 20 : static_cast<std::size_t>(limit);
        inv.query["limit"] = std::to_string(inv.limit);
    } else if (diag->parsed()) {
        inv.kind = Invocation::Kind::Diagnose;
        inv.path = "/api/v1/diagnosis";
    } else if (mcp->parsed()) {
        inv.kind = Invocation::Kind::Mcp;
        if (max_result_bytes != -1) {
            if (max_result_bytes < 1024 || max_result_bytes > 16 * 1024 * 1024)
                return fail("invalid --max-result-bytes " + std::to_string(max_result_bytes) + ": 1024-16777216");
            inv.mcp_max_result_bytes = static_cast<std::size_t>(max_result_bytes);
        }
        if (mcp->count("--listen"))
            if (auto l = netprobe::cli::mcp::parseListen(inv.mcp_listen); !l) return fail(l.error().message);
    } else if (ask->parsed()) {
        inv.kind = Invocation::Kind::Ask;
        for (const auto& w : question) inv.question += (inv.question.empty() ? "" : " ") + w;
        if (inv.question.find_first_not_of(" \t") == std::string::npos) return fail("ask: the question is empty");
        auto& l = inv.llm;
        if (ask->count("--llm-key"))
            return fail("ask: an API key is never taken from the command line: use --llm-key-file FILE or env "
                        "NETPROBE_LLM_KEY");
        if (llm_mode == "auto") l.mode = LlmSettings::Mode::Auto;
        else if (llm_mode == "always") l.mode = LlmSettings::Mode::Always;
        else if (llm_mode == "never") l.mode = LlmSettings::Mode::Never;
        else return fail("invalid --llm \"" + llm_mode + "\": expected auto, always or never");
        auto lt = util::parseDuration(llm_timeout);
        if (!lt || *lt < std::chrono::seconds(1) || *lt > std::chrono::hours(1))
            return fail("invalid --llm-timeout \"" + llm_timeout + "\": a duration from 1s to 1h");
        l.timeout = std::chrono::duration_cast<std::chrono::milliseconds>(*lt);
        if (llm_rounds != -1) {
            if (llm_rounds < 1 || llm_rounds > 50) return fail("invalid --llm-max-rounds " + std::to_string(llm_rounds) + ": 1-50");
            l.max_rounds = static_cast<std::size_t>(llm_rounds);
        }
        if (llm_result_bytes != -1) {
            if (llm_result_bytes < 1024 || llm_result_bytes > 1024 * 1024)
                return fail("invalid --llm-max-result-bytes " + std::to_string(llm_result_bytes) + ": 1024-1048576");
            l.max_result_bytes = static_cast<std::size_t>(llm_result_bytes);
        }
        l.key = envOr("NETPROBE_LLM_KEY", "");
        if (!llm_key_file.empty()) {
            std::ifstream f(llm_key_file);
            if (!f) return fail("--llm-key-file " + llm_key_file + ": cannot be read");
            std::getline(f, l.key);
            while (!l.key.empty() && (l.key.back() == '\r' || l.key.back() == ' ' || l.key.back() == '\t')) l.key.pop_back();
            if (l.key.empty()) return fail("--llm-key-file " + llm_key_file + ": the first line is empty");
        }
        if (!l.endpoint.empty())
            if (auto u = llm::parseChatUrl(l.endpoint); !u) return fail(u.error().message);
        if (l.mode == LlmSettings::Mode::Always && l.endpoint.empty())
            return fail("ask --llm=always needs --llm-endpoint (or env NETPROBE_LLM_ENDPOINT)");
    } else if (trace->parsed()) {
        inv.kind = Invocation::Kind::Trace;
        inv.path = "/api/v1/trace";
        if (trace_id != -1) {
            if (trace_id < 1) return fail("invalid --id " + std::to_string(trace_id));
            if (!trace_flow.empty() || !trace_src.empty() || !trace_dst.empty())
                return fail("trace: --id shows a trace; a flow starts one, not both");
            inv.query["id"] = std::to_string(trace_id);
        } else {
            if (!trace_flow.empty()) {
                auto q = parseTraceFlow(trace_flow);
                if (!q) return fail("trace: " + q.error());
                inv.query = std::move(*q);
            }
            if (!trace_src.empty()) inv.query["src"] = trace_src;
            if (!trace_dst.empty()) inv.query["dst"] = trace_dst;
            if (!protocol.empty()) inv.query["proto"] = protocol;
            if ((trace_sport != -1 && (trace_sport < 1 || trace_sport > 65535)) ||
                (trace_dport != -1 && (trace_dport < 1 || trace_dport > 65535)))
                return fail("invalid port: 1-65535");
            if (trace_sport != -1) inv.query["sport"] = std::to_string(trace_sport);
            if (trace_dport != -1) inv.query["dport"] = std::to_string(trace_dport);
            if (trace_seconds != -1) {
                if (trace_seconds < 1 || trace_seconds > 300) return fail("invalid --seconds " + std::to_string(trace_seconds) + ": 1-300");
                inv.query["seconds"] = std::to_string(trace_seconds);
            }
            if (!inv.query.contains("src") && !inv.query.contains("dst"))
                return fail("trace: give a flow ([PROTO] SRC[:PORT] DST[:PORT]), --src/--dst, or --id");
        }
    } else if (comp->parsed()) {
        if (inv.shell != "bash" && inv.shell != "zsh") return fail("completion: expected bash or zsh");
        inv.kind = Invocation::Kind::Completion;
    }
    out.run = true;
    return out;
}

}  // namespace netprobe::cli
