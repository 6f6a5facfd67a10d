// Names and addresses -> placeholders before anything leaves the node (llm.hpp).
#include <netprobe/assistant/llm.hpp>

#include <algorithm>
#include <set>

#include <netprobe/util/ip.hpp>

namespace netprobe::assistant {

namespace {

using nlohmann::json;
using Kind = Anonymizer::Kind;

bool isAlnum(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool isNameChar(char c) { return isAlnum(c) || c == '-' || c == '.' || c == '_'; }
std::string lower(std::string_view s) {
    std::string o(s);
    for (auto& c : o)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    return o;
}

constexpr std::pair<Kind, std::string_view> kPrefixes[] = {
    {Kind::Ip, "ip"},       {Kind::Pod, "pod"},     {Kind::Namespace, "ns"},
    {Kind::Node, "node"},   {Kind::Workload, "wl"}, {Kind::Service, "svc"},
};

// "pod-12" -> its kind; nullopt when the word is not shaped like a placeholder.
std::optional<Kind> placeholderShape(std::string_view w) {
    const auto dash = w.find('-');
    if (dash == std::string_view::npos || dash + 1 >= w.size()) return std::nullopt;
    const auto digits = w.substr(dash + 1);
    if (!std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }) || digits.size() > 9)
        return std::nullopt;
    for (const auto& [k, p] : kPrefixes)
        if (w.substr(0, dash) == p) return k;
    return std::nullopt;
}

// A Kubernetes-style name (DNS-1123 and a little more): what may be learned.
bool nameLike(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    if (!std::all_of(s.begin(), s.end(), isNameChar)) return false;
    if (!std::any_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }))
        return false;
    return !util::parseAddr(s).has_value();
}

std::optional<Kind> keyKind(std::string_view key) {
    const std::string k = lower(key);
    auto is = [&](std::string_view base) {
        return k == base || k.ends_with("_" + std::string(base)) || k == std::string(base) + "s" ||
               k.ends_with("_" + std::string(base) + "s") || k == std::string(base) + "_name";
    };
    if (is("pod")) return Kind::Pod;
    if (is("namespace")) return Kind::Namespace;
    if (is("node")) return Kind::Node;
    if (is("workload")) return Kind::Workload;
    if (is("service")) return Kind::Service;
    return std::nullopt;
}

std::optional<Kind> kindWord(std::string_view word) {
    const std::string w = lower(word);
    if (w == "pod" || w == "pods") return Kind::Pod;
    if (w == "namespace" || w == "namespaces" || w == "ns") return Kind::Namespace;
    if (w == "node" || w == "nodes") return Kind::Node;
    if (w == "workload" || w == "workloads" || w == "deployment" || w == "deployments" || w == "statefulset" ||
        w == "daemonset" || w == "replicaset" || w == "job" || w == "cronjob")
        return Kind::Workload;
    if (w == "service" || w == "services" || w == "svc") return Kind::Service;
    return std::nullopt;
}

// Words that are not names even in "a/b" form.
bool stopWord(std::string_view w) {
    static const std::set<std::string, std::less<>> kStop = {
        "tcp",     "udp",    "icmp",   "icmpv6", "sctp",   "http",   "https",    "http2",  "grpc",   "dns",
        "tls",     "ip",     "ipv4",   "ipv6",   "in",     "out",    "rx",       "tx",     "read",   "write",
        "s",       "sec",    "second", "min",    "minute", "ms",     "h",        "hour",   "and",    "or",
        "bytes",   "packets", "kb",    "mb",     "gb",     "kib",    "mib",      "gib",    "requests", "req",
        "errors",  "ingress", "egress", "client", "server", "src",   "dst",      "send",   "receive", "up",
        "down",    "api",    "v1",     "sent",   "received", "either", "latency", "p50",   "p99",    "rtt"};
    return kStop.contains(lower(w));
}

}  // namespace

std::string_view placeholderPrefix(Kind k) {
    for (const auto& [kind, p] : kPrefixes)
        if (kind == k) return p;
    return "name";
}

void Anonymizer::learn(Kind kind, std::string_view name) {
    if (kind == Kind::Ip) {
        if (auto a = util::parseAddr(name)) placeholderFor(Kind::Ip, util::formatAddr(*a));
        return;
    }
    if (!nameLike(name)) return;
    names_.emplace(std::string(name), kind);
}

namespace {

void learnValue(Anonymizer& a, Kind kind, std::string_view v) {
    if (v.empty() || v.find(':') != std::string_view::npos || v.find(' ') != std::string_view::npos) return;
    if (const auto slash = v.find('/'); slash != std::string_view::npos) {
        a.learn(Kind::Namespace, v.substr(0, slash));
        a.learn(kind == Kind::Namespace ? Kind::Workload : kind, v.substr(slash + 1));
        return;
    }
    a.learn(kind, v);
}

void learnWalk(Anonymizer& a, const json& j, bool pods_list) {
    if (j.is_object()) {
        if (const auto k = j.find("kind"), n = j.find("name");
            k != j.end() && n != j.end() && k->is_string() && n->is_string()) {
            if (auto kind = kindWord(k->get_ref<const std::string&>())) learnValue(a, *kind, n->get_ref<const std::string&>());
        }
        if (pods_list) {
            if (const auto n = j.find("name"); n != j.end() && n->is_string()) learnValue(a, Kind::Pod, n->get<std::string>());
        }
        for (const auto& [k, v] : j.items()) {
            const auto kind = keyKind(k);
            if (kind && v.is_string()) learnValue(a, *kind, v.get_ref<const std::string&>());
            if (kind && v.is_array())
                for (const auto& x : v)
                    if (x.is_string()) learnValue(a, *kind, x.get_ref<const std::string&>());
            const std::string lk = lower(k);
            learnWalk(a, v, lk == "pods" || lk.ends_with("_pods"));
        }
    } else if (j.is_array()) {
        for (const auto& x : j) learnWalk(a, x, pods_list);
    }
}

}  // namespace

void Anonymizer::learnDocument(const json& doc) { learnWalk(*this, doc, false); }

void Anonymizer::learnQuestion(std::string_view q) {
    // words: runs of name characters and '/'
    std::vector<std::string> words;
    std::size_t i = 0;
    while (i < q.size()) {
        if (!isNameChar(q[i]) && q[i] != '/') {
            ++i;
            continue;
        }
        std::size_t e = i;
        while (e < q.size() && (isNameChar(q[e]) || q[e] == '/')) ++e;
        std::string w(q.substr(i, e - i));
        while (!w.empty() && (w.back() == '.' || w.back() == '-' || w.back() == '/')) w.pop_back();
        if (!w.empty()) words.push_back(std::move(w));
        i = e;
    }
    for (std::size_t k = 0; k < words.size(); ++k) {
        const auto& w = words[k];
        if (auto kind = kindWord(w); kind && k + 1 < words.size()) {
            const auto& next = words[k + 1];
            if (!stopWord(next) && !kindWord(next)) learnValue(*this, *kind, next);
        }
        if (const auto slash = w.find('/'); slash != std::string::npos && w.find('/', slash + 1) == std::string::npos) {
            const auto a = std::string_view(w).substr(0, slash), b = std::string_view(w).substr(slash + 1);
            const bool prev_kind = k > 0 && kindWord(words[k - 1]).has_value();
            if (!prev_kind && nameLike(a) && nameLike(b) && !stopWord(a) && !stopWord(b)) {
                learn(Kind::Namespace, a);
                learn(Kind::Workload, b);
            }
        }
    }
}

std::string Anonymizer::placeholderFor(Kind kind, const std::string& original) {
    if (auto it = to_placeholder_.find(original); it != to_placeholder_.end()) return it->second;
    std::string ph;
    do {
        ph = std::string(placeholderPrefix(kind)) + "-" + std::to_string(++next_[kind]);
    } while (to_original_.contains(ph));
    to_placeholder_.emplace(original, ph);
    to_original_.emplace(ph, original);
    return ph;
}

std::string Anonymizer::maskRun(std::string_view run) {
    // The sentence's dots and dashes around a name are not part of it.
    std::size_t b = 0, e = run.size();
    while (b < e && (run[b] == '.' || run[b] == '-')) ++b;
    while (e > b && (run[e - 1] == '.' || run[e - 1] == '-')) --e;
    const std::string core(run.substr(b, e - b));
    auto one = [&](const std::string& w) -> std::optional<std::string> {
        if (auto it = names_.find(w); it != names_.end()) return placeholderFor(it->second, w);
        if (auto k = placeholderShape(w)) return placeholderFor(*k, w);
        return std::nullopt;
    };
    std::string out(run.substr(0, b));
    if (core.empty()) {
    } else if (auto r = one(core)) {
        out += *r;
    } else if (core.find('.') != std::string::npos) {
        // a dotted name (cart.shop.svc.cluster.local): its labels one by one
        std::size_t s = 0;
        for (;;) {
            const auto dot = core.find('.', s);
            const std::string label = core.substr(s, dot == std::string::npos ? std::string::npos : dot - s);
            auto r2 = label.empty() ? std::nullopt : one(label);
            out += r2 ? *r2 : label;
            if (dot == std::string::npos) break;
            out += '.';
            s = dot + 1;
        }
    } else {
        out += core;
    }
    out += run.substr(e);
    return out;
}

std::string Anonymizer::mask(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    auto names = [&](std::string_view seg) {
        std::size_t i = 0;
        while (i < seg.size()) {
            if (!isNameChar(seg[i])) {
                out += seg[i++];
                continue;
            }
            std::size_t e = i;
            while (e < seg.size() && isNameChar(seg[e])) ++e;
            out += maskRun(seg.substr(i, e - i));
            i = e;
        }
    };
    std::size_t at = 0;
    for (const auto& f : extractFigures(text)) {
        if (f.kind != Figure::Kind::Address || f.offset < at) continue;
        names(text.substr(at, f.offset - at));
        out += placeholderFor(Kind::Ip, f.address);
        at = f.offset + f.text.size();
    }
    names(text.substr(at));
    return out;
}

json Anonymizer::maskJson(const json& j) {
    if (j.is_string()) return mask(std::string_view(j.get_ref<const std::string&>()));
    if (j.is_array()) {
        json o = json::array();
        for (const auto& x : j) o.push_back(maskJson(x));
        return o;
    }
    if (j.is_object()) {
        json o = json::object();
        for (const auto& [k, v] : j.items()) o[mask(std::string_view(k))] = maskJson(v);
        return o;
    }
    return j;
}

namespace {

// Each placeholder-shaped word in text: (offset, word).
std::vector<std::pair<std::size_t, std::string>> placeholderWords(std::string_view text) {
    std::vector<std::pair<std::size_t, std::string>> out;
    std::size_t i = 0;
    while (i < text.size()) {
        if (!isAlnum(text[i])) {
            ++i;
            continue;
        }
        std::size_t e = i;
        while (e < text.size() && (isAlnum(text[e]) || text[e] == '_')) ++e;
        // prefix-digits, not inside a longer word or name (my-pod-1, pod-1-x)
        // my-pod-1 is a name, -pod-1 a placeholder after a dash
        const bool after_word = i > 0 && (isAlnum(text[i - 1]) || text[i - 1] == '_' ||
                                          (text[i - 1] == '-' && i > 1 && (isAlnum(text[i - 2]) || text[i - 2] == '_')));
        if (!after_word && e < text.size() && text[e] == '-' && e + 1 < text.size() && text[e + 1] >= '0' &&
            text[e + 1] <= '9') {
            std::size_t d = e + 1;
            while (d < text.size() && text[d] >= '0' && text[d] <= '9') ++d;
            const bool continues = d < text.size() && (isAlnum(text[d]) || text[d] == '_' ||
                                                       (text[d] == '-' && d + 1 < text.size() && isAlnum(text[d + 1])));
            const std::string w(text.substr(i, d - i));
            if (!continues && placeholderShape(w)) {
                out.emplace_back(i, w);
                i = d;
                continue;
            }
        }
        i = e;
    }
    return out;
}

}  // namespace

std::string Anonymizer::restore(std::string_view text) const {
    std::string out;
    std::size_t at = 0;
    for (const auto& [off, w] : placeholderWords(text)) {
        const auto it = to_original_.find(w);
        if (it == to_original_.end()) continue;
        out += text.substr(at, off - at);
        out += it->second;
        at = off + w.size();
    }
    out += text.substr(at);
    return out;
}

json Anonymizer::restoreJson(const json& j) const {
    if (j.is_string()) return restore(std::string_view(j.get_ref<const std::string&>()));
    if (j.is_array()) {
        json o = json::array();
        for (const auto& x : j) o.push_back(restoreJson(x));
        return o;
    }
    if (j.is_object()) {
        json o = json::object();
        for (const auto& [k, v] : j.items()) o[restore(std::string_view(k))] = restoreJson(v);
        return o;
    }
    return j;
}

std::vector<std::pair<std::size_t, std::string>> Anonymizer::unknownPlaceholders(std::string_view text) const {
    auto words = placeholderWords(text);
    std::erase_if(words, [&](const auto& w) { return to_original_.contains(w.second); });
    return words;
}

std::vector<std::string> Anonymizer::originals() const {
    std::vector<std::string> v;
    for (const auto& [ph, o] : to_original_)
        if (o != ph) v.push_back(o);
    return v;
}

}  // namespace netprobe::assistant
