#include <netprobe/k8s/netpol.hpp>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <charconv>
#include <limits>
#include <tuple>
#include <utility>

namespace netprobe::k8s {

using nlohmann::json;

namespace {

constexpr std::string_view kNamespaceNameLabel = "kubernetes.io/metadata.name";
constexpr std::size_t kMaxQuoted = 64;  // user text echoed in an error message

// Unexpected<Error> from a message; the callers prefix the field path.
std::unexpected<Error> fail(std::string msg) { return std::unexpected(makeError(std::move(msg))); }

// "\"value\"", cut so that hostile input cannot make an error message unbounded.
std::string quoteText(std::string_view s) {
    if (s.size() > kMaxQuoted) return "\"" + std::string(s.substr(0, kMaxQuoted)) + "...\"";
    return "\"" + std::string(s) + "\"";
}

std::string bounded(std::string s, std::size_t max) {
    if (s.size() > max) s.resize(max);
    return s;
}

// obj[key], or nullptr when obj is not an object, the key is absent or its value is null
// (the API treats an explicit null like an absent field).
const json* field(const json& obj, const char* key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    if (it == obj.end() || it->is_null()) return nullptr;
    return &*it;
}

std::string str(const json& obj, const char* key) {
    const json* v = field(obj, key);
    return v && v->is_string() ? v->get<std::string>() : std::string();
}

// An integer JSON value (signed or unsigned; 80.0 is not one), or nullopt.
std::optional<std::int64_t> integer(const json& v) {
    if (v.is_number_unsigned()) {
        constexpr auto kMax = std::numeric_limits<std::int64_t>::max();
        const auto u = v.get<std::uint64_t>();
        return u > static_cast<std::uint64_t>(kMax) ? kMax : static_cast<std::int64_t>(u);
    }
    if (v.is_number_integer()) return v.get<std::int64_t>();
    return std::nullopt;
}

std::string typeName(const json& v) { return v.type_name(); }

// IANA_SVC_NAME, the API's rule for a named port: 1-15 of [a-z0-9-], at least one letter,
// no hyphen at either end nor two in a row.
bool validPortName(std::string_view s) {
    if (s.empty() || s.size() > 15 || s.front() == '-' || s.back() == '-') return false;
    bool letter = false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c >= 'a' && c <= 'z') letter = true;
        else if (c == '-') {
            if (s[i - 1] == '-') return false;
        } else if (c < '0' || c > '9') return false;
    }
    return letter;
}

std::optional<std::uint8_t> policyProtocol(std::string_view p) {
    if (p == "TCP") return 6;
    if (p == "UDP") return 17;
    if (p == "SCTP") return 132;
    return std::nullopt;
}

Result<LabelSelector> parseSelector(const json& j, const std::string& path) {
    if (!j.is_object()) return fail(path + ": expected an object, got " + typeName(j));
    LabelSelector sel;
    if (const json* ml = field(j, "matchLabels")) {
        if (!ml->is_object()) return fail(path + ".matchLabels: expected an object, got " + typeName(*ml));
        for (auto it = ml->begin(); it != ml->end(); ++it) {
            if (!it.value().is_string())
                return fail(path + ".matchLabels." + bounded(it.key(), kMaxQuoted) + ": expected a string, got " +
                            typeName(it.value()));
            sel.match_labels.emplace(it.key(), it.value().get<std::string>());
        }
    }
    if (const json* me = field(j, "matchExpressions")) {
        if (!me->is_array()) return fail(path + ".matchExpressions: expected an array, got " + typeName(*me));
        for (std::size_t i = 0; i < me->size(); ++i) {
            const json& e = (*me)[i];
            const std::string ep = path + ".matchExpressions[" + std::to_string(i) + "]";
            if (!e.is_object()) return fail(ep + ": expected an object, got " + typeName(e));
            LabelRequirement r;
            const json* key = field(e, "key");
            if (!key || !key->is_string() || key->get_ref<const std::string&>().empty())
                return fail(ep + ".key: a non-empty string is required");
            r.key = key->get<std::string>();
            const json* op = field(e, "operator");
            if (!op || !op->is_string()) return fail(ep + ".operator: a string is required");
            const auto& ops = op->get_ref<const std::string&>();
            if (ops == "In") r.op = LabelRequirement::Op::In;
            else if (ops == "NotIn") r.op = LabelRequirement::Op::NotIn;
            else if (ops == "Exists") r.op = LabelRequirement::Op::Exists;
            else if (ops == "DoesNotExist") r.op = LabelRequirement::Op::DoesNotExist;
            else return fail(ep + ".operator: unknown operator " + quoteText(ops));
            if (const json* vals = field(e, "values")) {
                if (!vals->is_array()) return fail(ep + ".values: expected an array, got " + typeName(*vals));
                for (std::size_t k = 0; k < vals->size(); ++k) {
                    if (!(*vals)[k].is_string())
                        return fail(ep + ".values[" + std::to_string(k) + "]: expected a string, got " +
                                    typeName((*vals)[k]));
                    r.values.push_back((*vals)[k].get<std::string>());
                }
            }
            const bool set_op = r.op == LabelRequirement::Op::In || r.op == LabelRequirement::Op::NotIn;
            if (set_op && r.values.empty()) return fail(ep + ".values: must be non-empty for operator " + ops);
            if (!set_op && !r.values.empty()) return fail(ep + ".values: must be empty for operator " + ops);
            sel.match_expressions.push_back(std::move(r));
        }
    }
    return sel;
}

Result<std::optional<LabelSelector>> parseOptionalSelector(const json& obj, const char* key, const std::string& path) {
    const json* j = field(obj, key);
    if (!j) return std::optional<LabelSelector>{};
    auto sel = parseSelector(*j, path + "." + key);
    if (!sel) return std::unexpected(sel.error());
    return std::optional<LabelSelector>(std::move(*sel));
}

Result<IpPrefix> parsePrefixField(const json& j, const std::string& path) {
    if (!j.is_string()) return fail(path + ": expected a CIDR string, got " + typeName(j));
    auto p = parseIpPrefix(j.get_ref<const std::string&>());
    if (!p) return fail(path + ": invalid CIDR " + quoteText(j.get_ref<const std::string&>()));
    return *p;
}

Result<IpBlock> parseIpBlock(const json& j, const std::string& path) {
    if (!j.is_object()) return fail(path + ": expected an object, got " + typeName(j));
    const json* cidr = field(j, "cidr");
    if (!cidr) return fail(path + ".cidr: required");
    auto c = parsePrefixField(*cidr, path + ".cidr");
    if (!c) return std::unexpected(c.error());
    IpBlock b{*c, {}};
    if (const json* ex = field(j, "except")) {
        if (!ex->is_array()) return fail(path + ".except: expected an array, got " + typeName(*ex));
        for (std::size_t i = 0; i < ex->size(); ++i) {
            const std::string xp = path + ".except[" + std::to_string(i) + "]";
            auto e = parsePrefixField((*ex)[i], xp);
            if (!e) return std::unexpected(e.error());
            // The API requires a strict subset: a hole as large as the block would leave nothing.
            if (e->v4 != b.cidr.v4 || e->len <= b.cidr.len || !b.cidr.contains(e->addr))
                return fail(xp + ": " + e->str() + " is not strictly inside " + b.cidr.str());
            b.except.push_back(*e);
        }
    }
    return b;
}

Result<PolicyPeer> parsePeer(const json& j, const std::string& path) {
    if (!j.is_object()) return fail(path + ": expected an object, got " + typeName(j));
    PolicyPeer peer;
    auto ps = parseOptionalSelector(j, "podSelector", path);
    if (!ps) return std::unexpected(ps.error());
    peer.pod_selector = std::move(*ps);
    auto ns = parseOptionalSelector(j, "namespaceSelector", path);
    if (!ns) return std::unexpected(ns.error());
    peer.namespace_selector = std::move(*ns);
    if (const json* ib = field(j, "ipBlock")) {
        auto b = parseIpBlock(*ib, path + ".ipBlock");
        if (!b) return std::unexpected(b.error());
        peer.ip_block = std::move(*b);
    }
    const bool selectors = peer.pod_selector || peer.namespace_selector;
    if (!selectors && !peer.ip_block) return fail(path + ": must specify podSelector, namespaceSelector or ipBlock");
    if (selectors && peer.ip_block)
        return fail(path + ": ipBlock cannot be combined with podSelector or namespaceSelector");
    return peer;
}

Result<PolicyPort> parsePort(const json& j, const std::string& path) {
    if (!j.is_object()) return fail(path + ": expected an object, got " + typeName(j));
    PolicyPort p;
    if (const json* proto = field(j, "protocol")) {
        if (!proto->is_string()) return fail(path + ".protocol: expected a string, got " + typeName(*proto));
        auto n = policyProtocol(proto->get_ref<const std::string&>());
        if (!n) return fail(path + ".protocol: unknown protocol " + quoteText(proto->get_ref<const std::string&>()) +
                            " (TCP, UDP or SCTP)");
        p.protocol = *n;
    }
    if (const json* port = field(j, "port")) {
        if (port->is_string()) {
            const auto& name = port->get_ref<const std::string&>();
            if (!validPortName(name)) return fail(path + ".port: invalid port name " + quoteText(name));
            p.port_name = name;
        } else if (auto v = integer(*port)) {
            if (*v < 1 || *v > 65535) return fail(path + ".port: " + std::to_string(*v) + " is not in 1-65535");
            p.port = static_cast<std::uint16_t>(*v);
        } else {
            return fail(path + ".port: expected an integer or a port name, got " + typeName(*port));
        }
    }
    if (const json* end = field(j, "endPort")) {
        auto v = integer(*end);
        if (!v) return fail(path + ".endPort: expected an integer, got " + typeName(*end));
        if (!p.port_name.empty()) return fail(path + ".endPort: not allowed with a named port");
        if (!p.port) return fail(path + ".endPort: requires a numeric port");
        if (*v < *p.port || *v > 65535)
            return fail(path + ".endPort: " + std::to_string(*v) + " must be in " + std::to_string(*p.port) + "-65535");
        p.end_port = static_cast<std::uint16_t>(*v);
    }
    return p;
}

Result<std::vector<PolicyRule>> parseRules(const json& spec, const char* key, const char* peers_key) {
    std::vector<PolicyRule> rules;
    const json* list = field(spec, key);
    if (!list) return rules;
    const std::string base = std::string("spec.") + key;
    if (!list->is_array()) return fail(base + ": expected an array, got " + typeName(*list));
    for (std::size_t i = 0; i < list->size(); ++i) {
        const json& r = (*list)[i];
        const std::string rp = base + "[" + std::to_string(i) + "]";
        if (!r.is_object()) return fail(rp + ": expected an object, got " + typeName(r));
        PolicyRule rule;
        if (const json* peers = field(r, peers_key)) {
            const std::string pp = rp + "." + peers_key;
            if (!peers->is_array()) return fail(pp + ": expected an array, got " + typeName(*peers));
            for (std::size_t k = 0; k < peers->size(); ++k) {
                auto peer = parsePeer((*peers)[k], pp + "[" + std::to_string(k) + "]");
                if (!peer) return std::unexpected(peer.error());
                rule.peers.push_back(std::move(*peer));
            }
        }
        if (const json* ports = field(r, "ports")) {
            const std::string pp = rp + ".ports";
            if (!ports->is_array()) return fail(pp + ": expected an array, got " + typeName(*ports));
            for (std::size_t k = 0; k < ports->size(); ++k) {
                auto port = parsePort((*ports)[k], pp + "[" + std::to_string(k) + "]");
                if (!port) return std::unexpected(port.error());
                rule.ports.push_back(std::move(*port));
            }
        }
        rules.push_back(std::move(rule));
    }
    return rules;
}

Result<NetworkPolicy> parsePolicy(const json& obj, NetworkPolicy pol) {
    const json* spec = field(obj, "spec");
    if (!spec || !spec->is_object()) return fail("spec: an object is required");
    if (const json* ps = field(*spec, "podSelector")) {
        auto sel = parseSelector(*ps, "spec.podSelector");
        if (!sel) return std::unexpected(sel.error());
        pol.pod_selector = std::move(*sel);
    }  // absent: the empty selector, every pod of the namespace
    auto ingress = parseRules(*spec, "ingress", "from");
    if (!ingress) return std::unexpected(ingress.error());
    pol.ingress = std::move(*ingress);
    auto egress = parseRules(*spec, "egress", "to");
    if (!egress) return std::unexpected(egress.error());
    pol.egress = std::move(*egress);

    const json* types = field(*spec, "policyTypes");
    if (types && !types->is_array()) return fail("spec.policyTypes: expected an array, got " + typeName(*types));
    if (types && !types->empty()) {
        for (std::size_t i = 0; i < types->size(); ++i) {
            const json& t = (*types)[i];
            const std::string tp = "spec.policyTypes[" + std::to_string(i) + "]";
            if (!t.is_string()) return fail(tp + ": expected a string, got " + typeName(t));
            const auto& s = t.get_ref<const std::string&>();
            if (s == "Ingress") pol.affects_ingress = true;
            else if (s == "Egress") pol.affects_egress = true;
            else return fail(tp + ": unknown policy type " + quoteText(s) + " (Ingress or Egress)");
        }
    } else {
        // The API server's defaulting: Ingress always, Egress when egress rules are present
        // (an empty egress list does not count: to deny all egress, policyTypes must say so).
        pol.affects_ingress = true;
        pol.affects_egress = !pol.egress.empty();
    }
    return pol;
}

}  // namespace

// ---- selectors, prefixes ----

bool selectorMatches(const LabelSelector& sel, const std::map<std::string, std::string>& labels) {
    for (const auto& [k, v] : sel.match_labels) {
        auto it = labels.find(k);
        if (it == labels.end() || it->second != v) return false;
    }
    for (const auto& r : sel.match_expressions) {
        auto it = labels.find(r.key);
        const bool has = it != labels.end();
        const bool listed = has && std::find(r.values.begin(), r.values.end(), it->second) != r.values.end();
        switch (r.op) {
        case LabelRequirement::Op::In:
            if (!listed) return false;
            break;
        case LabelRequirement::Op::NotIn:  // an absent key is "not in" any set
            if (listed) return false;
            break;
        case LabelRequirement::Op::Exists:
            if (!has) return false;
            break;
        case LabelRequirement::Op::DoesNotExist:
            if (has) return false;
            break;
        }
    }
    return true;
}

bool IpPrefix::contains(const util::Addr16& a) const {
    return util::isV4Mapped(a) == v4 && util::maskAddr(a, len) == addr;
}

std::string IpPrefix::str() const {
    return util::formatAddr(addr) + "/" + std::to_string(v4 ? len - 96 : len);
}

std::optional<IpPrefix> parseIpPrefix(std::string_view text) {
    const auto slash = text.find('/');
    if (slash == std::string_view::npos) return std::nullopt;
    const auto addr_text = text.substr(0, slash);
    auto a = util::parseAddr(addr_text);
    if (!a) return std::nullopt;
    const bool v4 = addr_text.find(':') == std::string_view::npos;
    const auto bits_text = text.substr(slash + 1);
    unsigned bits = 0;
    auto [ptr, ec] = std::from_chars(bits_text.data(), bits_text.data() + bits_text.size(), bits);
    const bool whole = !bits_text.empty() && ec == std::errc() && ptr == bits_text.data() + bits_text.size();
    if (!whole || bits > (v4 ? 32u : 128u)) return std::nullopt;
    IpPrefix p;
    p.v4 = v4;
    p.len = static_cast<std::uint8_t>(v4 ? bits + 96 : bits);
    p.addr = util::maskAddr(*a, p.len);
    return p;
}

bool IpBlock::contains(const util::Addr16& a) const {
    if (!cidr.contains(a)) return false;
    return std::none_of(except.begin(), except.end(), [&](const IpPrefix& e) { return e.contains(a); });
}

std::string NetworkPolicy::id() const { return ns + "/" + name; }

// ---- parsing ----

Result<NetworkPolicy> networkPolicyFromJson(const json& obj) {
    if (!obj.is_object()) return fail("networkpolicy: expected an object, got " + typeName(obj));
    const json* md = field(obj, "metadata");
    NetworkPolicy pol;
    if (md) {
        pol.ns = str(*md, "namespace");
        pol.name = str(*md, "name");
        pol.uid = str(*md, "uid");
        pol.resource_version = str(*md, "resourceVersion");
    }
    if (pol.name.empty()) return fail("networkpolicy without metadata.name");
    const std::string what = "networkpolicy " + bounded(pol.ns, 63) + "/" + bounded(pol.name, 253);
    // Namespaced: the namespace scopes both spec.podSelector and selector-only peers.
    if (pol.ns.empty()) return fail(what + " without metadata.namespace");
    if (pol.uid.empty()) return fail(what + " without metadata.uid");
    auto parsed = parsePolicy(obj, std::move(pol));
    if (!parsed) return fail(what + ": " + parsed.error().message);
    return parsed;
}

// ---- evaluation ----

std::string_view toString(Decision d) {
    switch (d) {
    case Decision::NotApplicable: return "not_applicable";
    case Decision::NotSelected: return "not_selected";
    case Decision::Allowed: return "allowed";
    case Decision::Denied: return "denied";
    }
    return "not_applicable";
}

std::string_view toString(Exemption e) {
    switch (e) {
    case Exemption::None: return "none";
    case Exemption::LocalNode: return "local_node";
    case Exemption::SamePod: return "same_pod";
    }
    return "none";
}

PolicySet::PolicySet(std::vector<NetworkPolicy> policies, const std::vector<PodInfo>& pods,
                     const std::vector<NamespaceInfo>& namespaces, const std::vector<NodeAddresses>& nodes,
                     PolicySetOptions options)
    : options_(options), policies_(std::move(policies)) {
    // Ordered by "ns/name": per-pod policy lists, hence verdict names, come out sorted.
    std::sort(policies_.begin(), policies_.end(), [](const NetworkPolicy& a, const NetworkPolicy& b) {
        return std::tie(a.ns, a.name) < std::tie(b.ns, b.name);
    });

    for (const auto& n : namespaces) {
        auto labels = n.labels;
        labels.try_emplace(std::string(kNamespaceNameLabel), n.name);
        ns_labels_.insert_or_assign(n.name, std::move(labels));
    }
    for (const auto& n : nodes) {
        auto& addrs = node_addrs_[n.name];
        addrs.insert(addrs.end(), n.addrs.begin(), n.addrs.end());
    }

    std::unordered_map<std::string, std::vector<std::uint32_t>> by_ns;
    for (const auto& p : pods) {
        if (p.host_network) {
            // Its IPs are its node's: kept for the local-node exemption, never a pod.
            if (!p.node.empty()) {
                auto& addrs = node_addrs_[p.node];
                addrs.insert(addrs.end(), p.ips.begin(), p.ips.end());
            }
            continue;
        }
        if (p.ips.empty()) continue;  // ended or not started: never in a flow
        const auto idx = static_cast<std::uint32_t>(pods_.size());
        pods_.push_back(Pod{bounded(p.ns + "/" + p.name, SideVerdict::kMaxNameLength), p.ns, p.node, p.labels, p.ports,
                            {}, {}});
        by_ns[p.ns].push_back(idx);
        for (const auto& ip : p.ips) by_ip_.insert_or_assign(ip, idx);
        if (!ns_labels_.contains(p.ns))
            ns_labels_.emplace(p.ns, std::map<std::string, std::string>{{std::string(kNamespaceNameLabel), p.ns}});
    }
    for (auto& [node, addrs] : node_addrs_) {
        std::sort(addrs.begin(), addrs.end());
        addrs.erase(std::unique(addrs.begin(), addrs.end()), addrs.end());
    }

    // Which policies select which pod, once: policies only select pods of their own namespace.
    for (std::uint32_t i = 0; i < policies_.size(); ++i) {
        const auto& pol = policies_[i];
        if (!pol.affects_ingress && !pol.affects_egress) continue;
        auto it = by_ns.find(pol.ns);
        if (it == by_ns.end()) continue;
        for (auto idx : it->second) {
            auto& pod = pods_[idx];
            if (!selectorMatches(pol.pod_selector, pod.labels)) continue;
            if (pol.affects_ingress) pod.ingress_policies.push_back(i);
            if (pol.affects_egress) pod.egress_policies.push_back(i);
        }
    }
}

const PolicySet::Pod* PolicySet::podByIp(const util::Addr16& a) const {
    auto it = by_ip_.find(a);
    return it == by_ip_.end() ? nullptr : &pods_[it->second];
}

const std::map<std::string, std::string>& PolicySet::namespaceLabels(const std::string& ns) const {
    static const std::map<std::string, std::string> kNone;  // immutable; every pod's namespace is in ns_labels_
    auto it = ns_labels_.find(ns);
    return it == ns_labels_.end() ? kNone : it->second;
}

bool PolicySet::isNodeOf(const Pod& pod, const util::Addr16& a) const {
    auto it = node_addrs_.find(pod.node);
    return it != node_addrs_.end() && std::binary_search(it->second.begin(), it->second.end(), a);
}

bool PolicySet::peerMatches(const NetworkPolicy& pol, const PolicyPeer& peer, const util::Addr16& addr,
                            const Pod* pod) const {
    if (peer.ip_block) {
        if (pod && !options_.ip_blocks_match_pod_ips) return false;
        return peer.ip_block->contains(addr);
    }
    if (!pod) return false;  // selectors only ever select pods
    if (peer.namespace_selector) {
        if (!selectorMatches(*peer.namespace_selector, namespaceLabels(pod->ns))) return false;
    } else if (pod->ns != pol.ns) {
        return false;  // a podSelector alone stays in the policy's namespace
    }
    return !peer.pod_selector || selectorMatches(*peer.pod_selector, pod->labels);
}

namespace {

// owner_ports: the container ports of the pod a named port resolves on; null when the
// destination is no known pod (a named port then matches nothing).
bool portMatches(const PolicyPort& p, std::uint8_t proto, std::uint16_t dport,
                 const std::vector<ContainerPort>* owner_ports) {
    if (p.protocol != proto) return false;
    if (!p.port_name.empty()) {
        if (!owner_ports) return false;
        return std::any_of(owner_ports->begin(), owner_ports->end(), [&](const ContainerPort& c) {
            return c.name == p.port_name && c.protocol == p.protocol && c.port == dport;
        });
    }
    if (!p.port) return true;
    return dport >= *p.port && dport <= p.end_port.value_or(*p.port);
}

}  // namespace

SideVerdict PolicySet::side(Dir dir, const Pod& self, const Pod* other,
                            const util::Addr16& other_addr, std::uint8_t proto, std::uint16_t dport) const {
    SideVerdict out;
    out.pod = self.id;
    const auto& selecting = dir == Dir::Ingress ? self.ingress_policies : self.egress_policies;
    if (selecting.empty()) {
        out.decision = Decision::NotSelected;
        return out;
    }
    if (other == &self || isNodeOf(self, other_addr)) {
        out.decision = Decision::Allowed;
        out.exemption = other == &self ? Exemption::SamePod : Exemption::LocalNode;
        return out;
    }
    // The destination port belongs to the selected pod (ingress) or to the peer (egress).
    const Pod* port_owner = dir == Dir::Ingress ? &self : other;
    const std::vector<ContainerPort>* owner_ports = port_owner ? &port_owner->ports : nullptr;
    std::vector<std::uint32_t> allowing;
    for (auto idx : selecting) {
        const auto& pol = policies_[idx];
        const auto& rules = dir == Dir::Ingress ? pol.ingress : pol.egress;
        const bool match = std::any_of(rules.begin(), rules.end(), [&](const PolicyRule& r) {
            const bool peer_ok =
                r.peers.empty() || std::any_of(r.peers.begin(), r.peers.end(), [&](const PolicyPeer& p) {
                    return peerMatches(pol, p, other_addr, other);
                });
            if (!peer_ok) return false;
            return r.ports.empty() || std::any_of(r.ports.begin(), r.ports.end(), [&](const PolicyPort& p) {
                       return portMatches(p, proto, dport, owner_ports);
                   });
        });
        if (match) allowing.push_back(idx);
    }
    const auto& named = allowing.empty() ? selecting : allowing;
    out.decision = allowing.empty() ? Decision::Denied : Decision::Allowed;
    out.policy_count = named.size();
    for (std::size_t i = 0; i < named.size() && i < SideVerdict::kMaxPolicyNames; ++i)
        out.policies.push_back(bounded(policies_[named[i]].id(), SideVerdict::kMaxNameLength));
    return out;
}

FlowVerdict PolicySet::evaluate(const util::Addr16& src, const util::Addr16& dst, std::uint8_t proto,
                                std::uint16_t dport) const {
    FlowVerdict v;
    const Pod* s = podByIp(src);
    const Pod* d = podByIp(dst);
    if (s) v.egress = side(Dir::Egress, *s, d, dst, proto, dport);
    if (d) v.ingress = side(Dir::Ingress, *d, s, src, proto, dport);
    v.allowed = v.egress.permits() && v.ingress.permits();
    return v;
}

std::vector<PolicySet::PolicySummary> PolicySet::summaries(std::size_t max_pods) const {
    std::vector<PolicySummary> out(policies_.size());
    for (std::size_t i = 0; i < policies_.size(); ++i) {
        out[i].ns = policies_[i].ns;
        out[i].name = policies_[i].name;
        out[i].ingress = policies_[i].affects_ingress;
        out[i].egress = policies_[i].affects_egress;
    }
    // pods_[].{ingress,egress}_policies hold the policies whose podSelector selects the pod
    // (for the directions they affect); a policy of neither direction selects nothing.
    for (const auto& pod : pods_) {
        auto add = [&](std::uint32_t idx) {
            auto& sum = out[idx];
            ++sum.selected_pods;
            if (sum.pods.size() < max_pods) sum.pods.push_back(pod.id);
        };
        std::size_t a = 0, b = 0;  // the union of the two sorted lists, each policy once
        const auto& in = pod.ingress_policies;
        const auto& eg = pod.egress_policies;
        while (a < in.size() || b < eg.size()) {
            if (b == eg.size() || (a < in.size() && in[a] < eg[b])) add(in[a++]);
            else if (a == in.size() || eg[b] < in[a]) add(eg[b++]);
            else {
                add(in[a++]);
                ++b;
            }
        }
    }
    for (auto& sum : out) std::sort(sum.pods.begin(), sum.pods.end());
    return out;
}

PolicySet::Sizes PolicySet::sizes() const {
    Sizes s{policies_.size(), pods_.size(), by_ip_.size(), ns_labels_.size(), 0};
    for (const auto& [node, addrs] : node_addrs_) s.node_addrs += addrs.size();
    return s;
}

}  // namespace netprobe::k8s
