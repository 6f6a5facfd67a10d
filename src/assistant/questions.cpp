// Natural-language questions, offline (questions.hpp): the parser. The answers are in
// answers.cpp.
//
// A question is read as a sequence of tokens, each of which must be explained: a time
// expression ("in the last 10 minutes", "since 14:00"), a subject ("198.18.0.1:80",
// "pod shop/cart-1", "eth0"), a number of rows ("top 5"), a concept word ("talkers",
// "latency", "scanned", with their synonyms) or a word that carries no meaning of its
// own ("the", "is", "show me"). A token that is none of these makes the question
// unanswerable: a question half understood would be answered with a guess. Then the
// concepts select exactly one kind of intent (none, or more than one: unanswerable), the
// subjects must be of the kinds that intent takes, and the intent's queries follow.
#include <netprobe/assistant/questions.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <ctime>
#include <map>
#include <set>

#include <netprobe/util/duration.hpp>
#include <netprobe/util/ip.hpp>

namespace netprobe::assistant {

namespace {

constexpr std::size_t kMaxQuestion = 500;
constexpr std::int64_t kMaxSpan = 31 * 86400;  // a window or "since" at most a month back
constexpr std::size_t kMaxLimit = 100;

// ---- concepts ----------------------------------------------------------------------

enum class C {
    Top, Talkers, Ports, Pods, Workloads, Namespaces, Services, Iface, Who, Talk, Clients, Send, Latency, Errors,
    Slow, Why, Scan, Attack, Change, Drop, Dns, Fill, Cost, CrossZone, Internet, Wrong, Vague, Count_
};
constexpr std::size_t kConcepts = static_cast<std::size_t>(C::Count_);

struct Phrase {
    std::string_view words;  // space-separated, lowercase
    std::optional<C> concept_;  // nullopt: a word without meaning of its own
};

// Longer phrases first where a prefix is a phrase too (matching takes the longest).
constexpr Phrase kPhrases[] = {
    // top
    {"top", C::Top}, {"busiest", C::Top}, {"biggest", C::Top}, {"largest", C::Top}, {"heaviest", C::Top},
    {"highest", C::Top}, {"most", C::Top}, {"main", C::Top}, {"loudest", C::Top}, {"chattiest", C::Top},
    {"greatest", C::Top}, {"worst", C::Top}, {"max", C::Top},
    // group nouns
    {"talkers", C::Talkers}, {"talker", C::Talkers}, {"senders", C::Talkers}, {"sender", C::Talkers},
    {"flows", C::Talkers}, {"flow", C::Talkers}, {"conversations", C::Talkers}, {"conversation", C::Talkers},
    {"connections", C::Talkers}, {"connection", C::Talkers}, {"hosts", C::Talkers}, {"host", C::Talkers},
    {"ips", C::Talkers}, {"addresses", C::Talkers}, {"pairs", C::Talkers}, {"edges", C::Talkers}, {"edge", C::Talkers},
    {"ports", C::Ports}, {"port", C::Ports},
    {"pods", C::Pods}, {"pod", C::Pods}, {"containers", C::Pods},
    {"workloads", C::Workloads}, {"workload", C::Workloads}, {"deployments", C::Workloads},
    {"deployment", C::Workloads}, {"statefulsets", C::Workloads}, {"daemonsets", C::Workloads},
    {"apps", C::Workloads}, {"applications", C::Workloads},
    {"namespaces", C::Namespaces}, {"namespace", C::Namespaces},
    {"services", C::Services}, {"service", C::Services}, {"servers", C::Services}, {"server", C::Services},
    {"interfaces", C::Iface}, {"interface", C::Iface}, {"nics", C::Iface}, {"nic", C::Iface}, {"links", C::Iface},
    {"link", C::Iface}, {"devices", C::Iface}, {"device", C::Iface},
    // who talks to whom
    {"who", C::Who}, {"whom", C::Who},
    {"talks", C::Talk}, {"talk", C::Talk}, {"talking", C::Talk}, {"talked", C::Talk}, {"connects", C::Talk},
    {"connect", C::Talk}, {"connecting", C::Talk}, {"connected", C::Talk}, {"calls", C::Talk}, {"call", C::Talk},
    {"calling", C::Talk}, {"called", C::Talk}, {"reaches", C::Talk}, {"reach", C::Talk}, {"reaching", C::Talk},
    {"communicates", C::Talk}, {"communicate", C::Talk}, {"communicating", C::Talk}, {"speaks", C::Talk},
    {"speak", C::Talk}, {"speaking", C::Talk}, {"contacts", C::Talk}, {"contact", C::Talk}, {"contacting", C::Talk},
    {"accesses", C::Talk}, {"access", C::Talk}, {"accessing", C::Talk},
    {"clients", C::Clients}, {"client", C::Clients}, {"callers", C::Clients}, {"caller", C::Clients},
    {"peers", C::Clients}, {"peer", C::Clients}, {"consumers", C::Clients},
    {"sends", C::Send}, {"send", C::Send}, {"sending", C::Send}, {"sent", C::Send}, {"receives", C::Send},
    {"receive", C::Send}, {"receiving", C::Send}, {"received", C::Send}, {"uses", C::Send}, {"use", C::Send},
    {"using", C::Send}, {"used", C::Send}, {"consumes", C::Send}, {"consume", C::Send}, {"consuming", C::Send},
    {"generates", C::Send}, {"generate", C::Send}, {"generating", C::Send}, {"transfers", C::Send},
    {"transfer", C::Send}, {"transferring", C::Send}, {"pushes", C::Send}, {"moves", C::Send},
    // latency
    {"latency", C::Latency}, {"latencies", C::Latency}, {"rtt", C::Latency}, {"rtts", C::Latency},
    {"delay", C::Latency}, {"delays", C::Latency}, {"round trip times", C::Latency}, {"round trip time", C::Latency},
    {"round trip", C::Latency}, {"round-trip", C::Latency}, {"round trips", C::Latency},
    {"response times", C::Latency}, {"response time", C::Latency}, {"p50", C::Latency}, {"p90", C::Latency},
    {"p99", C::Latency}, {"percentiles", C::Latency}, {"percentile", C::Latency}, {"jitter", C::Latency},
    {"ping", C::Latency}, {"fast", C::Latency}, {"duration", C::Latency}, {"durations", C::Latency},
    // errors
    {"errors", C::Errors}, {"error", C::Errors}, {"failures", C::Errors}, {"failure", C::Errors},
    {"failing", C::Errors}, {"failed", C::Errors}, {"fail", C::Errors}, {"fails", C::Errors},
    {"retransmits", C::Errors}, {"retransmit", C::Errors}, {"retransmission", C::Errors},
    {"retransmissions", C::Errors}, {"retransmitting", C::Errors}, {"retransmitted", C::Errors},
    {"loss", C::Errors}, {"lost", C::Errors}, {"resets", C::Errors}, {"refused", C::Errors},
    {"timeouts", C::Errors}, {"timeout", C::Errors}, {"timing out", C::Errors}, {"5xx", C::Errors},
    {"500s", C::Errors},
    // slow, why
    {"slow", C::Slow}, {"slower", C::Slow}, {"slowly", C::Slow}, {"sluggish", C::Slow}, {"laggy", C::Slow},
    {"lagging", C::Slow}, {"lag", C::Slow},
    {"why", C::Why}, {"how come", C::Why},
    // security
    {"port scans", C::Scan}, {"port scan", C::Scan}, {"port scanning", C::Scan}, {"port-scan", C::Scan},
    {"port-scanned", C::Scan},
    {"scan", C::Scan}, {"scans", C::Scan}, {"scanned", C::Scan}, {"scanning", C::Scan}, {"scanner", C::Scan},
    {"scanners", C::Scan}, {"portscan", C::Scan}, {"portscans", C::Scan}, {"probe", C::Scan}, {"probes", C::Scan},
    {"probed", C::Scan}, {"probing", C::Scan}, {"recon", C::Scan}, {"reconnaissance", C::Scan},
    {"sweep", C::Scan}, {"sweeps", C::Scan}, {"sweeping", C::Scan},
    {"security events", C::Attack}, {"security event", C::Attack}, {"security incidents", C::Attack},
    {"attack", C::Attack}, {"attacks", C::Attack}, {"attacked", C::Attack}, {"attacking", C::Attack},
    {"attacker", C::Attack}, {"attackers", C::Attack}, {"ddos", C::Attack}, {"dos", C::Attack},
    {"flood", C::Attack}, {"floods", C::Attack}, {"flooded", C::Attack}, {"flooding", C::Attack},
    {"intrusion", C::Attack}, {"intrusions", C::Attack}, {"threat", C::Attack}, {"threats", C::Attack},
    {"malicious", C::Attack}, {"suspicious", C::Attack}, {"hostile", C::Attack}, {"security", C::Attack},
    {"incidents", C::Attack}, {"incident", C::Attack},
    // change
    {"changed", C::Change}, {"change", C::Change}, {"changes", C::Change}, {"new", C::Change},
    {"different", C::Change}, {"differently", C::Change}, {"happened", C::Change}, {"anomaly", C::Change},
    {"anomalies", C::Change}, {"anomalous", C::Change}, {"unusual", C::Change}, {"abnormal", C::Change},
    {"odd", C::Change}, {"strange", C::Change}, {"weird", C::Change}, {"spike", C::Change},
    {"spikes", C::Change}, {"deviations", C::Change},
    // drops
    {"drop", C::Drop}, {"drops", C::Drop}, {"dropping", C::Drop}, {"dropped", C::Drop}, {"discard", C::Drop},
    {"discards", C::Drop}, {"discarding", C::Drop}, {"discarded", C::Drop},
    // dns
    {"dns", C::Dns}, {"nxdomain", C::Dns}, {"servfail", C::Dns}, {"name resolution", C::Dns},
    {"resolution", C::Dns}, {"resolver", C::Dns}, {"resolvers", C::Dns},
    // fill up
    {"fill", C::Fill}, {"fills", C::Fill}, {"filling", C::Fill}, {"full", C::Fill}, {"saturate", C::Fill},
    {"saturates", C::Fill}, {"saturated", C::Fill}, {"saturating", C::Fill}, {"saturation", C::Fill},
    {"capacity", C::Fill}, {"exhaust", C::Fill}, {"exhausted", C::Fill}, {"run out", C::Fill},
    {"running out", C::Fill}, {"runs out", C::Fill}, {"max out", C::Fill}, {"forecast", C::Fill},
    {"forecasts", C::Fill}, {"predict", C::Fill}, {"prediction", C::Fill},
    // cost
    {"cost", C::Cost}, {"costs", C::Cost}, {"costly", C::Cost}, {"expensive", C::Cost}, {"price", C::Cost},
    {"pricing", C::Cost}, {"bill", C::Cost}, {"billing", C::Cost}, {"spend", C::Cost}, {"spending", C::Cost},
    {"money", C::Cost}, {"charges", C::Cost},
    {"cross-zone", C::CrossZone}, {"cross zone", C::CrossZone}, {"crosszone", C::CrossZone},
    {"inter-zone", C::CrossZone}, {"inter zone", C::CrossZone}, {"between zones", C::CrossZone},
    {"across zones", C::CrossZone}, {"cross-az", C::CrossZone}, {"cross az", C::CrossZone},
    {"internet", C::Internet},
    // wrong
    {"wrong", C::Wrong}, {"problem", C::Wrong}, {"problems", C::Wrong}, {"issue", C::Wrong}, {"issues", C::Wrong},
    {"broken", C::Wrong}, {"unhealthy", C::Wrong}, {"healthy", C::Wrong}, {"health", C::Wrong},
    {"trouble", C::Wrong}, {"diagnose", C::Wrong}, {"diagnosis", C::Wrong}, {"findings", C::Wrong},
    {"bottleneck", C::Wrong}, {"bottlenecks", C::Wrong}, {"faults", C::Wrong}, {"fault", C::Wrong},
    {"ok", C::Wrong}, {"okay", C::Wrong},
    {"recently", C::Vague}, {"lately", C::Vague}, {"recent", C::Vague},
    // words without a meaning of their own here
    {"at the moment", std::nullopt}, {"right now", std::nullopt}, {"at present", std::nullopt},
    {"a", std::nullopt}, {"an", std::nullopt}, {"the", std::nullopt}, {"is", std::nullopt}, {"are", std::nullopt},
    {"was", std::nullopt}, {"were", std::nullopt}, {"be", std::nullopt}, {"been", std::nullopt},
    {"being", std::nullopt}, {"am", std::nullopt}, {"do", std::nullopt}, {"does", std::nullopt},
    {"did", std::nullopt}, {"has", std::nullopt}, {"have", std::nullopt}, {"had", std::nullopt},
    {"having", std::nullopt}, {"what", std::nullopt}, {"which", std::nullopt}, {"how", std::nullopt},
    {"much", std::nullopt}, {"many", std::nullopt}, {"me", std::nullopt}, {"my", std::nullopt},
    {"our", std::nullopt}, {"us", std::nullopt}, {"we", std::nullopt}, {"i", std::nullopt}, {"you", std::nullopt},
    {"show", std::nullopt}, {"list", std::nullopt}, {"give", std::nullopt}, {"tell", std::nullopt},
    {"display", std::nullopt}, {"get", std::nullopt}, {"getting", std::nullopt}, {"find", std::nullopt},
    {"see", std::nullopt}, {"seeing", std::nullopt}, {"there", std::nullopt}, {"any", std::nullopt},
    {"anything", std::nullopt}, {"anyone", std::nullopt}, {"anybody", std::nullopt}, {"something", std::nullopt},
    {"someone", std::nullopt}, {"somebody", std::nullopt}, {"some", std::nullopt}, {"all", std::nullopt},
    {"every", std::nullopt}, {"everything", std::nullopt}, {"of", std::nullopt}, {"in", std::nullopt},
    {"on", std::nullopt}, {"at", std::nullopt}, {"by", std::nullopt}, {"for", std::nullopt},
    {"from", std::nullopt}, {"to", std::nullopt}, {"with", std::nullopt}, {"and", std::nullopt},
    {"or", std::nullopt}, {"between", std::nullopt}, {"into", std::nullopt}, {"than", std::nullopt},
    {"that", std::nullopt}, {"this", std::nullopt}, {"these", std::nullopt}, {"those", std::nullopt},
    {"it", std::nullopt}, {"its", std::nullopt}, {"now", std::nullopt}, {"currently", std::nullopt},
    {"current", std::nullopt}, {"please", std::nullopt}, {"can", std::nullopt}, {"could", std::nullopt},
    {"would", std::nullopt}, {"will", std::nullopt}, {"should", std::nullopt}, {"going", std::nullopt},
    {"go", std::nullopt}, {"goes", std::nullopt}, {"up", std::nullopt}, {"out", std::nullopt}, {"over", std::nullopt},
    {"during", std::nullopt}, {"within", std::nullopt}, {"per", std::nullopt}, {"each", std::nullopt},
    {"across", std::nullopt}, {"network", std::nullopt}, {"node", std::nullopt}, {"machine", std::nullopt},
    {"system", std::nullopt}, {"traffic", std::nullopt}, {"bandwidth", std::nullopt}, {"bytes", std::nullopt},
    {"data", std::nullopt}, {"throughput", std::nullopt}, {"volume", std::nullopt}, {"load", std::nullopt},
    {"usage", std::nullopt}, {"utilisation", std::nullopt}, {"utilization", std::nullopt},
    {"packets", std::nullopt}, {"packet", std::nullopt}, {"segments", std::nullopt}, {"amount", std::nullopt},
    {"number", std::nullopt}, {"total", std::nullopt}, {"rate", std::nullopt}, {"rates", std::nullopt},
    {"so", std::nullopt}, {"very", std::nullopt}, {"too", std::nullopt}, {"where", std::nullopt},
    {"when", std::nullopt}, {"whether", std::nullopt}, {"if", std::nullopt}, {"under", std::nullopt},
    {"against", std::nullopt}, {"here", std::nullopt}, {"still", std::nullopt}, {"just", std::nullopt},
    {"only", std::nullopt}, {"about", std::nullopt}, {"working", std::nullopt}, {"work", std::nullopt},
    {"works", std::nullopt}, {"doing", std::nullopt}, {"happening", std::nullopt}, {"queries", std::nullopt},
    {"query", std::nullopt}, {"lookups", std::nullopt}, {"lookup", std::nullopt}, {"requests", std::nullopt},
    {"request", std::nullopt}, {"responses", std::nullopt}, {"answers", std::nullopt}, {"table", std::nullopt},
    {"tables", std::nullopt}, {"level", std::nullopt}, {"levels", std::nullopt}, {"most recently", std::nullopt},
    {"pipe", std::nullopt}, {"things", std::nullopt}, {"else", std::nullopt}, {"ever", std::nullopt},
    {"again", std::nullopt}, {"does it", std::nullopt}, {"each other", std::nullopt},
};

// ---- tokens ------------------------------------------------------------------------

struct Token {
    std::string raw;    // as written (punctuation around it removed)
    std::string low;    // lowercase
    bool used = false;
};

std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return o;
}

// Splits the question; strips the punctuation around words; expands contractions.
std::expected<std::vector<Token>, std::string> tokenize(std::string_view q) {
    std::string s;
    for (std::size_t i = 0; i < q.size(); ++i) {
        const auto c = static_cast<unsigned char>(q[i]);
        // U+2019 (right single quotation mark) as an apostrophe
        if (c == 0xE2 && i + 2 < q.size() && static_cast<unsigned char>(q[i + 1]) == 0x80 &&
            static_cast<unsigned char>(q[i + 2]) == 0x99) {
            s += '\'';
            i += 2;
            continue;
        }
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') return std::unexpected("the question contains control characters");
        s += static_cast<char>(c);
    }
    std::vector<Token> out;
    std::size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && std::isspace(static_cast<unsigned char>(s[i]))) ++i;
        std::size_t j = i;
        while (j < s.size() && !std::isspace(static_cast<unsigned char>(s[j]))) ++j;
        if (j == i) break;
        std::string w = s.substr(i, j - i);
        i = j;
        auto strip_front = [&] {
            while (!w.empty() && (w.front() == '"' || w.front() == '\'' || w.front() == '(' || w.front() == '`'))
                w.erase(w.begin());
        };
        auto strip_back = [&] {
            for (;;) {
                if (w.empty()) return;
                const char b = w.back();
                if (b == '?' || b == '!' || b == ',' || b == ';' || b == '"' || b == '\'' || b == ')' || b == '`' ||
                    b == '.') {
                    w.pop_back();
                } else if (b == ':' && !w.ends_with("::")) {
                    w.pop_back();
                } else {
                    return;
                }
            }
        };
        strip_front();
        strip_back();
        if (w.empty()) continue;
        std::string l = lower(w);
        // contractions
        static const std::pair<std::string_view, std::string_view> kContractions[] = {
            {"what's", "what is"}, {"who's", "who is"},   {"where's", "where is"}, {"how's", "how is"},
            {"it's", "it is"},     {"that's", "that is"}, {"there's", "there is"}, {"which's", "which is"},
            {"what're", "what are"}, {"who're", "who are"}, {"we're", "we are"}};
        bool expanded = false;
        for (const auto& [from, to] : kContractions) {
            if (l == from) {
                const auto sp = to.find(' ');
                out.push_back({std::string(to.substr(0, sp)), std::string(to.substr(0, sp))});
                out.push_back({std::string(to.substr(sp + 1)), std::string(to.substr(sp + 1))});
                expanded = true;
                break;
            }
        }
        if (expanded) continue;
        // "pod's" / "eth0's": the possessive of a word
        if (l.size() > 2 && l.ends_with("'s")) {
            w.resize(w.size() - 2);
            l.resize(l.size() - 2);
        }
        out.push_back({w, l});
    }
    if (out.empty()) return std::unexpected("the question is empty");
    return out;
}

// ---- numbers, durations, times ------------------------------------------------------

std::optional<std::int64_t> number(std::string_view w) {
    static const std::pair<std::string_view, int> kWords[] = {
        {"one", 1},     {"two", 2},       {"three", 3},    {"four", 4},    {"five", 5},      {"six", 6},
        {"seven", 7},   {"eight", 8},     {"nine", 9},     {"ten", 10},    {"eleven", 11},   {"twelve", 12},
        {"fifteen", 15}, {"twenty", 20},  {"thirty", 30},  {"forty", 40},  {"forty-five", 45}, {"fifty", 50},
        {"sixty", 60},  {"ninety", 90}};
    for (const auto& [k, v] : kWords)
        if (w == k) return v;
    std::int64_t n = 0;
    auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), n);
    if (w.empty() || ec != std::errc{} || p != w.data() + w.size() || n < 0 || n > 100000) return std::nullopt;
    return n;
}

std::optional<std::int64_t> unitSeconds(std::string_view w) {
    static const std::pair<std::string_view, std::int64_t> kUnits[] = {
        {"s", 1},        {"sec", 1},        {"secs", 1},      {"second", 1},   {"seconds", 1},
        {"m", 60},       {"min", 60},       {"mins", 60},     {"minute", 60},  {"minutes", 60},
        {"h", 3600},     {"hr", 3600},      {"hrs", 3600},    {"hour", 3600},  {"hours", 3600},
        {"d", 86400},    {"day", 86400},    {"days", 86400},  {"w", 604800},   {"week", 604800},
        {"weeks", 604800}};
    for (const auto& [k, v] : kUnits)
        if (w == k) return v;
    return std::nullopt;
}

// "10m", "2h", "90min", "30s": a number glued to its unit.
std::optional<std::int64_t> compactDuration(std::string_view w) {
    std::size_t i = 0;
    while (i < w.size() && std::isdigit(static_cast<unsigned char>(w[i]))) ++i;
    if (i == 0 || i == w.size()) return std::nullopt;
    auto n = number(w.substr(0, i));
    auto u = unitSeconds(w.substr(i));
    if (!n || !u) return std::nullopt;
    return *n * *u;
}

// A Go-style duration for the API ("10m", "1h30m", "45s").
std::string goDuration(std::int64_t secs) {
    std::string out;
    if (secs >= 3600) {
        out += std::to_string(secs / 3600) + "h";
        secs %= 3600;
    }
    if (secs >= 60) {
        out += std::to_string(secs / 60) + "m";
        secs %= 60;
    }
    if (secs || out.empty()) out += std::to_string(secs) + "s";
    return out;
}

// ---- subjects ----------------------------------------------------------------------

bool isDnsLabel(std::string_view s, std::size_t max) {
    if (s.empty() || s.size() > max) return false;
    if (s.front() == '-' || s.back() == '-') return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
    });
}

// A Kubernetes object name: DNS-1123 labels joined by dots, at most 253 characters.
bool isObjectName(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::size_t start = 0;
    while (true) {
        const auto dot = s.find('.', start);
        if (!isDnsLabel(s.substr(start, dot == std::string_view::npos ? dot : dot - start), 63)) return false;
        if (dot == std::string_view::npos) return true;
        start = dot + 1;
    }
}

bool isHostName(std::string_view s) {
    if (s.size() > 253 || s.find('.') == std::string_view::npos) return false;
    if (!isObjectName(s)) return false;
    const auto tld = s.substr(s.rfind('.') + 1);
    return !tld.empty() && std::all_of(tld.begin(), tld.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

// Interface names by the kernel's and the usual naming schemes.
bool looksLikeInterface(std::string_view s) {
    static constexpr std::string_view kPrefixes[] = {"eth", "ens", "enp", "eno", "enx", "wlan", "wlp", "bond",
                                                     "veth", "tun", "tap", "wg", "vxlan", "flannel", "cilium_",
                                                     "cali", "docker", "virbr", "cni", "br-", "gre", "ipip"};
    if (s == "lo") return true;
    for (auto p : kPrefixes) {
        if (!s.starts_with(p) || s.size() == p.size() || s.size() > 15) continue;
        const auto rest = s.substr(p.size());
        // the rest has a digit (eth0, ens3, veth1a2b, br-1f2e) and nothing but [a-z0-9._-]
        const bool ok = std::all_of(rest.begin(), rest.end(), [](char c) {
            return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-';
        });
        const bool digit = std::any_of(rest.begin(), rest.end(), [](char c) { return c >= '0' && c <= '9'; });
        if (ok && digit) return true;
    }
    return false;
}

bool isInterfaceName(std::string_view s) {
    if (s.empty() || s.size() > 15 || s == "." || s == "..") return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '@';
    });
}

std::optional<std::uint16_t> portNumber(std::string_view w) {
    std::uint32_t n = 0;
    auto [p, ec] = std::from_chars(w.data(), w.data() + w.size(), n);
    if (w.empty() || ec != std::errc{} || p != w.data() + w.size() || n == 0 || n > 65535) return std::nullopt;
    return static_cast<std::uint16_t>(n);
}

std::optional<Subject> addressOrEndpoint(std::string_view w) {
    if (auto a = util::parseAddr(w)) {
        Subject s;
        s.kind = Subject::Kind::Address;
        s.ip = util::formatAddr(*a);
        s.text = s.ip;
        return s;
    }
    std::string_view host, port;
    if (w.starts_with('[')) {
        const auto close = w.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        host = w.substr(1, close - 1);
        port = w.substr(close + 2);
    } else {
        const auto colon = w.rfind(':');
        if (colon == std::string_view::npos || w.find(':') != colon) return std::nullopt;  // one colon: IPv4:port
        host = w.substr(0, colon);
        port = w.substr(colon + 1);
    }
    auto a = util::parseAddr(host);
    auto p = portNumber(port);
    if (!a || !p) return std::nullopt;
    Subject s;
    s.kind = Subject::Kind::Endpoint;
    s.ip = util::formatAddr(*a);
    s.port = *p;
    s.text = util::formatEndpoint(*a, *p);
    return s;
}

// ":5432", "tcp/5432", "5432/tcp", "udp/53"
std::optional<Subject> portForm(std::string_view w) {
    Subject s;
    s.kind = Subject::Kind::Port;
    if (w.starts_with(':')) {
        auto p = portNumber(w.substr(1));
        if (!p) return std::nullopt;
        s.port = *p;
    } else {
        const auto slash = w.find('/');
        if (slash == std::string_view::npos) return std::nullopt;
        auto a = w.substr(0, slash), b = w.substr(slash + 1);
        auto isT = [](std::string_view t) { return t == "tcp" || t == "udp"; };
        if (isT(a) && portNumber(b)) {
            s.transport = a;
            s.port = *portNumber(b);
        } else if (isT(b) && portNumber(a)) {
            s.transport = b;
            s.port = *portNumber(a);
        } else {
            return std::nullopt;
        }
    }
    s.text = (s.transport.empty() ? std::string("port ") : s.transport + "/") + std::to_string(s.port);
    return s;
}

Subject objectSubject(Subject::Kind k, std::string ns, std::string name) {
    Subject s;
    s.kind = k;
    s.ns = std::move(ns);
    s.name = std::move(name);
    s.text = k == Subject::Kind::Namespace ? s.ns : s.ns + "/" + s.name;
    return s;
}

// ---- the question being read --------------------------------------------------------

struct Reading {
    std::vector<Token> toks;
    std::array<int, kConcepts> first{};   // token index of each concept's first word + 1 (0: absent)
    std::vector<std::pair<Subject, std::size_t>> subjects;  // with the index of their first token
    std::optional<std::int64_t> window, since;
    std::optional<std::size_t> limit;
    std::string error;  // the first thing not understood
    std::vector<std::optional<C>> concept_of;  // per token: the concept of the phrase it is part of

    bool has(C c) const { return first[static_cast<std::size_t>(c)] != 0; }
    std::size_t at(C c) const { return static_cast<std::size_t>(first[static_cast<std::size_t>(c)] - 1); }
    void mark(C c, std::size_t i) {
        auto& f = first[static_cast<std::size_t>(c)];
        if (!f) f = static_cast<int>(i) + 1;
    }
    const std::string& low(std::size_t i) const {
        static const std::string kEmpty;
        return i < toks.size() ? toks[i].low : kEmpty;
    }
};

// The phrase of kPhrases that starts at token i, longest first: (words, concept).
std::optional<std::pair<std::size_t, const Phrase*>> phraseAt(const Reading& r, std::size_t i) {
    std::optional<std::pair<std::size_t, const Phrase*>> best;
    for (const auto& p : kPhrases) {
        std::size_t n = 0, pos = 0;
        bool ok = true;
        while (pos < p.words.size()) {
            const auto sp = p.words.find(' ', pos);
            const auto word = p.words.substr(pos, sp == std::string_view::npos ? sp : sp - pos);
            if (i + n >= r.toks.size() || r.toks[i + n].used || r.toks[i + n].low != word) {
                ok = false;
                break;
            }
            ++n;
            if (sp == std::string_view::npos) break;
            pos = sp + 1;
        }
        if (ok && n > 0 && (!best || n > best->first)) best = std::pair{n, &p};
    }
    return best;
}

// The local calendar: days since the epoch of a unix time in the caller's zone.
std::int64_t localMidnight(std::int64_t t, std::int32_t off) {
    const std::int64_t local = t + off;
    const std::int64_t day = (local >= 0 ? local / 86400 : (local - 86399) / 86400);
    return day * 86400 - off;
}

// "14:00", "9:30", "2pm", "2:30pm", "14h"? (no): the most recent such local time.
std::optional<std::int64_t> clockTime(std::string_view w, std::string_view next, const Clock& clk, bool& used_next) {
    used_next = false;
    std::string s(w);
    std::string suffix;
    for (std::string_view ap : {"am", "pm"}) {
        if (s.size() > 2 && s.ends_with(ap)) {
            suffix = ap;
            s.resize(s.size() - 2);
        }
    }
    if (suffix.empty() && (next == "am" || next == "pm")) {
        suffix = next;
        used_next = true;
    }
    int h = 0, m = 0;
    const auto colon = s.find(':');
    auto num = [](std::string_view t, int& v, int max) {
        auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), v);
        return !t.empty() && t.size() <= 2 && ec == std::errc{} && p == t.data() + t.size() && v >= 0 && v <= max;
    };
    if (colon == std::string::npos) {
        if (suffix.empty() || !num(s, h, 12) || h == 0) return std::nullopt;  // "14" alone is not a time
    } else {
        if (s.size() - colon - 1 != 2 || !num(std::string_view(s).substr(0, colon), h, 23) ||
            !num(std::string_view(s).substr(colon + 1), m, 59))
            return std::nullopt;
    }
    if (!suffix.empty()) {
        if (h < 1 || h > 12) return std::nullopt;
        if (suffix == "am" && h == 12) h = 0;
        if (suffix == "pm" && h != 12) h += 12;
    }
    std::int64_t t = localMidnight(clk.now_unix, clk.utc_offset_seconds) + h * 3600 + m * 60;
    if (t > clk.now_unix) t -= 86400;  // the most recent one
    return t;
}

// "2026-01-05T14:00:00Z", "2026-01-05T14:00:00+01:00", "2026-01-05T14:00" (local), "2026-01-05" (local midnight)
std::optional<std::int64_t> dateTime(std::string_view w, const Clock& clk) {
    std::tm tm{};
    int Y = 0, M = 0, D = 0, h = 0, mi = 0, sec = 0;
    char rest[16] = {};
    const std::string s(w);
    bool local = true;
    std::int64_t off = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d%15s", &Y, &M, &D, &h, &mi, &sec, rest) >= 6) {
        std::string r(rest);
        if (r.starts_with('.')) {  // fractional seconds
            std::size_t k = 1;
            while (k < r.size() && std::isdigit(static_cast<unsigned char>(r[k]))) ++k;
            if (k == 1) return std::nullopt;
            r.erase(0, k);
        }
        if (r == "z" || r == "Z") {
            local = false;
        } else if (!r.empty()) {
            int oh = 0, om = 0;
            char sign = 0;
            if (std::sscanf(r.c_str(), "%c%2d:%2d", &sign, &oh, &om) != 3 || (sign != '+' && sign != '-'))
                return std::nullopt;
            local = false;
            off = (sign == '-' ? -1 : 1) * (oh * 3600 + om * 60);
        }
    } else if (std::sscanf(s.c_str(), "%4d-%2d-%2dT%2d:%2d%15s", &Y, &M, &D, &h, &mi, rest) == 5 && !rest[0]) {
        sec = 0;
    } else if (std::sscanf(s.c_str(), "%4d-%2d-%2d%15s", &Y, &M, &D, rest) == 3 && !rest[0]) {
        h = mi = sec = 0;
    } else {
        return std::nullopt;
    }
    if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || mi > 59 || sec > 60) return std::nullopt;
    tm.tm_year = Y - 1900;
    tm.tm_mon = M - 1;
    tm.tm_mday = D;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    const std::int64_t t = static_cast<std::int64_t>(timegm(&tm));
    return t - (local ? clk.utc_offset_seconds : off);
}

// Reads a time expression at i; returns the tokens it took (0: none).
std::size_t readTime(Reading& r, std::size_t i, const Clock& clk) {
    const std::string& w = r.low(i);
    auto set_window = [&](std::int64_t secs) {
        if (r.window || r.since) r.error = "two time ranges in one question";
        else if (secs <= 0 || secs > kMaxSpan) r.error = "a time range of at most 31 days, please";
        r.window = secs;
    };
    auto set_since = [&](std::int64_t t) {
        if (r.window || r.since) r.error = "two time ranges in one question";
        else if (t > clk.now_unix) r.error = "that time is in the future";
        else if (clk.now_unix - t > kMaxSpan) r.error = "a time at most 31 days back, please";
        r.since = t;
    };
    // [N] UNIT ago / COMPACT ago / an hour ago / half an hour ago
    auto agoAt = [&](std::size_t j) -> std::pair<std::size_t, std::int64_t> {
        if (auto c = compactDuration(r.low(j)); c && r.low(j + 1) == "ago") return {2, *c};
        if (r.low(j) == "half" && (r.low(j + 1) == "an" || r.low(j + 1) == "a") && r.low(j + 2) == "hour" &&
            r.low(j + 3) == "ago")
            return {4, 1800};
        std::optional<std::int64_t> n;
        if (r.low(j) == "a" || r.low(j) == "an") n = 1;
        else n = number(r.low(j));
        if (n && unitSeconds(r.low(j + 1)) && r.low(j + 2) == "ago") return {3, *n * *unitSeconds(r.low(j + 1))};
        return {0, 0};
    };
    // [in|over|during|for|within] [the] (last|past|previous) [N] UNIT
    {
        std::size_t j = i;
        if (w == "in" || w == "over" || w == "during" || w == "for" || w == "within") ++j;
        if (r.low(j) == "the") ++j;
        const std::string& l = r.low(j);
        if (l == "last" || l == "past" || l == "previous") {
            ++j;
            if (auto c = compactDuration(r.low(j))) {
                set_window(*c);
                return j + 1 - i;
            }
            if (r.low(j) == "half" && r.low(j + 1) == "hour") {
                set_window(1800);
                return j + 2 - i;
            }
            std::int64_t n = 1;
            bool counted = false;
            if (auto k = number(r.low(j)); k && unitSeconds(r.low(j + 1))) {
                n = *k;
                counted = true;
                ++j;
            }
            if (auto u = unitSeconds(r.low(j)); u && (counted || r.low(j).size() > 1)) {  // "last m" is not a time
                set_window(n * *u);
                return j + 1 - i;
            }
            if (j > i + 1 && (w == "in" || w == "over" || w == "during" || w == "for" || w == "within")) {
                r.error = "\"" + r.toks[i].raw + " " + r.toks[i + 1].raw + "...\": say how long, e.g. \"in the last 10 minutes\"";
                return 1;
            }
            r.error = "\"" + r.toks[j - 1].raw + "\": say how long, e.g. \"in the last 10 minutes\" or \"last hour\"";
            return 1;
        }
        // "in the last" without a unit falls through to the plain words
    }
    if (w == "since") {
        const std::string& a = r.low(i + 1);
        if (auto [n, secs] = agoAt(i + 1); n) {
            set_since(clk.now_unix - secs);
            return 1 + n;
        }
        bool used_next = false;
        if (auto t = clockTime(a, r.low(i + 2), clk, used_next)) {
            set_since(*t);
            return used_next ? 3 : 2;
        }
        if (auto t = i + 1 < r.toks.size() ? dateTime(r.toks[i + 1].raw, clk) : std::nullopt) {
            set_since(*t);
            return 2;
        }
        if (a == "midnight" || a == "today") {
            set_since(localMidnight(clk.now_unix, clk.utc_offset_seconds));
            return 2;
        }
        if (a == "yesterday") {
            set_since(localMidnight(clk.now_unix, clk.utc_offset_seconds) - 86400);
            return 2;
        }
        if (a == "noon") {
            auto t = localMidnight(clk.now_unix, clk.utc_offset_seconds) + 12 * 3600;
            set_since(t > clk.now_unix ? t - 86400 : t);
            return 2;
        }
        r.error = "\"since " + (i + 1 < r.toks.size() ? r.toks[i + 1].raw : std::string()) +
                  "\": give a time like \"since 14:00\", \"since 2pm\", \"since 2h ago\" or \"since 2026-01-05T14:00:00Z\"";
        return 1;
    }
    if (auto [n, secs] = agoAt(i); n) {
        set_since(clk.now_unix - secs);
        return n;
    }
    if (w == "today") {
        set_since(localMidnight(clk.now_unix, clk.utc_offset_seconds));
        return 1;
    }
    return 0;
}

// Reads a subject at i; returns the tokens it took (0: none).
std::size_t readSubject(Reading& r, std::size_t i) {
    const std::string& w = r.low(i);
    auto add = [&](Subject s, std::size_t n) {
        r.subjects.emplace_back(std::move(s), i);
        return n;
    };
    // "NAME in namespace NS" / "NAME in NS namespace" / "NAME -n NS" after pod/workload
    auto nsAfter = [&](std::size_t j, std::string& ns) -> std::size_t {
        if (r.low(j) == "-n" && isDnsLabel(r.low(j + 1), 63)) {
            ns = r.low(j + 1);
            return 2;
        }
        if (r.low(j) != "in") return 0;
        if ((r.low(j + 1) == "namespace" || r.low(j + 1) == "ns") && isDnsLabel(r.low(j + 2), 63)) {
            ns = r.low(j + 2);
            return 3;
        }
        if (isDnsLabel(r.low(j + 1), 63) && r.low(j + 2) == "namespace") {
            ns = r.low(j + 1);
            return 3;
        }
        return 0;
    };
    auto object = [&](Subject::Kind k, const char* what) -> std::size_t {
        const std::string& a = r.low(i + 1);
        const auto slash = a.find('/');
        if (slash != std::string::npos) {
            const auto ns = a.substr(0, slash), name = a.substr(slash + 1);
            if (!isDnsLabel(ns, 63) || !isObjectName(name)) {
                r.error = "\"" + r.toks[i + 1].raw + "\" is not a " + what + " name (namespace/name)";
                return 2;
            }
            return add(objectSubject(k, ns, name), 2);
        }
        if (isObjectName(a)) {
            std::string ns;
            if (auto n = nsAfter(i + 2, ns)) return add(objectSubject(k, ns, a), 2 + n);
            r.error = std::string("which namespace is ") + what + " \"" + r.toks[i + 1].raw + "\" in? Say \"" + what +
                      " NAMESPACE/" + r.toks[i + 1].raw + "\"";
            return 2;
        }
        return 0;
    };
    if (auto s = addressOrEndpoint(w)) return add(*s, 1);
    if (auto s = portForm(w)) return add(*s, 1);
    if ((w == "ip" || w == "address" || w == "host") && addressOrEndpoint(r.low(i + 1)))
        return add(*addressOrEndpoint(r.low(i + 1)), 2);
    if (w == "host" && isHostName(r.low(i + 1))) {
        Subject s;
        s.kind = Subject::Kind::Host;
        s.name = s.text = r.low(i + 1);
        return add(s, 2);
    }
    if (w == "port" || w == "ports") {
        if (auto p = portNumber(r.low(i + 1))) {
            Subject s;
            s.kind = Subject::Kind::Port;
            s.port = *p;
            s.text = "port " + std::to_string(*p);
            return add(s, 2);
        }
        if (auto p = portForm(r.low(i + 1))) return add(*p, 2);
        if (number(r.low(i + 1))) {
            r.error = "\"" + r.toks[i + 1].raw + "\" is not a port (1-65535)";
            return 2;
        }
    }
    if (w == "pod") return object(Subject::Kind::Pod, "pod");
    if (w == "workload" || w == "deployment" || w == "statefulset" || w == "daemonset" || w == "replicaset" ||
        w == "job" || w == "cronjob" || w == "app")
        return object(Subject::Kind::Workload, w == "app" ? "workload" : w.c_str());
    if ((w == "namespace" || w == "ns") && isDnsLabel(r.low(i + 1), 63) && !phraseAt(r, i + 1) &&
        !addressOrEndpoint(r.low(i + 1)))
        return add(objectSubject(Subject::Kind::Namespace, r.low(i + 1), ""), 2);
    if (isDnsLabel(w, 63) && r.low(i + 1) == "namespace" && !phraseAt(r, i) && !number(w))
        return add(objectSubject(Subject::Kind::Namespace, w, ""), 2);
    if ((w == "interface" || w == "nic" || w == "device" || w == "link") && i + 1 < r.toks.size() &&
        isInterfaceName(r.toks[i + 1].raw) && !phraseAt(r, i + 1)) {
        Subject s;
        s.kind = Subject::Kind::Interface;
        s.name = s.text = r.toks[i + 1].raw;
        return add(s, 2);
    }
    if (looksLikeInterface(w)) {
        Subject s;
        s.kind = Subject::Kind::Interface;
        s.name = s.text = r.toks[i].raw;
        return add(s, 1);
    }
    if (w == "conntrack" || (w == "flow" && r.low(i + 1) == "table") || w == "nf_conntrack") {
        Subject s;
        s.kind = Subject::Kind::Table;
        s.name = s.text = w == "flow" ? "flow_table" : "conntrack";
        return add(s, w == "flow" ? 2 : 1);
    }
    if (w == "service" || w == "svc") {
        const std::string& a = r.low(i + 1);
        if (a.find('/') != std::string::npos || (isObjectName(a) && !phraseAt(r, i + 1))) {
            r.error = "Kubernetes Services are not ends of the agent's service map: ask about the workload behind it "
                      "(\"workload NAMESPACE/NAME\") or its address:port";
            return 2;
        }
    }
    if (isHostName(w)) {
        Subject s;
        s.kind = Subject::Kind::Host;
        s.name = s.text = w;
        return add(s, 1);
    }
    if (const auto slash = w.find('/'); slash != std::string::npos && slash > 0 && slash + 1 < w.size()) {
        if (isDnsLabel(w.substr(0, slash), 63) && isObjectName(w.substr(slash + 1))) {
            r.error = "is \"" + r.toks[i].raw + "\" a pod or a workload? Say \"pod " + r.toks[i].raw + "\" or \"workload " +
                      r.toks[i].raw + "\"";
            return 1;
        }
    }
    return 0;
}

// ---- intents -------------------------------------------------------------------------

using K = Intent::Kind;
using SK = Subject::Kind;

bool any(const Reading& r, std::initializer_list<C> cs) {
    return std::any_of(cs.begin(), cs.end(), [&](C c) { return r.has(c); });
}

// Group nouns: what a ranking ranks (one at a time).
std::size_t groupNouns(const Reading& r) {
    std::size_t n = 0;
    for (C c : {C::Talkers, C::Ports, C::Pods, C::Workloads, C::Namespaces, C::Services, C::Iface, C::Clients})
        n += r.has(c) ? 1 : 0;
    return n;
}

bool hasSubject(const Reading& r, SK k) {
    return std::any_of(r.subjects.begin(), r.subjects.end(), [&](const auto& s) { return s.first.kind == k; });
}

// A kind of intent: the concepts a question of that kind may use (any other concept rules
// it out: "will eth0 fill up" is a forecast, "will eth0's latency fill up" is nothing),
// and what it needs besides.
struct Rule {
    K kind;
    std::vector<C> allowed;
    bool (*needs)(const Reading&);
};

const Rule kRules[] = {
    {K::TopTalkers, {C::Top, C::Talkers, C::Clients, C::Who, C::Send, C::Talk},
     [](const Reading& r) {
         if (!r.has(C::Top)) return false;
         if (groupNouns(r) == 1 && (r.has(C::Talkers) || (r.has(C::Clients) && r.subjects.empty()))) return true;
         // who sends / uses / talks the most
         return groupNouns(r) == 0 && r.has(C::Who) && any(r, {C::Send, C::Talk}) && r.subjects.empty();
     }},
    {K::TopPorts, {C::Top, C::Ports, C::Send}, [](const Reading& r) { return r.has(C::Top) && r.has(C::Ports); }},
    {K::TopPods, {C::Top, C::Pods, C::Send, C::Talk}, [](const Reading& r) { return r.has(C::Top) && r.has(C::Pods); }},
    {K::TopWorkloads, {C::Top, C::Workloads, C::Send, C::Talk},
     [](const Reading& r) { return r.has(C::Top) && r.has(C::Workloads); }},
    {K::TopNamespaces, {C::Top, C::Namespaces, C::Send, C::Talk},
     [](const Reading& r) { return r.has(C::Top) && r.has(C::Namespaces); }},
    {K::TopServices, {C::Top, C::Services, C::Send}, [](const Reading& r) { return r.has(C::Top) && r.has(C::Services); }},
    {K::WhoTalks,
     {C::Who, C::Talk, C::Clients, C::Send, C::Talkers, C::Pods, C::Workloads, C::Namespaces, C::Services, C::Top},
     [](const Reading& r) {
         if (r.subjects.size() != 1 || groupNouns(r) > 1) return false;
         return any(r, {C::Talk, C::Clients}) || (r.has(C::Who) && r.has(C::Send));
     }},
    {K::Latency,
     {C::Latency, C::Slow, C::Errors, C::Top, C::Talkers, C::Pods, C::Workloads, C::Namespaces, C::Services},
     [](const Reading& r) { return r.has(C::Latency) || (r.has(C::Slow) && !r.subjects.empty()); }},
    {K::Errors, {C::Errors, C::Top, C::Talkers, C::Pods, C::Workloads, C::Namespaces, C::Services},
     [](const Reading& r) { return r.has(C::Errors); }},
    {K::Scans, {C::Scan, C::Who, C::Talkers}, [](const Reading& r) { return r.has(C::Scan); }},
    {K::Attacks, {C::Attack, C::Scan, C::Who, C::Talkers}, [](const Reading& r) { return r.has(C::Attack); }},
    {K::Changes,
     {C::Change, C::Talkers, C::Scan, C::Attack, C::Pods, C::Workloads, C::Namespaces, C::Services, C::Ports},
     [](const Reading& r) { return r.has(C::Change); }},
    {K::WhySlow,
     {C::Why, C::Slow, C::Latency, C::Errors, C::Wrong, C::Talkers, C::Pods, C::Workloads, C::Namespaces, C::Services},
     [](const Reading& r) {
         if (r.has(C::Why)) return any(r, {C::Slow, C::Latency, C::Errors, C::Wrong});
         return r.has(C::Wrong) && !r.subjects.empty();
     }},
    {K::Diagnosis, {C::Wrong}, [](const Reading& r) { return r.has(C::Wrong) && r.subjects.empty(); }},
    {K::Drops, {C::Drop, C::Talkers, C::Who, C::Top},
     [](const Reading& r) { return r.has(C::Drop) && !hasSubject(r, SK::Interface); }},
    {K::PodDrops, {C::Drop, C::Pods, C::Workloads, C::Namespaces, C::Top},
     [](const Reading& r) { return r.has(C::Drop) && any(r, {C::Pods, C::Workloads, C::Namespaces}); }},
    {K::InterfaceDrops, {C::Drop, C::Iface, C::Top},
     [](const Reading& r) { return r.has(C::Drop) && (r.has(C::Iface) || hasSubject(r, SK::Interface)); }},
    {K::Dns, {C::Dns, C::Errors, C::Latency, C::Slow, C::Services, C::Top}, [](const Reading& r) { return r.has(C::Dns); }},
    {K::BusiestInterface, {C::Top, C::Iface, C::Send}, [](const Reading& r) { return r.has(C::Top) && r.has(C::Iface); }},
    {K::Forecast, {C::Fill, C::Iface}, [](const Reading& r) { return r.has(C::Fill); }},
    {K::Cost, {C::Cost, C::CrossZone, C::Internet, C::Top, C::Workloads, C::Pods, C::Namespaces, C::Send, C::Talkers},
     [](const Reading& r) { return any(r, {C::Cost, C::CrossZone, C::Internet}); }},
};

bool matches(const Rule& rule, const Reading& r) {
    for (std::size_t c = 0; c < kConcepts; ++c) {
        const C cc = static_cast<C>(c);
        if (cc == C::Vague || !r.has(cc)) continue;
        if (std::find(rule.allowed.begin(), rule.allowed.end(), cc) == rule.allowed.end()) return false;
    }
    return rule.needs(r);
}

const std::vector<std::string> kExamples = {
    "top talkers in the last 10 minutes",
    "top 5 ports over the past hour",
    "which pods send the most traffic",
    "top workloads in namespace shop",
    "who talks to 198.18.0.10:5432",
    "what does pod shop/cart-1 talk to",
    "latency between 198.18.0.1 and 198.18.0.2",
    "errors between workload shop/cart and workload shop/db in the last 15 minutes",
    "is anything being scanned",
    "are we under attack",
    "what changed since 14:00",
    "why is 198.18.0.10 slow",
    "is anything wrong",
    "which pods drop packets",
    "which interfaces drop packets",
    "any dns failures",
    "what is the busiest interface",
    "will eth0 fill up",
    "how much cross-zone traffic do we have",
};

CannotAnswer refuse(std::string reason) { return CannotAnswer{std::move(reason), kExamples}; }

// Subjects an intent takes.
struct Takes {
    std::size_t max = 0;
    std::set<SK> kinds;
};

Takes takes(K k) {
    const std::set<SK> ends = {SK::Address, SK::Endpoint, SK::Host, SK::Pod, SK::Workload, SK::Namespace, SK::Port};
    switch (k) {
        case K::TopTalkers:
        case K::TopPorts:
        case K::TopPods:
        case K::TopWorkloads:
        case K::TopServices: return {1, {SK::Namespace}};
        case K::TopNamespaces:
        case K::Diagnosis:
        case K::BusiestInterface: return {0, {}};
        case K::WhoTalks: return {1, ends};
        case K::Latency:
        case K::Errors:
        case K::Drops: return {2, ends};
        case K::WhySlow: return {1, ends};
        case K::Scans:
        case K::Attacks: return {1, {SK::Address}};
        case K::Changes: return {1, ends};
        case K::PodDrops: return {1, {SK::Namespace}};
        case K::InterfaceDrops: return {1, {SK::Interface}};
        case K::Dns: return {1, {SK::Address, SK::Endpoint}};
        case K::Forecast: return {1, {SK::Interface, SK::Table}};
        case K::Cost: return {1, {SK::Namespace, SK::Workload}};
    }
    return {0, {}};
}

std::string windowParam(const Intent& in, std::int64_t deflt) {
    std::int64_t w = deflt;
    if (in.window.count()) w = in.window.count();
    else if (in.since_unix) w = std::max<std::int64_t>(1, in.now_unix - *in.since_unix);
    return goDuration(w);
}

// The grouping of the ends the question names (or of its group noun).
std::expected<std::string, std::string> groupOf(const Intent& in, const Reading& r) {
    std::set<std::string> g;
    for (const auto& s : in.subjects) {
        switch (s.kind) {
            case SK::Pod: g.insert("pod"); break;
            case SK::Workload: g.insert("workload"); break;
            case SK::Namespace: g.insert("namespace"); break;
            default: g.insert("host"); break;
        }
    }
    if (g.size() > 1)
        return std::unexpected("the two ends are of different kinds (" + *g.begin() + ", " + *g.rbegin() +
                               "): ask about two pods, two workloads, two namespaces or two addresses");
    if (g.size() == 1) return *g.begin();
    if (r.has(C::Pods)) return std::string("pod");
    if (r.has(C::Workloads)) return std::string("workload");
    if (r.has(C::Namespaces)) return std::string("namespace");
    return std::string("host");
}

void buildQueries(Intent& in) {
    auto q = [&](std::string path, std::vector<std::pair<std::string, std::string>> params = {}) {
        in.queries.push_back(Query{std::move(path), std::move(params)});
    };
    const std::string win = windowParam(in, 300);
    auto nsParam = [&](std::vector<std::pair<std::string, std::string>>& p) {
        for (const auto& s : in.subjects)
            if (s.kind == SK::Namespace) p.emplace_back("namespace", s.ns);
    };
    auto hostNames = [&] {
        if (std::any_of(in.subjects.begin(), in.subjects.end(), [](const Subject& s) { return s.kind == SK::Host; }))
            q("/api/v1/l7/dns/names");
    };
    auto sinceParam = [&]() -> std::optional<std::string> {
        if (in.since_unix) return std::to_string(*in.since_unix);
        if (in.window.count()) return std::to_string(in.now_unix - in.window.count());
        return std::nullopt;
    };
    switch (in.kind) {
        case K::TopTalkers:
        case K::TopPorts:
        case K::TopServices:
        case K::TopPods:
        case K::TopWorkloads:
        case K::TopNamespaces: {
            const bool has_ns = !in.subjects.empty();
            in.group_by = in.kind == K::TopPods ? "pod"
                          : in.kind == K::TopWorkloads ? "workload"
                          : in.kind == K::TopNamespaces ? "namespace"
                          : in.kind == K::TopServices ? "workload"
                          : in.kind == K::TopTalkers && has_ns ? "pod"
                                                               : "host";
            std::vector<std::pair<std::string, std::string>> p = {{"window", win}, {"group_by", in.group_by}};
            nsParam(p);
            q("/api/v1/topology", std::move(p));
            break;
        }
        case K::WhoTalks: {
            const Subject& s = in.subjects[0];
            in.group_by = s.kind == SK::Pod ? "pod" : s.kind == SK::Workload ? "workload" : s.kind == SK::Namespace ? "namespace" : "host";
            std::vector<std::pair<std::string, std::string>> p = {{"window", win}, {"group_by", in.group_by}};
            if (s.kind == SK::Namespace) p.emplace_back("namespace", s.ns);
            q("/api/v1/topology", std::move(p));
            break;
        }
        case K::Latency:
        case K::Errors:
        case K::Drops: {
            std::vector<std::pair<std::string, std::string>> p = {{"window", win}, {"group_by", in.group_by}};
            q("/api/v1/qos", std::move(p));
            if (in.kind == K::Errors || in.also_errors) q("/api/v1/l7/endpoints", {{"limit", "1000"}});
            if (in.kind == K::Drops) q("/api/v1/diagnosis");
            hostNames();
            break;
        }
        case K::PodDrops: {
            std::vector<std::pair<std::string, std::string>> p = {{"window", win}, {"group_by", in.group_by}};
            nsParam(p);
            q("/api/v1/qos", std::move(p));
            q("/api/v1/diagnosis");
            break;
        }
        case K::InterfaceDrops:
            q("/api/v1/bottlenecks", {{"kind", "qdisc_drops,qdisc_backlog"}});
            q("/api/v1/diagnosis");
            break;
        case K::Scans:
        case K::Attacks: {
            std::vector<std::pair<std::string, std::string>> p;
            if (in.kind == K::Scans) p.emplace_back("type", "port_scan");
            if (auto s = sinceParam()) p.emplace_back("since", *s);
            p.emplace_back("limit", "1000");
            q("/api/v1/events", std::move(p));
            break;
        }
        case K::Changes: {
            const std::int64_t t = in.since_unix ? *in.since_unix : in.now_unix - in.window.count();
            const std::int64_t before = std::max<std::int64_t>(in.now_unix - t, 600);
            q("/api/v1/anomalies", {{"limit", "1000"}});
            q("/api/v1/events", {{"since", std::to_string(t)}, {"limit", "1000"}});
            q("/api/v1/diagnosis");
            q("/api/v1/bottlenecks", {{"severity", "warning"}});
            for (const char* series : {"node/retransmit_ratio", "node/connections_failed_rate", "node/listen_overflows_rate"})
                q("/api/v1/history", {{"series", series}, {"from", std::to_string(t - before)}, {"to", std::to_string(in.now_unix + 60)}});
            break;
        }
        case K::WhySlow:
            q("/api/v1/diagnosis");
            q("/api/v1/bottlenecks");
            if (!in.subjects.empty()) {
                q("/api/v1/qos", {{"window", win}, {"group_by", in.group_by}});
                q("/api/v1/l7/endpoints", {{"limit", "1000"}});
                hostNames();
            }
            break;
        case K::Diagnosis:
            q("/api/v1/diagnosis");
            q("/api/v1/bottlenecks", {{"severity", "warning"}});
            break;
        case K::Dns:
            q("/api/v1/l7/endpoints", {{"protocol", "dns"}, {"limit", "1000"}});
            q("/api/v1/diagnosis");
            break;
        case K::BusiestInterface:
            q("/api/v1/interfaces");
            q("/api/v1/bottlenecks");
            break;
        case K::Forecast: {
            std::string series = "iface/";
            if (!in.subjects.empty()) {
                const Subject& s = in.subjects[0];
                series = s.kind == SK::Table ? (s.name == "conntrack" ? "node/conntrack_usage" : "node/flow_table_usage")
                                             : "iface/" + s.name + "/";
            }
            q("/api/v1/forecast", {{"series", series}});
            q("/api/v1/bottlenecks");
            break;
        }
        case K::Cost:
            q("/api/v1/cost", {{"limit", "1000"}});
            break;
    }
}

}  // namespace

// ---- public ---------------------------------------------------------------------------

std::string Query::target() const {
    std::string out = path;
    char sep = '?';
    for (const auto& [k, v] : params) {
        out += sep;
        out += k;
        out += '=';
        static constexpr char hex[] = "0123456789ABCDEF";
        for (unsigned char c : v) {
            if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' || c == ':' || c == ',') {
                out += static_cast<char>(c);
            } else {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
        sep = '&';
    }
    return out;
}

std::string_view toString(Subject::Kind k) {
    switch (k) {
        case SK::Address: return "address";
        case SK::Endpoint: return "endpoint";
        case SK::Host: return "host";
        case SK::Pod: return "pod";
        case SK::Workload: return "workload";
        case SK::Namespace: return "namespace";
        case SK::Port: return "port";
        case SK::Interface: return "interface";
        case SK::Table: return "table";
    }
    return "unknown";
}

std::string_view toString(Intent::Kind k) {
    switch (k) {
        case K::TopTalkers: return "top_talkers";
        case K::TopPorts: return "top_ports";
        case K::TopPods: return "top_pods";
        case K::TopWorkloads: return "top_workloads";
        case K::TopNamespaces: return "top_namespaces";
        case K::TopServices: return "top_services";
        case K::WhoTalks: return "who_talks";
        case K::Latency: return "latency";
        case K::Errors: return "errors";
        case K::Scans: return "scans";
        case K::Attacks: return "attacks";
        case K::Changes: return "changes";
        case K::WhySlow: return "why_slow";
        case K::Diagnosis: return "diagnosis";
        case K::Drops: return "drops";
        case K::PodDrops: return "pod_drops";
        case K::InterfaceDrops: return "interface_drops";
        case K::Dns: return "dns";
        case K::BusiestInterface: return "busiest_interface";
        case K::Forecast: return "forecast";
        case K::Cost: return "cost";
    }
    return "unknown";
}

const std::vector<std::string>& exampleQuestions() { return kExamples; }

nlohmann::json Intent::toJson() const {
    nlohmann::json j;
    j["kind"] = toString(kind);
    j["now_unix"] = now_unix;
    j["utc_offset_seconds"] = utc_offset_seconds;
    if (window.count()) j["window_seconds"] = window.count();
    if (since_unix) j["since_unix"] = *since_unix;
    auto subs = nlohmann::json::array();
    for (const auto& s : subjects) {
        nlohmann::json o = {{"kind", toString(s.kind)}, {"text", s.text}};
        if (!s.ip.empty()) o["ip"] = s.ip;
        if (s.port) o["port"] = s.port;
        if (!s.transport.empty()) o["transport"] = s.transport;
        if (!s.ns.empty()) o["namespace"] = s.ns;
        if (!s.name.empty()) o["name"] = s.name;
        subs.push_back(std::move(o));
    }
    j["subjects"] = std::move(subs);
    if (kind == K::WhoTalks)
        j["direction"] = direction == Direction::In ? "in" : direction == Direction::Out ? "out" : "both";
    j["limit"] = limit;
    if (!group_by.empty()) j["group_by"] = group_by;
    if (!focus.empty()) j["focus"] = focus;
    if (also_errors) j["also_errors"] = true;
    auto qs = nlohmann::json::array();
    for (const auto& q : queries) qs.push_back(q.target());
    j["queries"] = std::move(qs);
    return j;
}

std::expected<Intent, CannotAnswer> parse(std::string_view question, const Clock& clock) {
    if (question.size() > kMaxQuestion)
        return std::unexpected(refuse("the question is longer than " + std::to_string(kMaxQuestion) + " characters"));
    auto toks = tokenize(question);
    if (!toks) return std::unexpected(refuse(toks.error()));
    Reading r;
    r.toks = std::move(*toks);
    r.concept_of.assign(r.toks.size(), std::nullopt);

    // Time expressions and subjects first (they hold words that are concepts elsewhere:
    // "port 80", "pod shop/a", "in the last hour"), then concepts, numbers, plain words.
    std::vector<std::string> unknown;
    std::vector<std::size_t> numbers;
    for (std::size_t i = 0; i < r.toks.size();) {
        std::size_t n = readTime(r, i, clock);
        if (!n) n = readSubject(r, i);
        if (!r.error.empty()) return std::unexpected(refuse(r.error));
        if (n) {
            for (std::size_t k = i; k < i + n && k < r.toks.size(); ++k) r.toks[k].used = true;
            i += n;
            continue;
        }
        ++i;
    }
    for (std::size_t i = 0; i < r.toks.size();) {
        if (r.toks[i].used) {
            ++i;
            continue;
        }
        if (auto p = phraseAt(r, i)) {
            // ("recently", "lately": a concept of their own, which no rule needs: "what changed
            // recently" is asked for its time; elsewhere the default window answers, and says so)
            if (p->second->concept_) r.mark(*p->second->concept_, i);
            for (std::size_t k = i; k < i + p->first; ++k) {
                r.toks[k].used = true;
                r.concept_of[k] = p->second->concept_;
            }
            i += p->first;
            continue;
        }
        if (auto n = number(r.toks[i].low); n && *n >= 1) {
            numbers.push_back(i);
            r.toks[i].used = true;
            ++i;
            continue;
        }
        unknown.push_back(r.toks[i].raw);
        ++i;
    }
    if (!unknown.empty()) {
        std::string words;
        for (const auto& u : unknown) words += (words.empty() ? "\"" : ", \"") + u + "\"";
        return std::unexpected(refuse("not understood: " + words +
                                      (unknown.size() == 1 ? " (not a word, address, name or time this parser knows)"
                                                           : " (not words, addresses, names or times this parser knows)")));
    }
    if (numbers.size() > 1) return std::unexpected(refuse("more than one number that is not a port, address or time"));

    // The kind of intent: exactly one rule.
    std::vector<K> kinds;
    for (const auto& rule : kRules)
        if (matches(rule, r)) kinds.push_back(rule.kind);
    if (kinds.empty()) {
        if (r.has(C::Change) && !r.window && !r.since)
            return std::unexpected(refuse("changed since when? Say \"since 14:00\", \"since 2h ago\" or \"in the last hour\""));
        if (r.has(C::Top) && groupNouns(r) > 1)
            return std::unexpected(refuse("one ranking at a time: top talkers, ports, pods, workloads, namespaces, "
                                          "services or interfaces"));
        if (any(r, {C::Talk, C::Clients}) && r.subjects.size() > 1)
            return std::unexpected(refuse("who talks to whom: name one end at a time (\"who talks to A\"), or ask "
                                          "\"latency between A and B\" / \"errors between A and B\""));
        return std::unexpected(refuse("this is not a question the offline parser maps to NetProbe's data"));
    }
    if (kinds.size() > 1) {
        std::string k;
        for (auto x : kinds) k += (k.empty() ? "" : " or ") + std::string(toString(x));
        return std::unexpected(refuse("the question mixes topics (" + k + "): ask one thing at a time"));
    }
    Intent in;
    in.kind = kinds[0];
    in.now_unix = clock.now_unix;
    in.utc_offset_seconds = clock.utc_offset_seconds;
    if (r.window) in.window = std::chrono::seconds(*r.window);
    in.since_unix = r.since;
    for (const auto& [s, _] : r.subjects) in.subjects.push_back(s);

    // Subjects the intent takes.
    const Takes t = takes(in.kind);
    if (in.subjects.size() > t.max) {
        if (t.max == 0)
            return std::unexpected(refuse(std::string(toString(in.kind)) + " is about the whole node: \"" +
                                          in.subjects[0].text + "\" cannot narrow it"));
        return std::unexpected(refuse("too many subjects for " + std::string(toString(in.kind)) + " (at most " +
                                      std::to_string(t.max) + ")"));
    }
    for (const auto& s : in.subjects)
        if (!t.kinds.contains(s.kind))
            return std::unexpected(refuse(std::string(toString(in.kind)) + " questions do not take " +
                                          std::string(toString(s.kind)) + " \"" + s.text + "\" as a subject"));
    if (in.kind == K::Changes && !in.since_unix && !in.window.count())
        return std::unexpected(refuse("changed since when? Say \"since 14:00\", \"since 2h ago\" or \"in the last hour\""));
    if (in.kind == K::Cost && r.has(C::Internet)) in.focus = "internet";
    if (in.kind == K::Cost && r.has(C::CrossZone)) {
        if (!in.focus.empty()) return std::unexpected(refuse("cross-zone or internet traffic? Ask one at a time"));
        in.focus = "cross_zone";
    }
    if (in.kind == K::Latency && r.has(C::Errors)) in.also_errors = true;
    if (in.subjects.size() == 2 && in.subjects[0] == in.subjects[1])
        return std::unexpected(refuse("both ends are \"" + in.subjects[0].text + "\""));

    // The number: rows of a ranked answer ("top 5", "the 3 busiest").
    static const std::set<K> ranked = {K::TopTalkers, K::TopPorts, K::TopPods, K::TopWorkloads, K::TopNamespaces,
                                       K::TopServices, K::BusiestInterface, K::Latency, K::Errors, K::Drops,
                                       K::PodDrops, K::Cost, K::WhoTalks};
    if (!numbers.empty()) {
        const auto n = *number(r.toks[numbers[0]].low);
        if (!ranked.contains(in.kind))
            return std::unexpected(refuse("what does \"" + r.toks[numbers[0]].raw + "\" mean here?"));
        if (n < 1 || static_cast<std::size_t>(n) > kMaxLimit)
            return std::unexpected(refuse("at most the top " + std::to_string(kMaxLimit) + ", please"));
        in.limit = static_cast<std::size_t>(n);
    } else if (in.kind == K::BusiestInterface) {
        // "the busiest interface": one; "the busiest interfaces": a list
        const std::string& w = r.low(r.at(C::Iface));
        in.limit = w == "interfaces" || w == "nics" || w == "links" || w == "devices" ? 10 : 1;
    }

    // Direction of "who talks to X": X the server ("who talks to X", "clients of X"), the
    // client ("what does X talk to", "who gets traffic from X") or either ("peers of X",
    // "who talks with X").
    if (in.kind == K::WhoTalks) {
        const std::size_t at = r.subjects[0].second;
        const std::string before = at > 0 ? r.low(at - 1) : std::string();
        bool verb_after = false, peers = false;
        for (std::size_t i = 0; i < r.toks.size(); ++i) {
            const auto c = r.concept_of[i];
            if (i > at && c && (*c == C::Talk || *c == C::Send)) verb_after = true;
            if (c && *c == C::Clients && (r.low(i) == "peers" || r.low(i) == "peer")) peers = true;
        }
        if (before == "with" || peers) in.direction = Intent::Direction::Both;
        else if (before == "from" || verb_after) in.direction = Intent::Direction::Out;
        else in.direction = Intent::Direction::In;
        if (in.subjects[0].kind == SK::Port || in.subjects[0].kind == SK::Endpoint)
            in.direction = Intent::Direction::In;  // a port is a server's
    }

    // The grouping of qos-based answers.
    if (in.kind == K::Latency || in.kind == K::Errors || in.kind == K::Drops || in.kind == K::WhySlow ||
        in.kind == K::PodDrops) {
        auto g = groupOf(in, r);
        if (!g) return std::unexpected(refuse(g.error()));
        in.group_by = *g;
        if (in.kind == K::PodDrops) {
            in.group_by = r.has(C::Workloads) ? "workload" : r.has(C::Namespaces) && in.subjects.empty() ? "namespace" : "pod";
        }
    }
    buildQueries(in);
    return in;
}

}  // namespace netprobe::assistant
