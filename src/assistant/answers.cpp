// Natural-language questions, offline (questions.hpp): the answers. Every figure in an
// answer is a field of the documents the agent returned for the intent's queries, or a
// sum of such fields; the text says what window the figures cover (the one the API
// reports, which is shorter than the one asked for when an endpoint holds less).
#include <netprobe/assistant/questions.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <deque>
#include <map>
#include <set>

#include <netprobe/util/ip.hpp>

namespace netprobe::assistant {

namespace {

using json = nlohmann::json;
using K = Intent::Kind;
using SK = Subject::Kind;
using U = Column::Unit;

// ---- reading documents ---------------------------------------------------------------

// Field access that remembers the first field of the wrong type or missing: the answer
// is then an error, never a figure made up from a default.
class Reader {
public:
    const json& list(const json& o, const char* key) {
        static const json kEmpty = json::array();
        auto it = o.find(key);
        if (it == o.end() || !it->is_array()) return fail(std::string("\"") + key + "\" is not a list"), kEmpty;
        return *it;
    }
    const json& object(const json& o, const char* key) {
        static const json kEmpty = json::object();
        auto it = o.find(key);
        if (it == o.end() || !it->is_object()) return fail(std::string("\"") + key + "\" is not an object"), kEmpty;
        return *it;
    }
    double num(const json& o, const char* key) {
        auto it = o.find(key);
        if (it == o.end() || !it->is_number()) return fail(std::string("\"") + key + "\" is not a number"), 0.0;
        return it->get<double>();
    }
    std::optional<double> optNum(const json& o, const char* key) {
        auto it = o.find(key);
        if (it == o.end() || it->is_null()) return std::nullopt;
        if (!it->is_number()) return fail(std::string("\"") + key + "\" is not a number"), std::nullopt;
        return it->get<double>();
    }
    std::string str(const json& o, const char* key) {
        auto it = o.find(key);
        if (it == o.end() || it->is_null()) return {};
        if (!it->is_string()) return fail(std::string("\"") + key + "\" is not a string"), std::string();
        return it->get<std::string>();
    }
    bool flag(const json& o, const char* key, bool deflt) {
        auto it = o.find(key);
        if (it == o.end()) return deflt;
        if (!it->is_boolean()) return fail(std::string("\"") + key + "\" is not true or false"), deflt;
        return it->get<bool>();
    }
    // The document of an endpoint that can be off: "enabled": false.
    bool enabled(const json& doc) { return flag(doc, "enabled", true); }

    void context(std::string where) { where_ = std::move(where); }
    const std::string& error() const { return error_; }

private:
    void fail(const std::string& what) {
        if (error_.empty()) error_ = "unexpected answer from " + where_ + ": " + what;
    }
    std::string where_;
    std::string error_;
};

// ---- formatting ---------------------------------------------------------------------------

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

std::string bytes(double b) {
    static const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (std::fabs(b) >= 1024 && u < 4) b /= 1024, ++u;
    return u == 0 ? fmt("%.0f B", b) : fmt(b < 10 ? "%.2f " : b < 100 ? "%.1f " : "%.0f ", b) + units[u];
}

std::string count(double n) {
    if (n == std::floor(n) && std::fabs(n) < 1e15) return fmt("%.0f", n);
    return fmt("%.3g", n);
}

// "1 client", "3 clients"
std::string n(double v, const std::string& one, const std::string& many) {
    return count(v) + " " + (v == 1 ? one : many);
}

std::string ms(double v) { return v < 0.1 ? fmt("%.3f ms", v) : v < 10 ? fmt("%.2f ms", v) : fmt("%.1f ms", v); }
std::string pct(double ratio) { return ratio < 0.001 && ratio > 0 ? fmt("%.3f%%", ratio * 100) : fmt("%.1f%%", ratio * 100); }

std::string span(double secs) {
    const auto s = static_cast<std::int64_t>(std::llround(secs));
    if (s < 120) return std::to_string(s) + " s";
    if (s >= 3600 && s % 3600 == 0 && s < 2 * 86400) return std::to_string(s / 3600) + " h";
    if (s < 7200 && s % 60 == 0) return std::to_string(s / 60) + " min";
    if (s < 7200) return fmt("%.1f min", secs / 60);
    if (s < 2 * 86400) return s % 3600 == 0 ? std::to_string(s / 3600) + " h" : fmt("%.1f h", secs / 3600);
    return fmt("%.1f days", secs / 86400);
}

// A unix time in the asker's zone: "14:03:05" today, else "2026-01-05 14:03".
std::string localTime(std::int64_t t, const Intent& in) {
    auto civil = [&](std::int64_t x) {
        std::time_t tt = static_cast<std::time_t>(x + in.utc_offset_seconds);
        std::tm tm{};
        gmtime_r(&tt, &tm);
        return tm;
    };
    const std::tm a = civil(t), now = civil(in.now_unix);
    char b[64];
    if (a.tm_year == now.tm_year && a.tm_yday == now.tm_yday)
        std::snprintf(b, sizeof b, "%02d:%02d:%02d", a.tm_hour, a.tm_min, a.tm_sec);
    else
        std::snprintf(b, sizeof b, "%04d-%02d-%02d %02d:%02d", a.tm_year + 1900, a.tm_mon + 1, a.tm_mday, a.tm_hour, a.tm_min);
    return b;
}

// RFC 3339 as the agent writes it ("2026-01-05T14:03:05.123Z") -> unix seconds.
std::optional<std::int64_t> unixOf(const std::string& s) {
    int Y = 0, M = 0, D = 0, h = 0, m = 0, sec = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d", &Y, &M, &D, &h, &m, &sec) != 6) return std::nullopt;
    std::tm tm{};
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = m;
    tm.tm_sec = sec;
    return static_cast<std::int64_t>(timegm(&tm));
}

// What window the figures cover, against what was asked.
std::string covers(const Intent& in, double covered, const std::string& what) {
    double asked = 0;
    if (in.window.count()) asked = static_cast<double>(in.window.count());
    else if (in.since_unix) asked = static_cast<double>(in.now_unix - *in.since_unix);
    std::string s = "over the last " + span(covered);
    if (asked > covered + 10)
        s += " (all " + what + " holds: you asked for " + span(asked) + ")";
    return s;
}

// For endpoints with a fixed window (diagnosis, bottlenecks, L7, cost): said when the
// question asked for another one.
std::string fixedWindow(const Intent& in, double covered, const std::string& what) {
    double asked = 0;
    if (in.window.count()) asked = static_cast<double>(in.window.count());
    else if (in.since_unix) asked = static_cast<double>(in.now_unix - *in.since_unix);
    std::string s = "over the last " + span(covered);
    if (asked > 0 && std::fabs(asked - covered) > 10)
        s += " (" + what + " covers that window only; you asked for " + span(asked) + ")";
    return s;
}

// ---- subjects against the documents' ends ---------------------------------------------------

// An end of the service map or of the QoS edges: its id under the grouping, its display
// name and addresses (topology nodes), or the id alone (QoS edges).
struct End {
    std::string id, name;
    std::vector<std::string> ips;
};

struct Matcher {
    const Subject* s = nullptr;
    std::set<std::string> host_ips;  // Host: the addresses DNS answers gave the name

    bool end(const End& e) const {
        switch (s->kind) {
            case SK::Address:
            case SK::Endpoint:
                return e.id == s->ip || std::find(e.ips.begin(), e.ips.end(), s->ip) != e.ips.end();
            case SK::Host:
                return e.name == s->name || host_ips.contains(e.id) ||
                       std::any_of(e.ips.begin(), e.ips.end(), [&](const std::string& ip) { return host_ips.contains(ip); });
            case SK::Pod:
            case SK::Workload: return e.id == s->ns + "/" + s->name;
            case SK::Namespace: return e.id == "ns:" + s->ns;
            case SK::Port: return true;
            case SK::Interface:
            case SK::Table: return false;
        }
        return false;
    }
    // The server end of an edge on port/transport.
    bool server(const End& e, double port, const std::string& transport) const {
        if (s->kind == SK::Port)
            return static_cast<std::uint16_t>(port) == s->port && (s->transport.empty() || s->transport == transport);
        if (s->kind == SK::Endpoint && static_cast<std::uint16_t>(port) != s->port) return false;
        return end(e);
    }
    // The client end: a port or an endpoint is a server's.
    bool client(const End& e) const {
        if (s->kind == SK::Port || s->kind == SK::Endpoint) return false;
        return end(e);
    }
    // A finding's or an event's subject text that names this subject.
    bool text(const std::string& t) const {
        if (t.empty()) return false;
        auto has = [&](const std::string& x) { return !x.empty() && t.find(x) != std::string::npos; };
        switch (s->kind) {
            case SK::Address: return has(s->ip);
            case SK::Endpoint: return has(s->text) || has(s->ip);
            case SK::Host: return has(s->name) || std::any_of(host_ips.begin(), host_ips.end(), has);
            case SK::Pod:
            case SK::Workload: return has(s->ns + "/" + s->name);
            case SK::Namespace: return has(s->ns + "/") || t == s->ns;
            case SK::Port: return has(":" + std::to_string(s->port));
            case SK::Interface:
            case SK::Table: return has(s->name);
        }
        return false;
    }
};

// The addresses of Host subjects, from /api/v1/l7/dns/names (when the intent asked for it).
std::vector<Matcher> matchers(const Intent& in, const std::vector<json>& docs, Reader& rd) {
    std::vector<Matcher> out;
    const json* names = nullptr;
    for (std::size_t i = 0; i < in.queries.size(); ++i)
        if (in.queries[i].path == "/api/v1/l7/dns/names") names = &docs[i];
    for (const auto& s : in.subjects) {
        Matcher m;
        m.s = &s;
        if (s.kind == SK::Host && names) {
            rd.context("/api/v1/l7/dns/names");
            for (const auto& n : rd.list(*names, "names"))
                if (rd.str(n, "name") == s.name) m.host_ips.insert(rd.str(n, "address"));
        }
        out.push_back(std::move(m));
    }
    return out;
}

std::string subjectsText(const Intent& in) {
    std::string s;
    for (std::size_t i = 0; i < in.subjects.size(); ++i) s += (i ? " and " : "") + in.subjects[i].text;
    return s;
}

// ---- the answer being built ------------------------------------------------------------------

struct Builder {
    Answer a;
    std::vector<std::string> lines;
    std::deque<Table> tables;  // a deque: the reference table() returns stays valid as more are added
    Table& table(std::string title, std::vector<Column> cols) {
        tables.push_back(Table{std::move(title), std::move(cols), {}});
        return tables.back();
    }
    void line(std::string l) { lines.push_back(std::move(l)); }
    Answer done(const Intent& in) {
        for (const auto& l : lines) a.text += l + "\n";
        a.tables.assign(std::make_move_iterator(tables.begin()), std::make_move_iterator(tables.end()));
        // whole numbers as integers (the API's counters are integers; sums of them too)
        for (auto& t : a.tables)
            for (auto& r : t.rows)
                for (auto& [_, v] : r.items())
                    if (v.is_number_float()) {
                        const double x = v.get<double>();
                        if (x == std::floor(x) && std::fabs(x) < 9007199254740992.0) v = static_cast<std::int64_t>(x);
                    }
        a.queries = in.queries;
        return std::move(a);
    }
};

json orNull(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

// ---- topology ---------------------------------------------------------------------------------

struct TopoEdge {
    End source, target;
    double port = 0;
    std::string transport, protocol;
    double bytes_out = 0, bytes_in = 0, opened = 0, failed = 0, conversations = 0;
    std::optional<double> requests, errors;
};

struct Topo {
    bool enabled = false;
    double window = 0;
    std::map<std::string, json> nodes;
    std::vector<TopoEdge> edges;
};

Topo readTopology(const json& doc, Reader& rd) {
    rd.context("/api/v1/topology");
    Topo t;
    t.enabled = rd.enabled(doc);
    if (!t.enabled) return t;
    t.window = rd.num(doc, "window_seconds");
    for (const auto& n : rd.list(doc, "nodes")) t.nodes[rd.str(n, "id")] = n;
    auto endOf = [&](const std::string& id) {
        End e;
        e.id = id;
        auto it = t.nodes.find(id);
        if (it != t.nodes.end()) {
            e.name = rd.str(it->second, "name");
            if (auto ips = it->second.find("ips"); ips != it->second.end() && ips->is_array())
                for (const auto& ip : *ips)
                    if (ip.is_string()) e.ips.push_back(ip.get<std::string>());
        }
        if (e.name.empty()) e.name = id;
        return e;
    };
    for (const auto& e : rd.list(doc, "edges")) {
        TopoEdge x;
        x.source = endOf(rd.str(e, "source"));
        x.target = endOf(rd.str(e, "target"));
        x.port = rd.num(e, "port");
        x.transport = rd.str(e, "transport");
        x.protocol = rd.str(e, "protocol");
        x.bytes_out = rd.num(e, "bytes_out");
        x.bytes_in = rd.num(e, "bytes_in");
        x.opened = rd.num(e, "connections_opened");
        x.failed = rd.num(e, "connections_failed");
        x.conversations = rd.num(e, "conversations");
        x.requests = rd.optNum(e, "requests");
        x.errors = rd.optNum(e, "errors");
        t.edges.push_back(std::move(x));
    }
    return t;
}

std::string portName(const std::string& transport, double port) {
    return transport + "/" + std::to_string(static_cast<long long>(port));
}

std::string rateText(double b, double window) { return bytes(b) + " (" + bytes(window > 0 ? b / window : 0) + "/s)"; }

void answerTop(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const Topo t = readTopology(docs[0], rd);
    if (!t.enabled) {
        b.line("The agent has no service map (topology stage): no traffic figures to rank.");
        return;
    }
    const std::string win = covers(in, t.window, "the service map");
    const std::string scope = in.subjects.empty() ? "" : " in namespace " + in.subjects[0].ns;
    const double W = t.window;
    switch (in.kind) {
        case K::TopTalkers: {
            struct Pair {
                std::string client, server;
                std::map<std::string, double> ports;  // transport/port -> bytes
                double out = 0, in = 0, conns = 0;
            };
            std::map<std::pair<std::string, std::string>, Pair> pairs;
            for (const auto& e : t.edges) {
                auto& p = pairs[{e.source.id, e.target.id}];
                p.client = e.source.name;
                p.server = e.target.name;
                p.ports[portName(e.transport, e.port)] += e.bytes_out + e.bytes_in;
                p.out += e.bytes_out;
                p.in += e.bytes_in;
                p.conns += e.opened;
            }
            std::vector<const Pair*> v;
            for (const auto& [_, p] : pairs) v.push_back(&p);
            std::stable_sort(v.begin(), v.end(), [](const Pair* x, const Pair* y) { return x->out + x->in > y->out + y->in; });
            auto& tab = b.table("talkers", {{"client", U::Text}, {"server", U::Text}, {"ports", U::Text},
                                            {"bytes_sent", U::Bytes}, {"bytes_received", U::Bytes}, {"bytes", U::Bytes},
                                            {"bytes_per_second", U::BytesPerSecond}, {"connections", U::Count}});
            b.line("Top talkers" + scope + " " + win + ", by bytes both ways (client -> server; " +
                   std::to_string(v.size()) + " pairs in all):");
            for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
                const Pair& p = *v[i];
                // the pair's ports, busiest first: five, then how many more (a scan has hundreds)
                std::vector<std::pair<std::string, double>> pv(p.ports.begin(), p.ports.end());
                std::stable_sort(pv.begin(), pv.end(), [](const auto& x, const auto& y) { return x.second > y.second; });
                std::string ports;
                for (std::size_t k = 0; k < pv.size() && k < 5; ++k) ports += (ports.empty() ? "" : ",") + pv[k].first;
                if (pv.size() > 5) ports += " +" + std::to_string(pv.size() - 5) + " more";
                tab.rows.push_back({{"client", p.client}, {"server", p.server}, {"ports", ports}, {"bytes_sent", p.out},
                                    {"bytes_received", p.in}, {"bytes", p.out + p.in},
                                    {"bytes_per_second", W > 0 ? (p.out + p.in) / W : 0.0}, {"connections", p.conns}});
                b.line("  " + std::to_string(i + 1) + ". " + p.client + " -> " + p.server + " (" + ports + "): " +
                       rateText(p.out + p.in, W) + "; sent " + bytes(p.out) + ", received " + bytes(p.in));
            }
            if (v.empty()) b.line("  no traffic in that window.");
            return;
        }
        case K::TopPorts: {
            struct P {
                std::string name;
                double bytes = 0, conversations = 0;
                std::set<std::string> clients, servers;
            };
            std::map<std::string, P> ports;
            for (const auto& e : t.edges) {
                auto& p = ports[portName(e.transport, e.port)];
                p.name = portName(e.transport, e.port);
                p.bytes += e.bytes_out + e.bytes_in;
                p.conversations += e.conversations;
                p.clients.insert(e.source.id);
                p.servers.insert(e.target.id);
            }
            std::vector<const P*> v;
            for (const auto& [_, p] : ports) v.push_back(&p);
            std::stable_sort(v.begin(), v.end(), [](const P* x, const P* y) { return x->bytes > y->bytes; });
            auto& tab = b.table("ports", {{"port", U::Text}, {"bytes", U::Bytes}, {"bytes_per_second", U::BytesPerSecond},
                                          {"conversations", U::Count}, {"clients", U::Count}, {"servers", U::Count}});
            b.line("Top server ports" + scope + " " + win + ", by bytes both ways (" + std::to_string(v.size()) +
                   " ports in all):");
            for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
                const P& p = *v[i];
                tab.rows.push_back({{"port", p.name}, {"bytes", p.bytes}, {"bytes_per_second", W > 0 ? p.bytes / W : 0.0},
                                    {"conversations", p.conversations}, {"clients", p.clients.size()},
                                    {"servers", p.servers.size()}});
                b.line("  " + std::to_string(i + 1) + ". " + p.name + ": " + rateText(p.bytes, W) + ", " +
                       n(p.conversations, "conversation", "conversations") + ", " +
                       n(static_cast<double>(p.clients.size()), "client", "clients") + ", " +
                       n(static_cast<double>(p.servers.size()), "server", "servers"));
            }
            if (v.empty()) b.line("  no traffic in that window.");
            return;
        }
        case K::TopServices: {
            struct S {
                std::string name;
                double bytes = 0, conversations = 0;
                std::optional<double> requests, errors;
                std::set<std::string> clients;
            };
            std::map<std::string, S> svcs;
            for (const auto& e : t.edges) {
                const std::string key = e.target.name + ":" + std::to_string(static_cast<long long>(e.port)) + "/" +
                                        (e.protocol.empty() ? e.transport : e.protocol);
                auto& s = svcs[key];
                s.name = key;
                s.bytes += e.bytes_out + e.bytes_in;
                s.conversations += e.conversations;
                s.clients.insert(e.source.id);
                if (e.requests) s.requests = s.requests.value_or(0) + *e.requests;
                if (e.errors) s.errors = s.errors.value_or(0) + *e.errors;
            }
            std::vector<const S*> v;
            for (const auto& [_, s] : svcs) v.push_back(&s);
            std::stable_sort(v.begin(), v.end(), [](const S* x, const S* y) { return x->bytes > y->bytes; });
            auto& tab = b.table("services", {{"service", U::Text}, {"bytes", U::Bytes},
                                             {"bytes_per_second", U::BytesPerSecond}, {"clients", U::Count},
                                             {"conversations", U::Count}, {"requests", U::Count}, {"errors", U::Count}});
            b.line("Top services (server:port)" + scope + " " + win + ", by bytes both ways (" +
                   std::to_string(v.size()) + " in all):");
            for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
                const S& s = *v[i];
                tab.rows.push_back({{"service", s.name}, {"bytes", s.bytes}, {"bytes_per_second", W > 0 ? s.bytes / W : 0.0},
                                    {"clients", s.clients.size()}, {"conversations", s.conversations},
                                    {"requests", orNull(s.requests)}, {"errors", orNull(s.errors)}});
                b.line("  " + std::to_string(i + 1) + ". " + s.name + ": " + rateText(s.bytes, W) + " from " +
                       n(static_cast<double>(s.clients.size()), "client", "clients") +
                       (s.requests ? ", " + count(*s.requests) + " requests, " + count(s.errors.value_or(0)) + " errors" : ""));
            }
            if (v.empty()) b.line("  no traffic in that window.");
            return;
        }
        default: break;
    }
    // pods, workloads, namespaces: the map's nodes of that kind
    const std::string kind = in.kind == K::TopPods ? "pod" : in.kind == K::TopWorkloads ? "workload" : "namespace";
    struct N {
        std::string name;
        double sent = 0, received = 0;
    };
    std::vector<N> v;
    std::size_t others = 0;
    for (const auto& [id, n] : t.nodes) {
        if (rd.str(n, "kind") != kind) {
            ++others;
            continue;
        }
        v.push_back({rd.str(n, "name"), rd.num(n, "bytes_sent"), rd.num(n, "bytes_received")});
    }
    std::stable_sort(v.begin(), v.end(), [](const N& x, const N& y) { return x.sent + x.received > y.sent + y.received; });
    auto& tab = b.table(kind + "s", {{kind, U::Text}, {"bytes_sent", U::Bytes}, {"bytes_received", U::Bytes},
                                     {"bytes", U::Bytes}, {"bytes_per_second", U::BytesPerSecond}});
    if (v.empty()) {
        b.line("No " + kind + " carried traffic" + scope + " " + win + ": the agent names no " + kind +
               "s (without Kubernetes every end is an address)" +
               (others ? "; " + std::to_string(others) + " addresses did (ask \"top talkers\")." : "."));
        return;
    }
    b.line("Top " + kind + "s" + scope + " " + win + ", by bytes sent + received (" + std::to_string(v.size()) + " " +
           kind + "s; ends without a " + kind + " name are not ranked):");
    for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
        const N& n = v[i];
        tab.rows.push_back({{kind, n.name}, {"bytes_sent", n.sent}, {"bytes_received", n.received},
                            {"bytes", n.sent + n.received}, {"bytes_per_second", W > 0 ? (n.sent + n.received) / W : 0.0}});
        b.line("  " + std::to_string(i + 1) + ". " + n.name + ": " + rateText(n.sent + n.received, W) + "; sent " +
               bytes(n.sent) + ", received " + bytes(n.received));
    }
}

void answerWhoTalks(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const Topo t = readTopology(docs[0], rd);
    if (!t.enabled) {
        b.line("The agent has no service map (topology stage): it cannot say who talks to whom.");
        return;
    }
    const auto ms_ = matchers(in, docs, rd);
    const Matcher& m = ms_[0];
    const Subject& s = in.subjects[0];
    auto& tab = b.table("edges", {{"client", U::Text}, {"server", U::Text}, {"port", U::Text}, {"bytes_sent", U::Bytes},
                                  {"bytes_received", U::Bytes}, {"connections", U::Count}, {"failed", U::Count},
                                  {"requests", U::Count}, {"errors", U::Count}});
    std::vector<const TopoEdge*> v;
    for (const auto& e : t.edges) {
        const bool as_server = m.server(e.target, e.port, e.transport);
        const bool as_client = m.client(e.source);
        if ((in.direction == Intent::Direction::In && as_server) || (in.direction == Intent::Direction::Out && as_client) ||
            (in.direction == Intent::Direction::Both && (as_server || as_client)))
            v.push_back(&e);
    }
    std::stable_sort(v.begin(), v.end(), [](const TopoEdge* x, const TopoEdge* y) {
        return x->bytes_out + x->bytes_in > y->bytes_out + y->bytes_in;
    });
    std::set<std::string> peers;
    for (const auto* e : v) {
        const bool out = m.client(e->source) && !(in.direction != Intent::Direction::Out && m.server(e->target, e->port, e->transport));
        peers.insert(out ? e->target.id : e->source.id);
    }
    const std::string win = covers(in, t.window, "the service map");
    if (v.empty()) {
        if (in.direction == Intent::Direction::Out)
            b.line(s.text + " talked to nothing " + win + " (" + std::to_string(t.edges.size()) + " edges in the service map).");
        else
            b.line("Nothing talked " + std::string(in.direction == Intent::Direction::In ? "to " : "with ") + s.text + " " +
                   win + " (" + std::to_string(t.edges.size()) + " edges in the service map).");
        if (s.kind == SK::Host)
            b.line("The service map names addresses from the DNS answers the agent saw (--l7=on or name capture); "
                   "ask with the address to be sure.");
        return;
    }
    const double np = static_cast<double>(peers.size());
    if (in.direction == Intent::Direction::Out)
        b.line(s.text + " talked to " + n(np, "server", "servers") + " " + win + ":");
    else if (in.direction == Intent::Direction::In)
        b.line(n(np, "client", "clients") + " talked to " + s.text + " " + win + ":");
    else
        b.line(n(np, "peer", "peers") + " talked with " + s.text + " " + win + ":");
    for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
        const TopoEdge& e = *v[i];
        const std::string port = portName(e.protocol.empty() ? e.transport : e.transport + "/" + e.protocol, e.port);
        tab.rows.push_back({{"client", e.source.name}, {"server", e.target.name}, {"port", port},
                            {"bytes_sent", e.bytes_out}, {"bytes_received", e.bytes_in}, {"connections", e.opened},
                            {"failed", e.failed}, {"requests", orNull(e.requests)}, {"errors", orNull(e.errors)}});
        std::string l = "  " + e.source.name + " -> " + e.target.name + " (" + port + "): sent " + bytes(e.bytes_out) +
                        ", received " + bytes(e.bytes_in);
        if (e.opened || e.failed) l += ", " + count(e.opened) + " connections opened, " + count(e.failed) + " failed";
        if (e.requests) l += ", " + count(*e.requests) + " requests, " + count(e.errors.value_or(0)) + " errors";
        b.line(l);
    }
    if (v.size() > in.limit) b.line("  ... and " + std::to_string(v.size() - in.limit) + " more edges.");
}

// ---- QoS ------------------------------------------------------------------------------------------

struct QosEdge {
    End client, server;
    double port = 0;
    double conversations = 0, bytes_out = 0, bytes_in = 0, opened = 0, failed = 0, handshakes = 0;
    double retrans_client = 0, retrans_server = 0, drops_c2s = 0, drops_s2c = 0, loss_total = 0;
    std::map<std::string, double> drop_reasons;
    std::optional<double> rtt_p50, rtt_p99, rtt_max, jitter, srtt;
    std::string l7_protocol;
    std::optional<double> l7_requests, l7_errors, l7_error_rate, l7_p50, l7_p99;
};

struct Qos {
    bool enabled = false;
    double window = 0;
    std::vector<QosEdge> edges;
};

Qos readQos(const json& doc, Reader& rd) {
    rd.context("/api/v1/qos");
    Qos q;
    q.enabled = rd.enabled(doc);
    if (!q.enabled) return q;
    q.window = rd.num(doc, "window_seconds");
    for (const auto& e : rd.list(doc, "edges")) {
        QosEdge x;
        x.client.id = x.client.name = rd.str(e, "client");
        x.server.id = x.server.name = rd.str(e, "server");
        x.port = rd.num(e, "port");
        x.conversations = rd.num(e, "conversations");
        x.bytes_out = rd.num(e, "bytes_out");
        x.bytes_in = rd.num(e, "bytes_in");
        x.opened = rd.num(e, "connections_opened");
        x.failed = rd.num(e, "connections_failed");
        x.handshakes = rd.num(e, "handshakes");
        x.retrans_client = rd.num(e, "retransmits_client");
        x.retrans_server = rd.num(e, "retransmits_server");
        const json& drops = rd.object(e, "drops");
        x.drops_c2s = rd.num(drops, "client_to_server");
        x.drops_s2c = rd.num(drops, "server_to_client");
        for (const auto& [reason, n] : rd.object(drops, "by_reason").items())
            if (n.is_number()) x.drop_reasons[reason] = n.get<double>();
        x.loss_total = rd.num(rd.object(e, "loss_ratio"), "total");
        if (auto it = e.find("rtt_ms"); it != e.end()) {
            x.rtt_p50 = rd.num(*it, "p50");
            x.rtt_p99 = rd.num(*it, "p99");
            x.rtt_max = rd.num(*it, "max");
        }
        x.jitter = rd.optNum(e, "jitter_ms");
        x.srtt = rd.optNum(e, "srtt_ms");
        if (auto it = e.find("l7"); it != e.end()) {
            x.l7_protocol = rd.str(*it, "protocol");
            x.l7_requests = rd.num(*it, "requests");
            x.l7_errors = rd.num(*it, "errors");
            x.l7_error_rate = rd.num(*it, "error_rate");
            x.l7_p50 = rd.num(*it, "p50_seconds");
            x.l7_p99 = rd.num(*it, "p99_seconds");
        }
        q.edges.push_back(std::move(x));
    }
    return q;
}

std::string edgeName(const QosEdge& e) {
    return e.client.name + " -> " + e.server.name + ":" + std::to_string(static_cast<long long>(e.port));
}

// The edges the subjects select: between the two (either way round), of the one (either
// end), or every edge.
std::vector<const QosEdge*> selectEdges(const Qos& q, const std::vector<Matcher>& ms) {
    std::vector<const QosEdge*> v;
    for (const auto& e : q.edges) {
        bool keep = true;
        if (ms.size() == 2) {
            keep = (ms[0].client(e.client) && ms[1].server(e.server, e.port, "tcp")) ||
                   (ms[1].client(e.client) && ms[0].server(e.server, e.port, "tcp"));
        } else if (ms.size() == 1) {
            keep = ms[0].client(e.client) || ms[0].server(e.server, e.port, "tcp");
        }
        if (keep) v.push_back(&e);
    }
    return v;
}

std::string reasonsText(const std::map<std::string, double>& r) {
    std::vector<std::pair<std::string, double>> v(r.begin(), r.end());
    std::stable_sort(v.begin(), v.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::string s;
    for (const auto& [k, n] : v) s += (s.empty() ? "" : ", ") + k + " " + count(n);
    return s;
}

const char* qosOff = "The agent runs without the QoS stage (--qos=off): no RTT, loss or drop figures per edge.";

void l7Lines(const Intent& in, const json& doc, const std::vector<Matcher>& mats, Reader& rd, Builder& b, bool errors_only) {
    rd.context("/api/v1/l7/endpoints");
    if (!rd.enabled(doc)) {
        b.line("Application-layer figures: the agent runs without --l7=on.");
        return;
    }
    const double win = rd.num(doc, "window_seconds");
    auto& tab = b.table("routes", {{"service", U::Text}, {"side", U::Text}, {"method", U::Text}, {"route", U::Text},
                                   {"requests", U::Count}, {"errors", U::Count}, {"error_rate", U::Ratio},
                                   {"p50_seconds", U::Seconds}, {"p99_seconds", U::Seconds}});
    std::vector<json> rows;
    for (const auto& e : rd.list(doc, "endpoints")) {
        const std::string svc = rd.str(e, "service");
        if (!mats.empty() && std::none_of(mats.begin(), mats.end(), [&](const Matcher& m) {
                const Subject& s = *m.s;
                if (s.kind == SK::Endpoint) return svc == s.text;
                if (s.kind == SK::Address) return svc.starts_with(s.ip.find(':') != std::string::npos ? "[" + s.ip + "]:" : s.ip + ":");
                if (s.kind == SK::Port) return svc.ends_with(":" + std::to_string(s.port));
                return m.text(svc);
            }))
            continue;
        const double errors = rd.num(e, "errors");
        if (errors_only && errors == 0) continue;
        rows.push_back({{"service", svc}, {"side", rd.str(e, "side")}, {"method", rd.str(e, "method")},
                        {"route", rd.str(e, "route")}, {"requests", rd.num(e, "requests")}, {"errors", errors},
                        {"error_rate", rd.num(e, "error_rate")}, {"p50_seconds", rd.num(e, "p50_seconds")},
                        {"p99_seconds", rd.num(e, "p99_seconds")}});
    }
    std::stable_sort(rows.begin(), rows.end(), [&](const json& x, const json& y) {
        return errors_only ? x["errors"].get<double>() > y["errors"].get<double>()
                           : x["p99_seconds"].get<double>() > y["p99_seconds"].get<double>();
    });
    if (rows.empty()) {
        b.line(std::string("Application-layer requests ") + (errors_only ? "with errors " : "") +
               (mats.empty() ? "" : "of " + subjectsText(in) + " ") + fixedWindow(in, win, "the L7 view") + ": none.");
        return;
    }
    b.line(std::string("Application-layer routes ") + (errors_only ? "with errors " : "") +
           fixedWindow(in, win, "the L7 view") + ":");
    for (std::size_t i = 0; i < rows.size() && i < in.limit; ++i) {
        const json& r = rows[i];
        b.line("  " + r["service"].get<std::string>() + " (" + r["side"].get<std::string>() + ") " +
               r["method"].get<std::string>() + " " + r["route"].get<std::string>() + ": " +
               count(r["requests"].get<double>()) + " requests, " + count(r["errors"].get<double>()) + " errors (" +
               pct(r["error_rate"].get<double>()) + "), p50 " + ms(r["p50_seconds"].get<double>() * 1000) + ", p99 " +
               ms(r["p99_seconds"].get<double>() * 1000));
        tab.rows.push_back(r);
    }
}

void answerQuality(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const Qos q = readQos(docs[0], rd);
    const auto ms_ = matchers(in, docs, rd);
    if (!q.enabled) {
        b.line(qosOff);
        return;
    }
    const bool lat = in.kind == K::Latency, err = in.kind == K::Errors || in.also_errors;
    auto v = selectEdges(q, ms_);
    const std::string win = covers(in, q.window, "the QoS view");
    const std::string what = lat && err ? "Latency and errors" : lat ? "Latency" : "Errors";
    const std::string of = in.subjects.size() == 2   ? " between " + in.subjects[0].text + " and " + in.subjects[1].text
                           : in.subjects.size() == 1 ? " of " + in.subjects[0].text
                                                     : "";
    if (in.subjects.empty()) {
        // a ranking: by RTT, or by failures
        if (lat) {
            std::erase_if(v, [](const QosEdge* e) { return !e->rtt_p50 && !e->l7_p99 && !e->srtt; });
            std::stable_sort(v.begin(), v.end(), [](const QosEdge* x, const QosEdge* y) {
                auto key = [](const QosEdge* e) { return std::max({e->rtt_p50.value_or(0), e->srtt.value_or(0), e->l7_p99.value_or(0) * 1000}); };
                return key(x) > key(y);
            });
        } else {
            // failures of the traffic itself (drops are listed, not ranked: a socket closed with
            // data queued drops it as QUEUE_PURGE in normal operation)
            auto bad = [](const QosEdge* e) {
                return e->failed + e->retrans_client + e->retrans_server + e->l7_errors.value_or(0);
            };
            std::erase_if(v, [&](const QosEdge* e) { return bad(e) == 0; });
            std::stable_sort(v.begin(), v.end(), [&](const QosEdge* x, const QosEdge* y) { return bad(x) > bad(y); });
        }
    }
    std::vector<Column> cols = {{"client", U::Text}, {"server", U::Text}, {"port", U::Count}};
    if (lat)
        for (Column c : std::initializer_list<Column>{{"handshakes", U::Count}, {"rtt_p50_ms", U::Milliseconds},
                                                      {"rtt_p99_ms", U::Milliseconds}, {"jitter_ms", U::Milliseconds},
                                                      {"srtt_ms", U::Milliseconds}})
            cols.push_back(c);
    if (err)
        for (Column c : std::initializer_list<Column>{{"connections", U::Count}, {"failed", U::Count},
                                                      {"retransmits", U::Count}, {"loss_ratio", U::Ratio},
                                                      {"drops", U::Count}})
            cols.push_back(c);
    for (Column c : std::initializer_list<Column>{{"l7_protocol", U::Text}, {"requests", U::Count}, {"errors", U::Count},
                                                  {"l7_p50_seconds", U::Seconds}, {"l7_p99_seconds", U::Seconds}})
        cols.push_back(c);
    auto& tab = b.table("edges", cols);
    if (v.empty()) {
        if (in.subjects.empty())
            b.line(lat ? "No TCP edge has an RTT figure " + win + "."
                       : "No TCP edge has a failed connection, a retransmission or an application error " + win + ".");
        else
            b.line("No TCP conversation" + of + " " + win + " (the QoS view has " + std::to_string(q.edges.size()) +
                   " edges: client -> server:port).");
    } else {
        b.line(what + of + " " + win + (in.subjects.empty() ? ", worst first" : "") + ":");
    }
    for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
        const QosEdge& e = *v[i];
        json row = {{"client", e.client.name}, {"server", e.server.name}, {"port", e.port}};
        std::string l = "  " + edgeName(e) + ": ";
        std::vector<std::string> parts;
        if (lat) {
            row["handshakes"] = e.handshakes;
            row["rtt_p50_ms"] = orNull(e.rtt_p50);
            row["rtt_p99_ms"] = orNull(e.rtt_p99);
            row["jitter_ms"] = orNull(e.jitter);
            row["srtt_ms"] = orNull(e.srtt);
            if (e.rtt_p50)
                parts.push_back("handshake RTT p50 " + ms(*e.rtt_p50) + ", p99 " + ms(*e.rtt_p99) + " (" +
                                count(e.handshakes) + " handshakes)");
            else
                parts.push_back("no handshake timed in the window");
            if (e.jitter) parts.push_back("jitter " + ms(*e.jitter));
            if (e.srtt) parts.push_back("sockets' smoothed RTT " + ms(*e.srtt));
        }
        if (err) {
            row["connections"] = e.opened;
            row["failed"] = e.failed;
            row["retransmits"] = e.retrans_client + e.retrans_server;
            row["loss_ratio"] = e.loss_total;
            row["drops"] = e.drops_c2s + e.drops_s2c;
            parts.push_back(count(e.failed) + " of " + count(e.opened) + " connections failed");
            parts.push_back(count(e.retrans_client + e.retrans_server) + " segments retransmitted (loss " + pct(e.loss_total) + ")");
            if (e.drops_c2s + e.drops_s2c > 0)
                parts.push_back(count(e.drops_c2s + e.drops_s2c) + " packets dropped (" + reasonsText(e.drop_reasons) + ")");
        }
        row["l7_protocol"] = e.l7_protocol.empty() ? json(nullptr) : json(e.l7_protocol);
        row["requests"] = orNull(e.l7_requests);
        row["errors"] = orNull(e.l7_errors);
        row["l7_p50_seconds"] = orNull(e.l7_p50);
        row["l7_p99_seconds"] = orNull(e.l7_p99);
        if (e.l7_requests) {
            std::string p = e.l7_protocol + " " + count(*e.l7_requests) + " requests";
            if (lat) p += ", p50 " + ms(*e.l7_p50 * 1000) + ", p99 " + ms(*e.l7_p99 * 1000);
            if (err || *e.l7_errors > 0) p += ", " + count(*e.l7_errors) + " errors (" + pct(*e.l7_error_rate) + ")";
            parts.push_back(p);
        }
        for (std::size_t k = 0; k < parts.size(); ++k) l += (k ? "; " : "") + parts[k];
        b.line(l);
        tab.rows.push_back(std::move(row));
    }
    if (v.size() > in.limit) b.line("  ... and " + std::to_string(v.size() - in.limit) + " more edges.");
    if (err) {
        for (std::size_t i = 0; i < in.queries.size(); ++i)
            if (in.queries[i].path == "/api/v1/l7/endpoints") l7Lines(in, docs[i], ms_, rd, b, true);
    }
}

// ---- findings (diagnosis, bottlenecks) -----------------------------------------------------------

struct Finding {
    std::string source;  // diagnosis, bottleneck
    std::string rule, subject, severity, title, evidence;
    std::optional<std::int64_t> since;
};

std::string evidenceText(const json& arr, Reader& rd) {
    std::string s;
    for (const auto& e : arr) {
        if (!s.empty()) s += ", ";
        s += rd.str(e, "name") + " " + count(rd.num(e, "value")) + " " + rd.str(e, "unit");
    }
    return s;
}

std::pair<bool, double> readFindings(const json& doc, bool bottleneck, Reader& rd, std::vector<Finding>& out) {
    rd.context(bottleneck ? "/api/v1/bottlenecks" : "/api/v1/diagnosis");
    if (!rd.enabled(doc)) return {false, 0};
    double win = 0;
    if (auto w = rd.optNum(doc, "window_seconds")) win = *w;
    for (const auto& f : rd.list(doc, "findings")) {
        Finding x;
        x.source = bottleneck ? "bottleneck" : "diagnosis";
        x.rule = rd.str(f, bottleneck ? "kind" : "rule");
        x.subject = rd.str(f, "subject");
        x.severity = rd.str(f, "severity");
        x.title = rd.str(f, "title");
        x.evidence = evidenceText(rd.list(f, "evidence"), rd);
        x.since = unixOf(rd.str(f, "since"));
        out.push_back(std::move(x));
    }
    return {true, win};
}

Table& findingsTable(Builder& b, const std::string& title) {
    return b.table(title, {{"source", U::Text}, {"rule", U::Text}, {"severity", U::Text}, {"subject", U::Text},
                           {"title", U::Text}, {"evidence", U::Text}, {"since", U::Text}});
}

json findingRow(const Finding& f, const Intent& in) {
    return {{"source", f.source}, {"rule", f.rule},  {"severity", f.severity}, {"subject", f.subject},
            {"title", f.title},   {"evidence", f.evidence}, {"since", f.since ? localTime(*f.since, in) : std::string()}};
}

std::string findingLine(const Finding& f, const Intent& in) {
    std::string sev = f.severity;
    for (auto& c : sev) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    return "  " + sev + " " + f.rule + " " + f.subject + ": " + f.title + (f.evidence.empty() ? "" : " [" + f.evidence + "]") +
           (f.since ? " (since " + localTime(*f.since, in) + ")" : "");
}

void answerDiagnosis(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    std::vector<Finding> fs;
    const auto [d_on, d_win] = readFindings(docs[0], false, rd, fs);
    const auto [b_on, b_win] = readFindings(docs[1], true, rd, fs);
    if (!d_on) b.line("The diagnosis has not evaluated yet (the agent just started).");
    if (!b_on) b.line("The agent has no bottleneck view.");
    auto& tab = findingsTable(b, "findings");
    if (fs.empty()) {
        b.line("No findings " + fixedWindow(in, std::max(d_win, b_win), "the diagnosis") +
               ": no rule of the diagnosis fired and no bottleneck of warning severity or above.");
        return;
    }
    b.line(std::to_string(fs.size()) + " finding" + (fs.size() == 1 ? "" : "s") + " " +
           fixedWindow(in, std::max(d_win, b_win), "the diagnosis") + ":");
    for (const auto& f : fs) {
        b.line(findingLine(f, in));
        tab.rows.push_back(findingRow(f, in));
    }
    b.line("(netprobe diagnose shows each finding's cause and fix.)");
}

void answerWhySlow(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    std::vector<Finding> fs;
    const auto [d_on, d_win] = readFindings(docs[0], false, rd, fs);
    const auto [b_on, b_win] = readFindings(docs[1], true, rd, fs);
    (void)d_on;
    (void)b_on;
    const double fwin = std::max(d_win, b_win);
    if (in.subjects.empty()) {
        // the node as a whole
        std::erase_if(fs, [](const Finding& f) { return f.severity == "info"; });
        auto& tab = findingsTable(b, "findings");
        if (fs.empty()) {
            b.line("No finding on this node over the last " + span(fwin) +
                   ": no drop, queue, overflow, retransmit or RTT hotspot crossed a threshold of the diagnosis or the "
                   "bottleneck view.");
            return;
        }
        b.line("What NetProbe finds on this node over the last " + span(fwin) + ":");
        for (const auto& f : fs) {
            b.line(findingLine(f, in));
            tab.rows.push_back(findingRow(f, in));
        }
        return;
    }
    const Qos q = readQos(docs[2], rd);
    const auto ms_ = matchers(in, docs, rd);
    const Matcher& m = ms_[0];
    const Subject& s = in.subjects[0];
    // the subject's own figures: as a server and as a client
    if (!q.enabled) {
        b.line(qosOff);
    } else {
        const std::string win = covers(in, q.window, "the QoS view");
        auto& tab = b.table("edges", {{"role", U::Text}, {"client", U::Text}, {"server", U::Text}, {"port", U::Count},
                                      {"handshakes", U::Count}, {"rtt_p50_ms", U::Milliseconds},
                                      {"rtt_p99_ms", U::Milliseconds}, {"srtt_ms", U::Milliseconds},
                                      {"retransmits", U::Count}, {"loss_ratio", U::Ratio}, {"failed", U::Count},
                                      {"drops", U::Count}, {"l7_p99_seconds", U::Seconds}, {"errors", U::Count}});
        std::size_t n = 0;
        for (const auto& e : q.edges) {
            const bool srv = m.server(e.server, e.port, "tcp"), cli = m.client(e.client);
            if (!srv && !cli) continue;
            if (n++ == 0) b.line("What NetProbe sees of " + s.text + " " + win + ":");
            std::string l = "  " + std::string(srv ? "as the server: " : "as a client: ") + edgeName(e) + ": ";
            l += e.rtt_p50 ? "handshake RTT p50 " + ms(*e.rtt_p50) + ", p99 " + ms(*e.rtt_p99) : std::string("no handshake timed");
            if (e.srtt) l += ", smoothed RTT " + ms(*e.srtt);
            l += ", " + count(e.retrans_client + e.retrans_server) + " retransmits (loss " + pct(e.loss_total) + "), " +
                 count(e.failed) + " of " + count(e.opened) + " connections failed";
            if (e.drops_c2s + e.drops_s2c > 0) l += ", " + count(e.drops_c2s + e.drops_s2c) + " drops (" + reasonsText(e.drop_reasons) + ")";
            if (e.l7_requests)
                l += ", " + e.l7_protocol + " p99 " + ms(*e.l7_p99 * 1000) + ", " + count(*e.l7_errors) + " errors of " +
                     count(*e.l7_requests);
            if (n <= in.limit) {
                b.line(l);
                tab.rows.push_back({{"role", srv ? "server" : "client"}, {"client", e.client.name}, {"server", e.server.name},
                                    {"port", e.port}, {"handshakes", e.handshakes}, {"rtt_p50_ms", orNull(e.rtt_p50)},
                                    {"rtt_p99_ms", orNull(e.rtt_p99)}, {"srtt_ms", orNull(e.srtt)},
                                    {"retransmits", e.retrans_client + e.retrans_server}, {"loss_ratio", e.loss_total},
                                    {"failed", e.failed}, {"drops", e.drops_c2s + e.drops_s2c},
                                    {"l7_p99_seconds", orNull(e.l7_p99)}, {"errors", orNull(e.l7_errors)}});
            }
        }
        if (n > in.limit) b.line("  ... and " + std::to_string(n - in.limit) + " more edges.");
        if (n == 0) b.line("NetProbe has no TCP conversation of " + s.text + " " + win + ": nothing to measure.");
    }
    for (std::size_t i = 0; i < in.queries.size(); ++i)
        if (in.queries[i].path == "/api/v1/l7/endpoints") {
            rd.context("/api/v1/l7/endpoints");
            if (rd.enabled(docs[i])) l7Lines(in, docs[i], ms_, rd, b, false);
        }
    std::vector<Finding> mine, node;
    for (const auto& f : fs) {
        if (m.text(f.subject)) mine.push_back(f);
        else if (f.severity != "info") node.push_back(f);
    }
    auto& tab = findingsTable(b, "findings");
    if (mine.empty())
        b.line("No finding names " + s.text + " (diagnosis and bottlenecks, last " + span(fwin) + ").");
    else
        b.line("Findings that name " + s.text + " (last " + span(fwin) + "):");
    for (const auto& f : mine) {
        b.line(findingLine(f, in));
        tab.rows.push_back(findingRow(f, in));
    }
    if (!node.empty()) {
        b.line("Findings on this node that can slow any traffic (last " + span(fwin) + "):");
        for (const auto& f : node) {
            b.line(findingLine(f, in));
            tab.rows.push_back(findingRow(f, in));
        }
    } else if (mine.empty()) {
        b.line("No finding on this node either: NetProbe's figures above are all it has to explain it.");
    }
}

// ---- drops ------------------------------------------------------------------------------------------

void diagnosisDrops(const Intent& in, const json& doc, Reader& rd, Builder& b) {
    std::vector<Finding> fs;
    const auto [on, win] = readFindings(doc, false, rd, fs);
    if (!on) return;
    std::erase_if(fs, [](const Finding& f) { return f.rule != "packet_drops"; });
    if (fs.empty()) {
        b.line("The diagnosis reports no drop reason above its threshold (20 drops in the last " + span(win) + ").");
        return;
    }
    auto& tab = findingsTable(b, "drop findings");
    b.line("Drop findings of the diagnosis (last " + span(win) + "):");
    for (const auto& f : fs) {
        b.line(findingLine(f, in));
        tab.rows.push_back(findingRow(f, in));
    }
}

void answerDrops(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const Qos q = readQos(docs[0], rd);
    const auto ms_ = matchers(in, docs, rd);
    if (!q.enabled) {
        b.line(qosOff);
    } else {
        auto v = selectEdges(q, ms_);
        std::erase_if(v, [](const QosEdge* e) { return e->drops_c2s + e->drops_s2c == 0; });
        std::stable_sort(v.begin(), v.end(), [](const QosEdge* x, const QosEdge* y) {
            return x->drops_c2s + x->drops_s2c > y->drops_c2s + y->drops_s2c;
        });
        const std::string win = covers(in, q.window, "the QoS view");
        std::map<std::string, double> reasons;
        double total = 0;
        for (const auto* e : v) {
            total += e->drops_c2s + e->drops_s2c;
            for (const auto& [r, n] : e->drop_reasons) reasons[r] += n;
        }
        auto& tab = b.table("edges", {{"client", U::Text}, {"server", U::Text}, {"port", U::Count},
                                      {"drops_client_to_server", U::Count}, {"drops_server_to_client", U::Count},
                                      {"reasons", U::Text}});
        const std::string of = in.subjects.empty() ? "" : " of " + subjectsText(in);
        if (v.empty()) {
            b.line("No packet of a TCP edge" + of + " was dropped " + win + ".");
        } else {
            b.line(count(total) + " packets" + of + " dropped " + win + " on " + std::to_string(v.size()) +
                   " edges; by reason: " + reasonsText(reasons) + ".");
            for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
                const QosEdge& e = *v[i];
                b.line("  " + edgeName(e) + ": " + count(e.drops_c2s) + " client -> server, " + count(e.drops_s2c) +
                       " server -> client (" + reasonsText(e.drop_reasons) + ")");
                tab.rows.push_back({{"client", e.client.name}, {"server", e.server.name}, {"port", e.port},
                                    {"drops_client_to_server", e.drops_c2s}, {"drops_server_to_client", e.drops_s2c},
                                    {"reasons", reasonsText(e.drop_reasons)}});
            }
        }
        b.line("(Drops the kernel reported with a flow: packets with an IP header, in the namespaces the socket monitor watches.)");
    }
    diagnosisDrops(in, docs[1], rd, b);
}

void answerPodDrops(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const Qos q = readQos(docs[0], rd);
    const std::string kind = in.group_by;
    if (!q.enabled) {
        b.line(qosOff);
    } else {
        struct P {
            double drops = 0, as_client = 0, as_server = 0;
            std::map<std::string, double> reasons;
            std::size_t edges = 0;
        };
        std::map<std::string, P> per;
        double unnamed = 0;
        auto named = [&](const std::string& id) {
            if (util::parseAddr(id)) return false;
            return kind == "namespace" ? id.starts_with("ns:") : id.find('/') != std::string::npos;
        };
        for (const auto& e : q.edges) {
            const double d = e.drops_c2s + e.drops_s2c;
            if (d == 0) continue;
            bool any_named = false;
            for (const auto& [id, client] : {std::pair{e.client.id, true}, std::pair{e.server.id, false}}) {
                if (!named(id)) continue;
                any_named = true;
                auto& p = per[kind == "namespace" ? id.substr(3) : id];
                p.drops += d;
                (client ? p.as_client : p.as_server) += d;
                for (const auto& [r, n] : e.drop_reasons) p.reasons[r] += n;
                ++p.edges;
            }
            if (!any_named) unnamed += d;
        }
        std::vector<std::pair<std::string, const P*>> v;
        for (const auto& [k, p] : per) v.emplace_back(k, &p);
        std::stable_sort(v.begin(), v.end(), [](const auto& x, const auto& y) { return x.second->drops > y.second->drops; });
        const std::string win = covers(in, q.window, "the QoS view");
        auto& tab = b.table(kind + "s", {{kind, U::Text}, {"drops", U::Count}, {"as_client", U::Count},
                                         {"as_server", U::Count}, {"edges", U::Count}, {"reasons", U::Text}});
        if (v.empty())
            b.line("No " + kind + "'s traffic had a packet dropped " + win + ".");
        else
            b.line(std::to_string(v.size()) + " " + kind + (v.size() == 1 ? "" : "s") + " had packets dropped " + win +
                   " (drops on the TCP edges they are an end of):");
        for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
            const auto& [name, p] = v[i];
            b.line("  " + name + ": " + count(p->drops) + " packets (" + reasonsText(p->reasons) + "), " +
                   count(p->as_client) + " as a client, " + count(p->as_server) + " as a server");
            tab.rows.push_back({{kind, name}, {"drops", p->drops}, {"as_client", p->as_client}, {"as_server", p->as_server},
                                {"edges", p->edges}, {"reasons", reasonsText(p->reasons)}});
        }
        if (unnamed > 0)
            b.line(count(unnamed) + " dropped packets were of traffic between ends without a " + kind +
                   " name (ask \"what is dropping packets\").");
    }
    diagnosisDrops(in, docs[1], rd, b);
}

// The diagnosis's interface_errors findings: the interfaces' own error and drop counters
// (ring overflows, CRC, carrier, tx drops of a veth whose peer is down, ...).
void diagnosisInterfaceErrors(const Intent& in, const json& doc, Reader& rd, Builder& b) {
    std::vector<Finding> fs;
    const auto [on, win] = readFindings(doc, false, rd, fs);
    if (!on) return;
    std::erase_if(fs, [&](const Finding& f) {
        return f.rule != "interface_errors" || (!in.subjects.empty() && f.subject != in.subjects[0].name);
    });
    if (fs.empty()) {
        b.line("No interface's own error or drop counters grew over their threshold in the last " + span(win) +
               " (10 errors or 20 drops of one counter).");
        return;
    }
    auto& tab = findingsTable(b, "interface counters");
    b.line("Interfaces whose own error or drop counters grew (last " + span(win) + "):");
    for (const auto& f : fs) {
        b.line(findingLine(f, in));
        tab.rows.push_back(findingRow(f, in));
    }
}

void answerInterfaceDrops(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    std::vector<Finding> fs;
    const auto [on, win] = readFindings(docs[0], true, rd, fs);
    if (!on) {
        b.line("The agent has no bottleneck view: no qdisc statistics.");
    } else {
        if (!in.subjects.empty()) std::erase_if(fs, [&](const Finding& f) { return f.subject != in.subjects[0].name; });
        auto& tab = findingsTable(b, "interfaces");
        if (fs.empty()) {
            b.line("No interface" + (in.subjects.empty() ? std::string() : " (" + in.subjects[0].text + ")") +
                   " dropped packets in its queueing discipline or held a standing queue over the last " + span(win) +
                   " (thresholds: 100 qdisc drops; 64 KiB or 100 packets of backlog).");
        } else {
            b.line("Interfaces whose queues dropped or held packets (last " + span(win) + "):");
            for (const auto& f : fs) {
                b.line(findingLine(f, in));
                tab.rows.push_back(findingRow(f, in));
            }
        }
    }
    diagnosisInterfaceErrors(in, docs[1], rd, b);
    diagnosisDrops(in, docs[1], rd, b);
}

// ---- security events ---------------------------------------------------------------------------------

void answerEvents(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    rd.context("/api/v1/events");
    const json& doc = docs[0];
    if (!rd.enabled(doc)) {
        b.line("The agent runs without security analytics (--security=off): no scan or attack detection.");
        return;
    }
    const auto ms_ = matchers(in, docs, rd);
    auto& tab = b.table("events", {{"type", U::Text}, {"severity", U::Text}, {"source", U::Text}, {"target", U::Text},
                                   {"targets", U::Count}, {"detected", U::Text}, {"last_seen", U::Text},
                                   {"active", U::Text}, {"evidence", U::Text}});
    std::size_t active = 0, ended = 0;
    std::vector<json> rows;
    for (const auto& e : rd.list(doc, "events")) {
        const std::string src = rd.str(e, "src_ip"), dst = rd.str(e, "dst_ip");
        std::vector<std::string> targets;
        for (const auto& t : rd.list(e, "targets"))
            if (t.is_string()) targets.push_back(t.get<std::string>());
        if (!ms_.empty()) {
            const std::string& ip = in.subjects[0].ip;
            if (src != ip && dst != ip && std::find(targets.begin(), targets.end(), ip) == targets.end()) continue;
        }
        const bool is_active = rd.flag(e, "active", false);
        (is_active ? active : ended) += 1;
        std::string ev;
        for (const auto& [k, v] : rd.object(e, "evidence").items()) {
            if (!v.is_number() && !v.is_string()) continue;
            if (!ev.empty()) ev += ", ";
            ev += k + " " + (v.is_number() ? count(v.get<double>()) : v.get<std::string>());
        }
        const auto det = unixOf(rd.str(e, "detected_at")), last = unixOf(rd.str(e, "last_seen"));
        rows.push_back({{"type", rd.str(e, "type")}, {"severity", rd.str(e, "severity")}, {"source", src}, {"target", dst},
                        {"targets", targets.size()}, {"detected", det ? localTime(*det, in) : std::string()},
                        {"last_seen", last ? localTime(*last, in) : std::string()}, {"active", is_active ? "yes" : "no"},
                        {"evidence", ev}});
    }
    const std::string what = in.kind == K::Scans ? "port scan" : "security event";
    std::string when;
    if (in.since_unix) when = " since " + localTime(*in.since_unix, in);
    else if (in.window.count()) when = " in the last " + span(static_cast<double>(in.window.count()));
    else when = " among the events the agent holds";
    const std::string about = in.subjects.empty() ? "" : " involving " + in.subjects[0].text;
    if (rows.empty()) {
        b.line("No: no " + what + about + when + ".");
        return;
    }
    b.line(std::string(active ? "Yes: " : "Not now: ") + std::to_string(active) + " " + what + (active == 1 ? "" : "s") +
           " in progress, " + std::to_string(ended) + " ended" + about + when + ":");
    for (std::size_t i = 0; i < rows.size() && i < std::max<std::size_t>(in.limit, 20); ++i) {
        const json& r = rows[i];
        b.line("  " + r["type"].get<std::string>() + " (" + r["severity"].get<std::string>() + ") " +
               (r["source"].get<std::string>().empty() ? std::string("?") : r["source"].get<std::string>()) + " -> " +
               (r["target"].get<std::string>().empty() ? std::to_string(r["targets"].get<std::size_t>()) + " targets"
                                                        : r["target"].get<std::string>()) +
               ", detected " + r["detected"].get<std::string>() + ", last seen " + r["last_seen"].get<std::string>() +
               (r["active"] == "yes" ? ", active" : ", ended") +
               (r["evidence"].get<std::string>().empty() ? "" : " [" + r["evidence"].get<std::string>() + "]"));
        tab.rows.push_back(r);
    }
}

// ---- what changed ----------------------------------------------------------------------------------

void answerChanges(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    const std::int64_t t = in.since_unix ? *in.since_unix : in.now_unix - in.window.count();
    const auto ms_ = matchers(in, docs, rd);
    auto mine = [&](const std::string& text) { return ms_.empty() || ms_[0].text(text); };
    b.line("Since " + localTime(t, in) + " (" + span(static_cast<double>(in.now_unix - t)) + " ago)" +
           (in.subjects.empty() ? "" : ", about " + in.subjects[0].text) + ":");
    // anomalies
    rd.context("/api/v1/anomalies");
    auto& an = b.table("anomalies", {{"first", U::Text}, {"last", U::Text}, {"scope", U::Text}, {"subject", U::Text},
                                     {"summary", U::Text}, {"score", U::Count}, {"open", U::Text}});
    if (!rd.enabled(docs[0])) {
        b.line("  anomalies: the agent runs without anomaly detection (--anomaly=off).");
    } else {
        for (const auto& e : rd.list(docs[0], "events")) {
            const double last = rd.num(e, "last_unix");
            if (last < static_cast<double>(t) || !mine(rd.str(e, "subject"))) continue;
            an.rows.push_back({{"first", localTime(static_cast<std::int64_t>(rd.num(e, "first_unix")), in)},
                               {"last", localTime(static_cast<std::int64_t>(last), in)},
                               {"scope", rd.str(e, "scope")}, {"subject", rd.str(e, "subject")},
                               {"summary", rd.str(e, "summary")}, {"score", rd.num(e, "score")},
                               {"open", rd.flag(e, "open", false) ? "yes" : "no"}});
        }
        b.line("  " + std::to_string(an.rows.size()) + " anomal" + (an.rows.size() == 1 ? "y" : "ies") + (an.rows.empty() ? "." : ":"));
        for (const auto& r : an.rows)
            b.line("    " + r["first"].get<std::string>() + " " + r["scope"].get<std::string>() + " " +
                   r["subject"].get<std::string>() + ": " + r["summary"].get<std::string>() +
                   (r["open"] == "yes" ? " (open)" : ""));
    }
    // security events (new peers are the new edges the security analytics saw)
    rd.context("/api/v1/events");
    auto& ev = b.table("security events", {{"detected", U::Text}, {"type", U::Text}, {"source", U::Text},
                                           {"target", U::Text}, {"active", U::Text}});
    if (!rd.enabled(docs[1])) {
        b.line("  security events: the agent runs without security analytics.");
    } else {
        for (const auto& e : rd.list(docs[1], "events")) {
            const std::string src = rd.str(e, "src_ip"), dst = rd.str(e, "dst_ip");
            if (!ms_.empty() && !mine(src) && !mine(dst)) continue;
            const auto det = unixOf(rd.str(e, "detected_at"));
            ev.rows.push_back({{"detected", det ? localTime(*det, in) : std::string()}, {"type", rd.str(e, "type")},
                               {"source", src}, {"target", dst}, {"active", rd.flag(e, "active", false) ? "yes" : "no"}});
        }
        std::size_t peers = 0;
        for (const auto& r : ev.rows) peers += r["type"] == "new_peer" ? 1 : 0;
        b.line("  " + std::to_string(ev.rows.size()) + " security event" + (ev.rows.size() == 1 ? "" : "s") +
               (peers ? " (" + std::to_string(peers) + " new peers)" : "") + (ev.rows.empty() ? "." : ":"));
        for (const auto& r : ev.rows)
            b.line("    " + r["detected"].get<std::string>() + " " + r["type"].get<std::string>() + " " +
                   r["source"].get<std::string>() + " -> " + r["target"].get<std::string>());
    }
    // findings that hold now and began since t
    std::vector<Finding> fs;
    readFindings(docs[2], false, rd, fs);
    readFindings(docs[3], true, rd, fs);
    std::erase_if(fs, [&](const Finding& f) { return !f.since || *f.since < t || !mine(f.subject); });
    auto& ft = findingsTable(b, "new findings");
    b.line("  " + std::to_string(fs.size()) + " finding" + (fs.size() == 1 ? "" : "s") +
           " that began since then and still hold" + (fs.empty() ? "." : ":"));
    for (const auto& f : fs) {
        b.line("  " + findingLine(f, in));
        ft.rows.push_back(findingRow(f, in));
    }
    // node series before and after t
    auto& st = b.table("series", {{"series", U::Text}, {"before", U::Count}, {"after", U::Count},
                                  {"minutes_before", U::Count}, {"minutes_after", U::Count}});
    for (std::size_t i = 4; i < docs.size() && i < in.queries.size(); ++i) {
        rd.context("/api/v1/history");
        if (!rd.enabled(docs[i])) {
            b.line("  node series: the agent runs without the history store (--history=off).");
            break;
        }
        const std::string series = rd.str(docs[i], "series");
        double sb = 0, sa = 0, nb = 0, na = 0, mb = 0, ma = 0;
        for (const auto& p : rd.list(docs[i], "points")) {
            const double time = rd.num(p, "time"), mean = rd.num(p, "mean"), cnt = rd.num(p, "count");
            const double step = rd.num(p, "step");
            if (time + step <= static_cast<double>(t)) sb += mean * cnt, nb += cnt, mb += step / 60;
            else if (time >= static_cast<double>(t)) sa += mean * cnt, na += cnt, ma += step / 60;
        }
        // (means as json: null without points)
        const json before = nb > 0 ? json(sb / nb) : json(nullptr);
        const json after = na > 0 ? json(sa / na) : json(nullptr);
        st.rows.push_back({{"series", series}, {"before", before}, {"after", after},
                           {"minutes_before", mb}, {"minutes_after", ma}});
        auto val = [&](const json& v) {
            if (v.is_null()) return std::string("no data");
            return series.ends_with("_ratio") ? pct(v.get<double>()) : fmt("%.3g/s", v.get<double>());
        };
        b.line("  " + series + ": " + val(before) + " before (" + count(mb) + " min), " + val(after) + " after (" +
               count(ma) + " min)");
    }
}

// ---- DNS -------------------------------------------------------------------------------------------

void answerDns(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    rd.context("/api/v1/l7/endpoints");
    const json& doc = docs[0];
    if (!rd.enabled(doc)) {
        b.line("The agent runs without --l7=on: it does not parse DNS, so it cannot count DNS failures.");
    } else {
        const double win = rd.num(doc, "window_seconds");
        const auto ms_ = matchers(in, docs, rd);
        struct S {
            double requests = 0, errors = 0, nxdomain = 0, p99 = 0;
        };
        std::map<std::pair<std::string, std::string>, S> per;  // (side, server)
        auto& tab = b.table("servers", {{"server", U::Text}, {"side", U::Text}, {"queries", U::Count},
                                        {"failures", U::Count}, {"nxdomain", U::Count}, {"failure_ratio", U::Ratio},
                                        {"p99_seconds", U::Seconds}});
        for (const auto& e : rd.list(doc, "endpoints")) {
            const std::string svc = rd.str(e, "service");
            if (!ms_.empty()) {
                const Subject& s = in.subjects[0];
                const std::string pre = s.ip.find(':') != std::string::npos ? "[" + s.ip + "]:" : s.ip + ":";
                if (s.kind == SK::Endpoint ? svc != s.text : !svc.starts_with(pre)) continue;
            }
            auto& x = per[{rd.str(e, "side"), svc}];
            x.requests += rd.num(e, "requests");
            x.errors += rd.num(e, "errors");
            x.nxdomain += rd.num(e, "client_errors");
            x.p99 = std::max(x.p99, rd.num(e, "p99_seconds"));
        }
        // the clients' side when the node has it (a query seen at both ends counts once)
        const bool client = std::any_of(per.begin(), per.end(), [](const auto& p) { return p.first.first == "client"; });
        const std::string side = client ? "client" : "server";
        S total;
        for (const auto& [k, x] : per) {
            if (k.first != side) continue;
            total.requests += x.requests;
            total.errors += x.errors;
            total.nxdomain += x.nxdomain;
        }
        const std::string w = fixedWindow(in, win, "the L7 view");
        if (total.requests == 0) {
            b.line("No DNS query" + (in.subjects.empty() ? std::string() : " to " + in.subjects[0].text) + " " + w + ".");
        } else {
            b.line("DNS " + w + " (as the " + side + "s on this node saw it): " + count(total.requests) + " queries, " +
                   count(total.errors) + " failed (SERVFAIL, REFUSED, FORMERR, NOTIMP: " + pct(total.errors / total.requests) +
                   "), " + count(total.nxdomain) + " NXDOMAIN (" + pct(total.nxdomain / total.requests) + ").");
            std::vector<std::pair<std::pair<std::string, std::string>, S>> v(per.begin(), per.end());
            std::stable_sort(v.begin(), v.end(), [](const auto& x, const auto& y) {
                return x.second.errors + x.second.nxdomain > y.second.errors + y.second.nxdomain;
            });
            for (const auto& [k, x] : v) {
                if (k.first != side) continue;
                b.line("  " + k.second + ": " + count(x.requests) + " queries, " + count(x.errors) + " failed, " +
                       count(x.nxdomain) + " NXDOMAIN, p99 " + ms(x.p99 * 1000));
                tab.rows.push_back({{"server", k.second}, {"side", k.first}, {"queries", x.requests},
                                    {"failures", x.errors}, {"nxdomain", x.nxdomain},
                                    {"failure_ratio", x.requests ? x.errors / x.requests : 0.0}, {"p99_seconds", x.p99}});
            }
        }
    }
    std::vector<Finding> fs;
    const auto [on, win] = readFindings(docs[1], false, rd, fs);
    if (on) {
        std::erase_if(fs, [](const Finding& f) { return !f.rule.starts_with("dns"); });
        auto& tab = findingsTable(b, "dns findings");
        for (const auto& f : fs) {
            b.line(findingLine(f, in));
            tab.rows.push_back(findingRow(f, in));
        }
        if (fs.empty()) b.line("The diagnosis has no DNS finding (last " + span(win) + ").");
    }
}

// ---- interfaces -------------------------------------------------------------------------------------

std::map<std::string, std::pair<double, double>> utilisation(const json& bottlenecks, Reader& rd) {
    std::map<std::string, std::pair<double, double>> out;  // interface -> (speed Mb/s, highest utilisation)
    rd.context("/api/v1/bottlenecks");
    if (!rd.enabled(bottlenecks)) return out;
    for (const auto& i : rd.list(bottlenecks, "interfaces"))
        out[rd.str(i, "interface")] = {rd.num(i, "speed_mbps"),
                                       std::max(rd.num(i, "ingress_utilisation"), rd.num(i, "egress_utilisation"))};
    return out;
}

void answerBusiest(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    rd.context("/api/v1/interfaces");
    struct I {
        std::string name;
        double rx = 0, tx = 0, rx_total = 0, tx_total = 0;
    };
    std::vector<I> v;
    for (const auto& i : rd.list(docs[0], "interfaces"))
        v.push_back({rd.str(i, "name"), rd.num(i, "ingress_bytes_rate"), rd.num(i, "egress_bytes_rate"),
                     rd.num(i, "ingress_bytes"), rd.num(i, "egress_bytes")});
    const auto util = utilisation(docs[1], rd);
    std::stable_sort(v.begin(), v.end(), [](const I& x, const I& y) {
        return x.rx + x.tx != y.rx + y.tx ? x.rx + x.tx > y.rx + y.tx : x.rx_total + x.tx_total > y.rx_total + y.tx_total;
    });
    auto& tab = b.table("interfaces", {{"interface", U::Text}, {"bytes_per_second", U::BytesPerSecond},
                                       {"rx_bytes_per_second", U::BytesPerSecond}, {"tx_bytes_per_second", U::BytesPerSecond},
                                       {"rx_bytes", U::Bytes}, {"tx_bytes", U::Bytes}, {"speed_mbps", U::Count},
                                       {"utilisation", U::Ratio}});
    if (v.empty()) {
        b.line("The agent monitors no interface.");
        return;
    }
    std::string note = "rates over the agent's last collection interval";
    if (in.window.count() || in.since_unix)
        note += " (the interfaces API has no longer window; GET /api/v1/history?prefix=iface/ keeps per-minute rates)";
    b.line((in.limit == 1 ? "The busiest interface, by " : "The busiest interfaces, by ") + note + ":");
    for (std::size_t i = 0; i < v.size() && i < in.limit; ++i) {
        const I& x = v[i];
        json row = {{"interface", x.name}, {"bytes_per_second", x.rx + x.tx}, {"rx_bytes_per_second", x.rx},
                    {"tx_bytes_per_second", x.tx}, {"rx_bytes", x.rx_total}, {"tx_bytes", x.tx_total},
                    {"speed_mbps", nullptr}, {"utilisation", nullptr}};
        std::string l = "  " + x.name + ": " + bytes(x.rx + x.tx) + "/s (received " + bytes(x.rx) + "/s, sent " +
                        bytes(x.tx) + "/s); " + bytes(x.rx_total) + " received, " + bytes(x.tx_total) + " sent since attach";
        if (auto it = util.find(x.name); it != util.end()) {
            row["speed_mbps"] = it->second.first;
            row["utilisation"] = it->second.second;
            l += "; " + pct(it->second.second) + " of its " + count(it->second.first) + " Mb/s link";
        }
        b.line(l);
        tab.rows.push_back(std::move(row));
    }
}

void answerForecast(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    rd.context("/api/v1/forecast");
    const json& doc = docs[0];
    if (!rd.enabled(doc)) {
        b.line("The agent runs without forecasts (--forecast=off).");
        return;
    }
    const auto util = utilisation(docs[1], rd);
    rd.context("/api/v1/forecast");
    const Subject* s = in.subjects.empty() ? nullptr : &in.subjects[0];
    const std::string what = s ? s->text : "any interface";
    // findings: capacity (interface), conntrack_fill, flow_table_fill
    auto& ft = b.table("findings", {{"kind", U::Text}, {"subject", U::Text}, {"severity", U::Text},
                                    {"lead_seconds", U::Seconds}, {"current", U::Count}, {"threshold", U::Count},
                                    {"message", U::Text}});
    for (const auto& f : rd.list(doc, "findings")) {
        const std::string kind = rd.str(f, "kind"), subject = rd.str(f, "subject");
        const bool mine = s ? (s->kind == SK::Interface ? kind == "capacity" && subject == s->name
                                                        : kind == (s->name == "conntrack" ? "conntrack_fill" : "flow_table_fill"))
                            : kind == "capacity";
        if (!mine) continue;
        ft.rows.push_back({{"kind", kind}, {"subject", subject}, {"severity", rd.str(f, "severity")},
                           {"lead_seconds", rd.num(f, "lead_seconds")}, {"current", rd.num(f, "current")},
                           {"threshold", rd.num(f, "threshold")}, {"message", rd.str(f, "message")}});
    }
    auto& st = b.table("forecasts", {{"series", U::Text}, {"last", U::Count}, {"capacity_bytes_per_second", U::BytesPerSecond},
                                     {"horizon", U::Text}, {"mean", U::Count}, {"upper_95", U::Count}});
    std::size_t series = 0;
    for (const auto& x : rd.list(doc, "series")) {
        ++series;
        const std::string key = rd.str(x, "series");
        const auto cap = rd.optNum(x, "capacity_bytes_per_second");
        const auto& hs = rd.list(x, "forecasts");
        if (hs.empty()) continue;
        const json& h = hs.back();  // the longest horizon
        st.rows.push_back({{"series", key}, {"last", rd.num(x, "last")}, {"capacity_bytes_per_second", orNull(cap)},
                           {"horizon", rd.str(h, "horizon")}, {"mean", rd.num(h, "mean")}, {"upper_95", rd.num(h, "upper_95")}});
    }
    if (!ft.rows.empty()) {
        b.line("Yes, at the current trend:");
        for (const auto& r : ft.rows)
            b.line("  " + r["message"].get<std::string>() + " (in " + span(r["lead_seconds"].get<double>()) + ")");
    } else if (series == 0) {
        b.line("No forecast model for " + what + " yet: the models need the history store's points "
               "(a few intervals of --series-step) first.");
        return;
    } else if (s && s->kind == SK::Interface &&
               std::all_of(st.rows.begin(), st.rows.end(), [](const json& r) { return r["capacity_bytes_per_second"].is_null(); })) {
        b.line("NetProbe does not know " + s->name + "'s link speed (virtual devices report none; --link-speed=" +
               s->name + "=10G sets it): there is no capacity for it to fill. Its forecast:");
    } else {
        b.line("No forecast finding for " + what + ": at the current trend it does not reach its threshold within the "
               "forecasts' horizons.");
    }
    for (const auto& r : st.rows) {
        const std::string key = r["series"].get<std::string>();
        const bool rate = key.starts_with("iface/");
        auto v = [&](double x) { return rate ? bytes(x) + "/s" : pct(x); };
        std::string l = "  " + key + ": now " + v(r["last"].get<double>()) + ", in " + r["horizon"].get<std::string>() +
                        " " + v(r["mean"].get<double>()) + " (95% up to " + v(r["upper_95"].get<double>()) + ")";
        if (rate && !r["capacity_bytes_per_second"].is_null())
            l += ", capacity " + bytes(r["capacity_bytes_per_second"].get<double>()) + "/s";
        b.line(l);
    }
    if (s && s->kind == SK::Interface)
        if (auto it = util.find(s->name); it != util.end())
            b.line("  " + s->name + " now: " + pct(it->second.second) + " of its " + count(it->second.first) +
                   " Mb/s link (the bottleneck view, last 60 s)");
}

// ---- cost -------------------------------------------------------------------------------------------

void answerCost(const Intent& in, const std::vector<json>& docs, Reader& rd, Builder& b) {
    rd.context("/api/v1/cost");
    const json& doc = docs[0];
    if (!rd.enabled(doc)) {
        b.line("The agent has no cost view.");
        return;
    }
    const double win = rd.num(doc, "window_seconds");
    const std::string cur = rd.str(doc, "currency");
    const std::string cls = in.focus.empty() ? "" : in.focus;
    struct E {
        std::string entity;
        double sent = 0, received = 0, cost_per_hour = 0, cross_sent = 0, internet_sent = 0;
    };
    std::vector<E> v;
    for (const auto& e : rd.list(doc, "entities")) {
        E x;
        x.entity = rd.str(e, "entity");
        if (!in.subjects.empty()) {
            const Subject& s = in.subjects[0];
            if (s.kind == SK::Namespace ? !x.entity.starts_with(s.ns + "/") : x.entity != s.ns + "/" + s.name) continue;
        }
        const json& sent = rd.object(e, "bytes_sent");
        const json& recv = rd.object(e, "bytes_received");
        if (!cls.empty()) {
            x.sent = rd.num(sent, cls.c_str());
            x.received = rd.num(recv, cls.c_str());
        } else {
            for (const auto& [_, n] : sent.items()) x.sent += n.is_number() ? n.get<double>() : 0;
            for (const auto& [_, n] : recv.items()) x.received += n.is_number() ? n.get<double>() : 0;
        }
        x.cross_sent = rd.num(sent, "cross_zone");
        x.internet_sent = rd.num(sent, "internet");
        x.cost_per_hour = rd.num(e, "cost_per_hour");
        v.push_back(std::move(x));
    }
    std::stable_sort(v.begin(), v.end(), [&](const E& x, const E& y) {
        return cls.empty() ? x.cost_per_hour > y.cost_per_hour : x.sent + x.received > y.sent + y.received;
    });
    const std::string w = fixedWindow(in, win, "the cost view");
    const std::string label = cls == "cross_zone" ? "cross-zone " : cls == "internet" ? "internet " : "";
    auto& tab = b.table("entities", {{"entity", U::Text}, {"bytes_sent", U::Bytes}, {"bytes_received", U::Bytes},
                                     {"cross_zone_sent", U::Bytes}, {"internet_sent", U::Bytes}, {"cost_per_hour", U::Money}});
    double ts = 0, tr = 0, tc = 0;
    for (const auto& x : v) ts += x.sent, tr += x.received, tc += x.cost_per_hour;
    b.line("Local workloads' " + label + "traffic " + w + ": " + bytes(ts) + " sent, " + bytes(tr) + " received; " +
           fmt("%.4g", tc) + " " + cur + "/h at the configured prices (bytes sent x price per GB of their class).");
    const std::string zone = rd.str(doc, "zone");
    if (cls == "cross_zone" && zone.empty())
        b.line("This node's zone is not known (no topology.kubernetes.io/zone label, no --cost-config zone): "
               "no traffic can be classed cross-zone.");
    std::size_t shown = 0;
    for (const auto& x : v) {
        if (shown >= in.limit) break;
        if (!cls.empty() && x.sent + x.received == 0) continue;
        ++shown;
        b.line("  " + x.entity + ": " + bytes(x.sent) + " sent, " + bytes(x.received) + " received" +
               (cls.empty() ? " (cross-zone " + bytes(x.cross_sent) + ", internet " + bytes(x.internet_sent) + ")" : "") +
               ", " + fmt("%.4g", x.cost_per_hour) + " " + cur + "/h");
        tab.rows.push_back({{"entity", x.entity}, {"bytes_sent", x.sent}, {"bytes_received", x.received},
                            {"cross_zone_sent", x.cross_sent}, {"internet_sent", x.internet_sent},
                            {"cost_per_hour", x.cost_per_hour}});
    }
}

}  // namespace

// ---- public --------------------------------------------------------------------------------------

std::string formatCell(const Column& c, const json& v) {
    if (v.is_null()) return "-";
    if (v.is_string()) return v.get<std::string>();
    if (v.is_boolean()) return v.get<bool>() ? "yes" : "no";
    if (!v.is_number()) return v.dump();
    const double x = v.get<double>();
    switch (c.unit) {
        case U::Text:
        case U::Count: return count(x);
        case U::Bytes: return bytes(x);
        case U::BytesPerSecond: return bytes(x) + "/s";
        case U::Milliseconds: return ms(x);
        case U::Seconds: return x >= 1 ? fmt("%.2f s", x) : ms(x * 1000);
        case U::Ratio: return pct(x);
        case U::Money: return fmt("%.4g", x);
    }
    return count(x);
}

json Answer::toJson() const {
    json j;
    j["text"] = text;
    auto tabs = json::array();
    for (const auto& t : tables) {
        auto cols = json::array();
        for (const auto& c : t.columns) cols.push_back(c.name);
        tabs.push_back({{"title", t.title}, {"columns", std::move(cols)}, {"rows", t.rows}});
    }
    j["rows"] = tables.empty() ? json::array() : json(tables.front().rows);
    j["tables"] = std::move(tabs);
    auto qs = json::array();
    for (const auto& q : queries) qs.push_back(q.target());
    j["queries"] = std::move(qs);
    return j;
}

Result<Answer> answer(const Intent& in, const std::vector<json>& docs) {
    if (docs.size() != in.queries.size())
        return std::unexpected(makeError("answer: " + std::to_string(docs.size()) + " documents for " +
                                         std::to_string(in.queries.size()) + " queries"));
    for (std::size_t i = 0; i < docs.size(); ++i)
        if (!docs[i].is_object())
            return std::unexpected(makeError("unexpected answer from " + in.queries[i].path + ": not a JSON object"));
    Reader rd;
    Builder b;
    switch (in.kind) {
        case K::TopTalkers:
        case K::TopPorts:
        case K::TopPods:
        case K::TopWorkloads:
        case K::TopNamespaces:
        case K::TopServices: answerTop(in, docs, rd, b); break;
        case K::WhoTalks: answerWhoTalks(in, docs, rd, b); break;
        case K::Latency:
        case K::Errors: answerQuality(in, docs, rd, b); break;
        case K::Scans:
        case K::Attacks: answerEvents(in, docs, rd, b); break;
        case K::Changes: answerChanges(in, docs, rd, b); break;
        case K::WhySlow: answerWhySlow(in, docs, rd, b); break;
        case K::Diagnosis: answerDiagnosis(in, docs, rd, b); break;
        case K::Drops: answerDrops(in, docs, rd, b); break;
        case K::PodDrops: answerPodDrops(in, docs, rd, b); break;
        case K::InterfaceDrops: answerInterfaceDrops(in, docs, rd, b); break;
        case K::Dns: answerDns(in, docs, rd, b); break;
        case K::BusiestInterface: answerBusiest(in, docs, rd, b); break;
        case K::Forecast: answerForecast(in, docs, rd, b); break;
        case K::Cost: answerCost(in, docs, rd, b); break;
    }
    if (!rd.error().empty()) return std::unexpected(makeError(rd.error()));
    return b.done(in);
}

}  // namespace netprobe::assistant
