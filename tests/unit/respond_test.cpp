// Automatic response: planning from events, the generated NetworkPolicies (evaluated with
// the Kubernetes semantics of k8s::PolicySet, whose cases come from the documentation), the
// stage's merging, expiry, supersession, refusal and verification, and the export.
#include <gtest/gtest.h>

#include <set>

#include <nlohmann/json.hpp>
#include <yaml-cpp/yaml.h>

#include <netprobe/analysis/policy.hpp>
#include <netprobe/analysis/respond/stage.hpp>
#include <netprobe/analysis/security/stage.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/k8s/netpol.hpp>
#include <netprobe/k8s/policy_publisher.hpp>
#include <netprobe/k8s/store.hpp>
#include <netprobe/metrics/respond.hpp>


namespace {

using namespace netprobe;
using namespace netprobe::analysis;
using respond::Action;
using security::EventType;
using security::SecurityEvent;
using security::Severity;
using std::chrono::seconds;

util::Addr16 ip(const char* s) { return *util::parseAddr(s); }

const util::Addr16 kWeb = ip("198.18.1.12"), kWeb2 = ip("198.18.1.13"), kUi = ip("198.18.1.11");
const util::Addr16 kRemotePod = ip("198.18.2.7"), kAttacker = ip("198.18.9.9"), kAttacker6 = ip("fd6e:7072::99");
const util::Addr16 kOther = ip("198.18.9.10");

const std::map<std::string, std::string> kWebLabels = {{"app", "web"}, {"tier", "front"}};

respond::PodLookup lookup() {
    return [](const util::Addr16& a) -> std::optional<respond::PodRef> {
        if (a == kWeb) return respond::PodRef{"shop", "web-1", "n1", kWebLabels, {kWeb}, true};
        if (a == kWeb2) return respond::PodRef{"shop", "web-2", "n1", kWebLabels, {kWeb2}, true};
        if (a == kUi) return respond::PodRef{"frontend", "ui", "n1", {{"app", "ui"}}, {kUi}, true};
        if (a == kRemotePod) return respond::PodRef{"shop", "batch", "n2", {{"app", "batch"}}, {kRemotePod}, false};
        return std::nullopt;
    };
}

respond::ResponseConfig config(respond::Mode mode = respond::Mode::On) {
    respond::ResponseConfig c;
    c.mode = mode;
    c.ttl = seconds(60);
    c.node = "n1";
    return c;
}

const auto kT0 = std::chrono::system_clock::time_point{} + std::chrono::hours(24 * 20000);

SecurityEvent scan(std::uint64_t id, util::Addr16 src, std::vector<util::Addr16> targets,
                   Severity sev = Severity::Medium, std::chrono::system_clock::time_point at = kT0) {
    SecurityEvent e;
    e.id = id;
    e.type = EventType::PortScan;
    e.severity = sev;
    e.src = src;
    e.dst = targets.front();
    e.targets = std::move(targets);
    e.detected_at = e.first_seen = e.last_seen = at;
    return e;
}

SecurityEvent intel(std::uint64_t id, util::Addr16 local, util::Addr16 remote, bool outbound) {
    SecurityEvent e;
    e.id = id;
    e.type = EventType::ThreatIntelMatch;
    e.severity = Severity::High;
    e.src = outbound ? local : remote;
    e.dst = outbound ? remote : local;
    e.evidence["direction"] = std::string(outbound ? "outbound" : "inbound");
    e.detected_at = e.first_seen = e.last_seen = kT0;
    return e;
}

const respond::Initiated kNobody = [](const util::Addr16&, const util::Addr16&) { return false; };

TEST(RespondPlan, ScanOfLocalPodsIsolatesTheScannerOncePerSelector) {
    // two replicas (same labels) and a pod of another node scanned: one isolate request
    auto r = respond::planFor(scan(1, kAttacker, {kWeb, kWeb2, kRemotePod}), config(), lookup(), kNobody);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].action, Action::Isolate);
    EXPECT_EQ(r[0].ns, "shop");
    EXPECT_EQ(r[0].selector, kWebLabels);
    EXPECT_EQ(r[0].pod, "shop/web-1");
    EXPECT_EQ(r[0].attackers, std::vector<util::Addr16>{kAttacker});
    EXPECT_EQ(r[0].attacker_is_pod, std::vector<bool>{false});
    // a pod of another node scanning: isolated, and known as a pod
    r = respond::planFor(scan(2, kRemotePod, {kWeb}), config(), lookup(), kNobody);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].attacker_is_pod, std::vector<bool>{true});
}

TEST(RespondPlan, FiltersByTypeSeverityModeAndLocality) {
    EXPECT_TRUE(respond::planFor(scan(1, kAttacker, {kWeb}, Severity::Low), config(), lookup(), kNobody).empty());
    EXPECT_TRUE(respond::planFor(scan(1, kAttacker, {kWeb}), config(respond::Mode::Off), lookup(), kNobody).empty());
    auto c = config();
    c.events = {EventType::SynFlood};
    EXPECT_TRUE(respond::planFor(scan(1, kAttacker, {kWeb}), c, lookup(), kNobody).empty());
    // no pod of this node involved
    EXPECT_TRUE(respond::planFor(scan(1, kAttacker, {kRemotePod, kOther}), config(), lookup(), kNobody).empty());
    // a surge names no attacker
    auto e = scan(1, kAttacker, {kWeb});
    e.type = EventType::TrafficSurge;
    c.events = {EventType::TrafficSurge};
    EXPECT_TRUE(respond::planFor(e, c, lookup(), kNobody).empty());
}

TEST(RespondPlan, LocalAttackersAreQuarantined) {
    auto r = respond::planFor(scan(1, kUi, {kOther}), config(), lookup(), kNobody);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].action, Action::Quarantine);
    EXPECT_EQ(r[0].pod, "frontend/ui");
    auto c = config();
    c.quarantine = false;
    EXPECT_TRUE(respond::planFor(scan(1, kUi, {kOther}), c, lookup(), kNobody).empty());
}

TEST(RespondPlan, OutboundIntelQuarantinesOnlyAPodThatOpenedTheConversation) {
    const auto e = intel(1, kUi, kAttacker, true);
    EXPECT_TRUE(respond::planFor(e, config(), lookup(), kNobody).empty());  // ui only answered
    respond::Initiated opened = [](const util::Addr16& c, const util::Addr16& s) { return c == kUi && s == kAttacker; };
    auto r = respond::planFor(e, config(), lookup(), opened);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].action, Action::Quarantine);
    // inbound: the indicator isolated from the pod
    r = respond::planFor(intel(2, kWeb, kAttacker, false), config(), lookup(), kNobody);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].action, Action::Isolate);
    EXPECT_EQ(r[0].attackers, std::vector<util::Addr16>{kAttacker});
}

TEST(RespondPlan, FloodIsolatesTheTopSenders) {
    SecurityEvent e;
    e.id = 5;
    e.type = EventType::SynFlood;
    e.severity = Severity::High;
    e.dst = kWeb;
    for (int i = 0; i < 8; ++i) e.top_sources.push_back({ip(("198.18.7." + std::to_string(i + 1)).c_str()), 100u - i, 0});
    e.last_seen = kT0;
    auto r = respond::planFor(e, config(), lookup(), kNobody);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].attackers.size(), 5u);
    EXPECT_EQ(r[0].attackers[0], ip("198.18.7.1"));
}

TEST(RespondPlan, NamesAreStableAndValid) {
    const auto a = respond::policyName(Action::Isolate, "shop", kWebLabels);
    EXPECT_EQ(a, respond::policyName(Action::Isolate, "shop", kWebLabels));
    EXPECT_NE(a, respond::policyName(Action::Isolate, "shop", {{"app", "web"}}));
    EXPECT_NE(a, respond::policyName(Action::Isolate, "shop2", kWebLabels));
    EXPECT_EQ(a.size(), std::string("netprobe-isolate-").size() + 8);
    EXPECT_TRUE(respond::policyName(Action::Quarantine, "shop", kWebLabels).starts_with("netprobe-quarantine-"));
    for (char ch : a) EXPECT_TRUE(std::islower(ch) || std::isdigit(ch) || ch == '-') << a;
}

// The generated policies under the Kubernetes semantics (k8s::PolicySet).
struct Cluster {
    std::vector<k8s::PodInfo> pods;
    std::vector<k8s::NamespaceInfo> namespaces;
    Cluster() {
        auto add = [&](const char* ns, const char* name, util::Addr16 a, std::map<std::string, std::string> labels) {
            k8s::PodInfo p;
            p.ns = ns;
            p.name = name;
            p.uid = std::string("uid-") + name;
            p.node = "n1";
            p.ips = {a};
            p.labels = std::move(labels);
            pods.push_back(std::move(p));
        };
        add("shop", "web-1", kWeb, kWebLabels);
        add("shop", "web-2", kWeb2, kWebLabels);
        add("frontend", "ui", kUi, {{"app", "ui"}});
        add("shop", "batch", kRemotePod, {{"app", "batch"}});
        for (const char* n : {"shop", "frontend"}) {
            k8s::NamespaceInfo i;
            i.name = n;
            namespaces.push_back(i);
        }
    }
    std::shared_ptr<const PolicyEvaluator> with(const std::vector<nlohmann::json>& objs, std::uint64_t gen = 1) const {
        std::vector<k8s::NetworkPolicy> pols;
        for (auto o : objs) {
            // what the API server adds on create
            if (!o["metadata"].contains("uid")) o["metadata"]["uid"] = "uid-" + o["metadata"]["name"].get<std::string>();
            auto p = k8s::networkPolicyFromJson(o);
            EXPECT_TRUE(p) << (p ? "" : p.error().what());
            if (p) pols.push_back(*p);
        }
        return k8s::buildPolicyEvaluator(pols, pods, namespaces, {}, {}, gen);
    }
};

respond::PolicySpec isolateSpec(std::vector<respond::Attacker> atk) {
    respond::PolicySpec s;
    s.action = Action::Isolate;
    s.ns = "shop";
    s.name = respond::policyName(Action::Isolate, "shop", kWebLabels);
    s.selector = kWebLabels;
    s.attackers = std::move(atk);
    s.events = {1, 4};
    s.event_types = "port_scan";
    s.pod = "shop/web-1";
    s.node = "n1";
    s.created = kT0;
    s.expires = kT0 + seconds(60);
    return s;
}

TEST(RespondManifest, IsolateDeniesTheAttackersAndAdmitsEveryoneElse) {
    const auto spec = isolateSpec({{kAttacker, false, 1, kT0}, {kAttacker6, false, 1, kT0}});
    const auto m = respond::manifest(spec);
    EXPECT_EQ(m["metadata"]["labels"]["app.kubernetes.io/managed-by"], "netprobe");
    EXPECT_EQ(m["metadata"]["labels"]["netprobe.io/node"], "n1");
    EXPECT_EQ(m["metadata"]["annotations"]["netprobe.io/events"], "1,4");
    EXPECT_EQ(m["metadata"]["annotations"]["netprobe.io/attackers"], "198.18.9.9,fd6e:7072::99");
    Cluster c;
    auto set = c.with({m});
    for (auto victim : {kWeb, kWeb2}) {
        EXPECT_EQ(set->evaluate(kAttacker, victim, 6, 80).ingress.decision, PolicyDecision::Denied);
        EXPECT_EQ(set->evaluate(kAttacker6, victim, 17, 53).ingress.decision, PolicyDecision::Denied);
        auto ok = set->evaluate(kOther, victim, 6, 80);
        EXPECT_EQ(ok.ingress.decision, PolicyDecision::Allowed);
        EXPECT_EQ(ok.ingress.policies, std::vector<std::string>{"shop/" + spec.name});
        EXPECT_EQ(set->evaluate(kUi, victim, 6, 8080).ingress.decision, PolicyDecision::Allowed);
        EXPECT_EQ(set->evaluate(ip("fd6e:7072::5"), victim, 6, 8080).ingress.decision, PolicyDecision::Allowed);
    }
    EXPECT_EQ(set->evaluate(kAttacker, kUi, 6, 80).ingress.decision, PolicyDecision::NotSelected);
}

TEST(RespondManifest, APodAttackerIsLeftOutOfTheAllowedPods) {
    const auto m = respond::manifest(isolateSpec({{kRemotePod, true, 2, kT0}}));
    EXPECT_EQ(m["spec"]["ingress"][0]["from"].size(), 2u);  // no namespaceSelector {}
    auto set = Cluster().with({m});
    EXPECT_EQ(set->evaluate(kRemotePod, kWeb, 6, 80).ingress.decision, PolicyDecision::Denied);
    EXPECT_EQ(set->evaluate(kUi, kWeb, 6, 80).ingress.decision, PolicyDecision::Allowed);  // by ipBlock
}

TEST(RespondManifest, QuarantineAdmitsOnlyDnsOut) {
    respond::PolicySpec s = isolateSpec({});
    s.action = Action::Quarantine;
    s.name = respond::policyName(Action::Quarantine, "frontend", {{"app", "ui"}});
    s.ns = "frontend";
    s.selector = {{"app", "ui"}};
    auto set = Cluster().with({respond::manifest(s)});
    auto dns = set->evaluate(kUi, kOther, 17, 53);
    EXPECT_EQ(dns.egress.decision, PolicyDecision::Allowed);
    EXPECT_EQ(set->evaluate(kUi, kOther, 6, 53).egress.decision, PolicyDecision::Allowed);
    EXPECT_EQ(set->evaluate(kUi, kOther, 6, 443).egress.decision, PolicyDecision::Denied);
    EXPECT_EQ(set->evaluate(kUi, kWeb, 6, 80).egress.decision, PolicyDecision::Denied);
    EXPECT_EQ(set->evaluate(kOther, kUi, 6, 80).ingress.decision, PolicyDecision::Denied);
    EXPECT_EQ(set->evaluate(kWeb, kUi, 17, 53).ingress.decision, PolicyDecision::Denied);
}

TEST(RespondManifest, YamlIsTheSameObject) {
    const auto spec = isolateSpec({{kAttacker, false, 1, kT0}});
    const auto y = YAML::Load(respond::manifestYaml(spec));
    const auto m = respond::manifest(spec);
    EXPECT_EQ(y["metadata"]["name"].as<std::string>(), spec.name);
    EXPECT_EQ(y["spec"]["ingress"][0]["from"][0]["ipBlock"]["cidr"].as<std::string>(), "0.0.0.0/0");
    EXPECT_EQ(y["spec"]["ingress"][0]["from"][0]["ipBlock"]["except"][0].as<std::string>(), "198.18.9.9/32");
    EXPECT_EQ(y["spec"]["ingress"][0]["from"][1]["ipBlock"]["cidr"].as<std::string>(), "::/0");
    EXPECT_TRUE(y["spec"]["ingress"][0]["from"][2]["namespaceSelector"].IsMap());
    EXPECT_EQ(y["metadata"]["annotations"]["netprobe.io/events"].as<std::string>(), "1,4");
    EXPECT_EQ(y["spec"]["podSelector"]["matchLabels"]["tier"].as<std::string>(), "front");
    // a content change changes the hash; the same content does not
    EXPECT_EQ(respond::contentHash(spec), respond::contentHash(isolateSpec({{kAttacker, false, 1, kT0}})));
    EXPECT_NE(respond::contentHash(spec), respond::contentHash(isolateSpec({{kOther, false, 1, kT0}})));
}

// ---- the stage ----

struct StageRig {
    std::shared_ptr<security::SecurityView> sec = std::make_shared<security::SecurityView>();
    std::shared_ptr<respond::ApplierState> applier;
    std::unique_ptr<respond::ResponseStage> stage;
    explicit StageRig(respond::ResponseConfig cfg = config()) {
        respond::ResponseStageOptions o;
        o.config = cfg;
        o.security = [this] { return std::shared_ptr<const security::SecurityView>(sec); };
        o.pods = lookup();
        o.selection = [](const std::string& ns, const std::map<std::string, std::string>& l) {
            std::vector<std::string> out;
            if (ns == "shop" && l == kWebLabels) out = {"shop/web-1", "shop/web-2"};
            return out;
        };
        o.applier = [this] { return std::shared_ptr<const respond::ApplierState>(applier); };
        stage = std::make_unique<respond::ResponseStage>(o);
    }
    void event(SecurityEvent e) {
        auto p = std::make_shared<SecurityEvent>(std::move(e));
        std::erase_if(sec->events, [&](const security::EventPtr& x) { return x->id == p->id; });
        sec->events.insert(sec->events.begin(), p);
    }
    std::shared_ptr<const respond::ResponseView> run(std::chrono::system_clock::time_point at,
                                                     std::shared_ptr<const PolicyView> policy = nullptr) {
        collector::Snapshot s;
        s.taken_at = at;
        Views v;
        v.policy = std::move(policy);
        stage->run(s, v);
        return v.responses;
    }
};

TEST(RespondStage, MergesAttackersExtendsAndExpires) {
    StageRig rig;
    rig.event(scan(1, kAttacker, {kWeb}));
    auto v = rig.run(kT0 + seconds(1));
    ASSERT_EQ(v->active.size(), 1u);
    const auto& r = v->active[0];
    EXPECT_EQ(r.state, "pending");
    EXPECT_EQ(r.spec.expires, kT0 + seconds(60));
    EXPECT_EQ(r.selected_pods, (std::vector<std::string>{"shop/web-1", "shop/web-2"}));
    EXPECT_EQ(r.note, "not checked against the pod's other NetworkPolicies (NetworkPolicy monitoring is off)");
    EXPECT_EQ(r.verification.state, "not_applied");
    const auto h1 = r.hash;
    // a second scanner of the other replica: the same policy, two attackers
    rig.event(scan(2, kOther, {kWeb2}, Severity::High, kT0 + seconds(20)));
    v = rig.run(kT0 + seconds(21));
    ASSERT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->active[0].spec.attackers.size(), 2u);
    EXPECT_EQ(v->active[0].spec.events, (std::vector<std::uint64_t>{1, 2}));
    EXPECT_NE(v->active[0].hash, h1);
    EXPECT_EQ(v->responses_total, 1u);
    // the first attacker expires alone (60 s after its event), the second at 80 s
    v = rig.run(kT0 + seconds(61));
    ASSERT_EQ(v->active.size(), 1u);
    ASSERT_EQ(v->active[0].spec.attackers.size(), 1u);
    EXPECT_EQ(v->active[0].spec.attackers[0].addr, kOther);
    v = rig.run(kT0 + seconds(81));
    EXPECT_TRUE(v->active.empty());
    ASSERT_EQ(v->ended.size(), 1u);
    EXPECT_EQ(v->ended[0].state, "expired");
    EXPECT_EQ(v->expired_total, 1u);
    // an event seen again while active extends its response
    rig.event(scan(3, kAttacker, {kWeb}, Severity::Medium, kT0 + seconds(100)));
    rig.run(kT0 + seconds(100));
    auto again = scan(3, kAttacker, {kWeb}, Severity::Medium, kT0 + seconds(100));
    again.last_seen = kT0 + seconds(150);
    rig.event(again);
    v = rig.run(kT0 + seconds(151));
    ASSERT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->active[0].spec.expires, kT0 + seconds(210));
}

TEST(RespondStage, ExpiryMovesInStepsSoAnActiveEventDoesNotRewriteThePolicy) {
    StageRig rig;
    auto e = scan(1, kAttacker, {kWeb});
    rig.event(e);
    auto v = rig.run(kT0);
    const auto h = v->active[0].hash;
    e.last_seen = kT0 + seconds(3);  // < max(10 s, ttl / 10)
    rig.event(e);
    v = rig.run(kT0 + seconds(3));
    EXPECT_EQ(v->active[0].hash, h);
    e.last_seen = kT0 + seconds(12);
    rig.event(e);
    v = rig.run(kT0 + seconds(12));
    EXPECT_NE(v->active[0].hash, h);
    EXPECT_EQ(v->active[0].spec.expires, kT0 + seconds(72));
}

TEST(RespondStage, QuarantineSupersedesIsolationOfTheSamePods) {
    StageRig rig;
    rig.event(intel(1, kUi, kAttacker, false));  // ui probed by the indicator: isolate
    auto v = rig.run(kT0);
    ASSERT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->active[0].spec.action, Action::Isolate);
    rig.event(scan(2, kUi, {kOther}));  // ui scans: quarantine
    v = rig.run(kT0 + seconds(1));
    ASSERT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->active[0].spec.action, Action::Quarantine);
    ASSERT_EQ(v->ended.size(), 1u);
    EXPECT_EQ(v->ended[0].state, "superseded");
    rig.event(intel(3, kUi, kOther, false));  // a new isolate of ui while quarantined: not made
    v = rig.run(kT0 + seconds(2));
    EXPECT_EQ(v->active.size(), 1u);
}

TEST(RespondStage, RefusesAPodIsolatedByAnotherPolicyAndTheBudget) {
    auto cfg = config();
    cfg.max_policies = 1;
    StageRig rig(cfg);
    auto pv = std::make_shared<PolicyView>();
    pv->synced = true;
    pv->set = Cluster().with({{{"apiVersion", "networking.k8s.io/v1"},
                               {"kind", "NetworkPolicy"},
                               {"metadata", {{"name", "web-only-ui"}, {"namespace", "shop"}}},
                               {"spec",
                                {{"podSelector", {{"matchLabels", {{"app", "web"}}}}},
                                 {"ingress", {{{"from", {{{"podSelector", nlohmann::json::object()}}}}}}}}}}});
    rig.event(scan(1, kAttacker, {kWeb}));
    auto v = rig.run(kT0, pv);
    EXPECT_TRUE(v->active.empty());
    ASSERT_EQ(v->refused.size(), 1u);
    EXPECT_NE(v->refused[0].reason.find("isolated for ingress by shop/web-only-ui"), std::string::npos)
        << v->refused[0].reason;
    // not synced yet: the event waits (neither planned nor refused)
    StageRig later(cfg);
    auto unsynced = std::make_shared<PolicyView>();
    later.event(scan(1, kAttacker, {kUi}));
    v = later.run(kT0, unsynced);
    EXPECT_TRUE(v->active.empty());
    EXPECT_TRUE(v->refused.empty());
    unsynced = std::make_shared<PolicyView>(*pv);
    v = later.run(kT0 + seconds(1), unsynced);
    ASSERT_EQ(v->active.size(), 1u);  // ui is not isolated by anyone
    later.event(scan(2, kOther, {kWeb2}));  // ... but web-2 is; and the budget is 1 anyway
    v = later.run(kT0 + seconds(2), pv);
    EXPECT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->refused_total, 1u);
}

TEST(RespondStage, AppliedStateAndVerification) {
    StageRig rig;
    rig.event(scan(1, kAttacker, {kWeb}));
    auto v = rig.run(kT0);
    const auto spec = v->active[0].spec;
    const std::string id = "shop/" + spec.name;
    // the applier failed once, then created it
    rig.applier = std::make_shared<respond::ApplierState>();
    rig.applier->policies[id] = {"shop", spec.name, false, 0, {}, {}, 403, "HTTP 403: forbidden", 1};
    auto pv = std::make_shared<PolicyView>();
    pv->synced = true;
    pv->set = Cluster().with({});
    v = rig.run(kT0 + seconds(1), pv);
    EXPECT_EQ(v->active[0].state, "failed");
    EXPECT_EQ(v->active[0].error, "HTTP 403: forbidden");
    rig.applier->policies[id] = {"shop", spec.name, true, v->active[0].hash, kT0 + seconds(2), {}, 201, "", 2};
    v = rig.run(kT0 + seconds(2), pv);
    EXPECT_EQ(v->active[0].state, "active");
    EXPECT_EQ(v->active[0].verification.state, "awaiting_policy_set");
    // the policy set holds it (generation 2); a denied conversation of the attacker, enforced
    auto pv2 = std::make_shared<PolicyView>(*pv);
    pv2->set = Cluster().with({respond::manifest(spec)}, 2);
    DeniedFlow d;
    d.client = kAttacker;
    d.server = kWeb;
    d.port = 8080;
    d.server_pod = "shop/web-1";
    d.verdict = pv2->set->evaluate(kAttacker, kWeb, 6, 8080);
    d.enforcement = Enforcement::Enforced;
    d.packets_out = 3;
    d.generation = 2;
    DeniedFlow unrelated = d;
    unrelated.client = kOther;
    unrelated.verdict = PolicyVerdict{};  // denied by something else
    pv2->denied = {d, unrelated};
    v = rig.run(kT0 + seconds(3), pv2);
    const auto& ver = v->active[0].verification;
    EXPECT_TRUE(ver.in_policy_set);
    EXPECT_EQ(ver.policy_generation, 2u);
    EXPECT_EQ(ver.state, "enforced");
    EXPECT_EQ(ver.denied, 1u);
    ASSERT_EQ(ver.flows.size(), 1u);
    EXPECT_EQ(ver.flows[0].packets_out, 3u);
    // answered later: a gap (kept after the conversation left the policy view's list)
    auto pv3 = std::make_shared<PolicyView>(*pv2);
    pv3->denied[0].enforcement = Enforcement::Gap;
    rig.run(kT0 + seconds(4), pv3);
    pv3->denied.clear();
    v = rig.run(kT0 + seconds(5), pv3);
    EXPECT_EQ(v->active[0].verification.state, "gap");
    EXPECT_EQ(v->active[0].verification.gaps, 1u);

    // the export
    const auto text = metrics::renderResponseMetrics(*v);
    EXPECT_NE(text.find("netprobe_response_policies{action=\"isolate\",state=\"active\"} 1"), std::string::npos) << text;
    EXPECT_NE(text.find("netprobe_response_verification{state=\"gap\"} 1"), std::string::npos) << text;
    Views views;
    views.responses = v;
    const auto doc = nlohmann::json::parse(metrics::responsesJson(views));
    EXPECT_EQ(doc["mode"], "on");
    EXPECT_EQ(doc["responses"][0]["verification"]["flows"][0]["client"], "198.18.9.9");
    EXPECT_EQ(doc["responses"][0]["manifest"]["metadata"]["name"], spec.name);
    EXPECT_EQ(nlohmann::json::parse(metrics::responsesJson(Views{})), nlohmann::json({{"enabled", false}}));
}

TEST(RespondStage, DryRunShowsThePolicies) {
    StageRig rig(config(respond::Mode::DryRun));
    rig.event(scan(1, kAttacker, {kWeb}));
    auto v = rig.run(kT0);
    ASSERT_EQ(v->active.size(), 1u);
    EXPECT_EQ(v->active[0].state, "dry_run");
    const auto text = metrics::renderResponseMetrics(*v);
    EXPECT_NE(text.find("netprobe_response_mode{mode=\"dry-run\"} 1"), std::string::npos);
    EXPECT_NE(text.find("netprobe_response_policies{action=\"isolate\",state=\"dry_run\"} 1"), std::string::npos);
}

}  // namespace

namespace {

// deploy/respond grants what the applier does: POST (create), PUT (update), DELETE (delete)
// of NetworkPolicies; the agent's own role lets it list them (the leftovers at start).
std::set<std::string> verbsFor(const char* file, const std::string& resource) {
    std::set<std::string> out;
    for (const YAML::Node& doc : YAML::LoadAllFromFile(std::string(NETPROBE_SOURCE_DIR) + file)) {
        if (!doc["kind"] || doc["kind"].as<std::string>() != "ClusterRole") continue;
        for (const auto& rule : doc["rules"])
            for (const auto& r : rule["resources"])
                if (r.as<std::string>() == resource)
                    for (const auto& v : rule["verbs"]) out.insert(v.as<std::string>());
    }
    return out;
}

TEST(RespondDeploy, RbacCoversTheApplier) {
    EXPECT_EQ(verbsFor("/deploy/respond/rbac.yaml", "networkpolicies"),
              (std::set<std::string>{"create", "update", "delete"}));
    auto base = verbsFor("/deploy/agent.yaml", "networkpolicies");
    EXPECT_TRUE(base.contains("list"));
    EXPECT_FALSE(base.contains("create"));  // read-only without the component
    const auto k = YAML::LoadFile(std::string(NETPROBE_SOURCE_DIR) + "/deploy/respond/kustomization.yaml");
    EXPECT_EQ(k["kind"].as<std::string>(), "Component");
    EXPECT_EQ(k["resources"][0].as<std::string>(), "rbac.yaml");
    EXPECT_NE(k["patches"][0]["patch"].as<std::string>().find("--respond=on"), std::string::npos);
}

}  // namespace

namespace {

// The policy stage's enforcement gaps become policy_enforcement_gap events in the security
// stage: one incident per denying pod and policies, each gap read once.
TEST(PolicyGapEvents, FromThePolicyView) {
    auto pv = std::make_shared<PolicyView>();
    security::SecurityStage::Options o;
    o.policy = [&] { return std::shared_ptr<const PolicyView>(pv); };
    security::SecurityStage stage(o, security::TimePoint{});
    auto gap = [](util::Addr16 client, std::uint16_t port, std::uint64_t at_ns) {
        DeniedFlow d;
        d.client = client;
        d.server = kWeb;
        d.port = port;
        d.client_pod = "frontend/ui";
        d.server_pod = "shop/web-1";
        d.verdict.ingress.decision = PolicyDecision::Denied;
        d.verdict.ingress.policies = {"shop/default-deny"};
        d.verdict.allowed = false;
        d.enforcement = Enforcement::Gap;
        d.packets_out = 4;
        d.packets_in = 3;
        d.decided_ns = at_ns;
        return d;
    };
    auto run = [&](std::uint64_t sec) {
        collector::Snapshot s;
        s.mono = collector::MonoTime{} + seconds(sec);
        s.taken_at = kT0 + seconds(sec);
        Views v;
        stage.run(s, v);
        return v.security;
    };
    pv->gaps = {gap(kUi, 5432, 1'000'000'000)};
    pv->gaps_total = 1;
    auto v = run(1);
    ASSERT_EQ(v->events.size(), 1u);
    const auto& e = *v->events[0];
    EXPECT_EQ(e.type, EventType::PolicyEnforcementGap);
    EXPECT_EQ(e.severity, Severity::High);
    EXPECT_EQ(e.src, kUi);
    EXPECT_EQ(e.dst, kWeb);
    EXPECT_EQ(std::get<std::string>(e.evidence.at("pod")), "shop/web-1");
    EXPECT_EQ(std::get<std::vector<std::string>>(e.evidence.at("policies")),
              std::vector<std::string>{"shop/default-deny"});
    EXPECT_EQ(std::get<std::int64_t>(e.evidence.at("conversations")), 1);
    // read once: the same view again adds nothing; a second gap of the same pod joins it
    run(2);
    pv->gaps = {gap(kOther, 5353, 2'500'000'000), gap(kUi, 5432, 1'000'000'000)};
    pv->gaps_total = 2;
    v = run(3);
    ASSERT_EQ(v->events.size(), 1u);
    EXPECT_EQ(std::get<std::int64_t>(v->events[0]->evidence.at("conversations")), 2);
    EXPECT_EQ(v->stats.policy_gaps, 2u);
    // three more while the list holds two: one missed
    pv->gaps_total = 5;
    v = run(4);
    EXPECT_EQ(v->stats.policy_gaps, 4u);
    EXPECT_EQ(v->stats.policy_gaps_missed, 1u);
    EXPECT_EQ(v->events_total[static_cast<int>(EventType::PolicyEnforcementGap)], 1u);
    EXPECT_EQ(security::parseEventType("policy_enforcement_gap"), EventType::PolicyEnforcementGap);
}

}  // namespace

#include <netprobe/analysis/l7/stage.hpp>

namespace {

// Service mesh: the sidecar in the pod spec, and the sidecar's legs of a request.
TEST(Mesh, DetectedFromThePodSpec) {
    auto pod = [](nlohmann::json spec, nlohmann::json annotations = nlohmann::json::object()) {
        nlohmann::json o = {{"metadata", {{"name", "p"}, {"namespace", "n"}, {"uid", "u"}, {"annotations", annotations}}},
                            {"spec", spec},
                            {"status", {{"phase", "Running"}}}};
        return k8s::podFromJson(o)->mesh;
    };
    EXPECT_EQ(pod({{"containers", {{{"name", "app"}}, {{"name", "istio-proxy"}}}}}), "istio");
    // native sidecars (Kubernetes 1.28+): an init container with restartPolicy Always
    EXPECT_EQ(pod({{"containers", {{{"name", "app"}}}}, {"initContainers", {{{"name", "linkerd-proxy"}}}}}), "linkerd");
    EXPECT_EQ(pod({{"containers", {{{"name", "app"}}}}}, {{"linkerd.io/proxy-version", "stable-2.14"}}), "linkerd");
    EXPECT_EQ(pod({{"containers", {{{"name", "app"}}}}}, {{"sidecar.istio.io/status", "{}"}}), "istio");
    EXPECT_EQ(pod({{"containers", {{{"name", "app"}}, {{"name", "proxy"}}}}}), "");
}

TEST(Mesh, SidecarLegsOfARequest) {
    using netprobe::l7::Side;
    auto req = [](Side side, const char* client, const char* server, std::uint16_t port) {
        netprobe::l7::Request r;
        r.side = side;
        r.client = ip(client);
        r.server = ip(server);
        r.server_port = port;
        return r;
    };
    // the app's request as its sidecar's redirect listener read it
    for (std::uint16_t p : {15001, 15006, 15008, 4140, 4143})
        EXPECT_TRUE(netprobe::analysis::l7::meshProxyLeg(req(Side::Server, "198.18.1.11", "127.0.0.1", p), "")) << p;
    EXPECT_FALSE(netprobe::analysis::l7::meshProxyLeg(req(Side::Server, "198.18.1.11", "198.18.1.12", 8080), "istio"));
    // Istio's inbound sidecar -> app, from 127.0.0.6
    EXPECT_TRUE(netprobe::analysis::l7::meshProxyLeg(req(Side::Client, "127.0.0.6", "127.0.0.1", 8080), ""));
    // loopback / same-address clients only count as a sidecar's for a mesh pod
    EXPECT_TRUE(netprobe::analysis::l7::meshProxyLeg(req(Side::Client, "127.0.0.1", "198.18.1.12", 8080), "linkerd"));
    EXPECT_TRUE(netprobe::analysis::l7::meshProxyLeg(req(Side::Client, "198.18.1.12", "198.18.1.12", 8080), "linkerd"));
    EXPECT_FALSE(netprobe::analysis::l7::meshProxyLeg(req(Side::Client, "127.0.0.1", "127.0.0.1", 6379), ""));
    // the app's own client request to a mesh pod
    EXPECT_FALSE(netprobe::analysis::l7::meshProxyLeg(req(Side::Client, "198.18.1.11", "198.18.1.12", 8080), "istio"));
}

}  // namespace
