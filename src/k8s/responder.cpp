#include <netprobe/k8s/responder.hpp>

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <ctime>

#include <netprobe/util/parse.hpp>

namespace netprobe::k8s {

namespace respond = analysis::respond;
using WallTime = std::chrono::system_clock::time_point;

namespace {

const std::string kApi = "/apis/networking.k8s.io/v1";

// "2026-12-05T01:30:00Z" (what the stage writes); nullopt for anything else.
std::optional<WallTime> parseSeconds(const std::string& s) {
    std::tm tm{};
    const char* rest = strptime(s.c_str(), "%Y-%m-%dT%H:%M:%SZ", &tm);
    if (!rest || *rest) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

// The message of a Kubernetes Status answer, else the start of the body.
std::string statusMessage(int status, const std::string& body) {
    auto doc = nlohmann::json::parse(body, nullptr, false);
    std::string msg;
    if (doc.is_object() && doc.contains("message") && doc["message"].is_string()) msg = doc["message"].get<std::string>();
    else msg = body.substr(0, 200);
    return "HTTP " + std::to_string(status) + (msg.empty() ? "" : ": " + msg);
}

}  // namespace

ResponseApplier::ResponseApplier(std::shared_ptr<const Client> client, ResponseApplierOptions options, ViewProvider view)
    : client_(std::move(client)), opts_(std::move(options)), view_(std::move(view)) {}

ResponseApplier::~ResponseApplier() { stop(); }

void ResponseApplier::start() {
    thread_ = std::thread([this] {
        std::unique_lock lock(mu_);
        while (!stopping_) {
            lock.unlock();
            tick(std::chrono::system_clock::now());
            lock.lock();
            cv_.wait_for(lock, opts_.interval, [this] { return stopping_; });
        }
    });
}

void ResponseApplier::stop() {
    {
        std::lock_guard lock(mu_);
        stopping_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void ResponseApplier::dryRun(const respond::ResponseView& v) {
    for (const auto& r : v.active) {
        const std::string id = r.spec.ns + "/" + r.spec.name;
        if (!logged_.emplace(id, r.hash).second) continue;
        logged_end_.erase(id);
        spdlog::info("response (dry-run): would apply NetworkPolicy {} ({} of {}, events {}):\n{}", id,
                     respond::toString(r.spec.action), r.spec.pod, r.spec.event_types, respond::manifestYaml(r.spec));
    }
    for (const auto& r : v.ended) {
        const std::string id = r.spec.ns + "/" + r.spec.name;
        bool wanted = false;
        for (const auto& a : v.active) wanted = wanted || (a.spec.ns + "/" + a.spec.name) == id;
        if (wanted || !logged_end_.insert(id).second) continue;
        spdlog::info("response (dry-run): would delete NetworkPolicy {} ({})", id, r.state);
    }
}

bool ResponseApplier::send(Known& k, const char* method, const std::string& path, const std::string& body,
                           WallTime now, std::initializer_list<int> ok, std::initializer_list<int> handled) {
    ++k.p.attempts;
    auto r = client_->request(method, path, body, opts_.request_timeout);
    std::string err;
    if (!r) {
        k.p.http_status = 0;
        err = r.error().what();
    } else {
        k.p.http_status = r->status;
        for (int s : ok)
            if (r->status == s) {
                k.p.error.clear();
                return true;
            }
        for (int s : handled)
            if (r->status == s) return false;  // the caller tries something else
        err = std::string(method) + " " + path + ": " + statusMessage(r->status, r->body);
    }
    if (err != k.p.error) spdlog::warn("response: {} (retried every {} s)", err, opts_.retry.count());
    k.p.error = err;
    counters_.last_error = err;
    ++counters_.failures_total;
    k.next_attempt = now + opts_.retry;
    return false;
}

void ResponseApplier::listLeftovers(WallTime now) {
    std::string sel = std::string(respond::kManagedByLabel) + "=" + std::string(respond::kManagedByValue);
    if (!opts_.node.empty()) sel += "," + std::string(respond::kNodeLabel) + "=" + opts_.node;
    auto r = client_->request("GET", kApi + "/networkpolicies?labelSelector=" + util::urlEncode(sel), {}, opts_.request_timeout);
    std::string err = !r ? std::string(r.error().what())
                         : r->status != 200 ? "list NetworkPolicies: " + statusMessage(r->status, r->body) : "";
    nlohmann::json doc;
    if (err.empty()) {
        doc = nlohmann::json::parse(r->body, nullptr, false);
        if (!doc.is_object() || !doc.contains("items") || !doc["items"].is_array())
            err = "list NetworkPolicies: not a NetworkPolicyList";
    }
    if (!err.empty()) {
        if (err != counters_.last_error) spdlog::warn("response: {} (retried every {} s)", err, opts_.retry.count());
        counters_.last_error = err;
        ++counters_.failures_total;
        next_list_ = now + opts_.retry;
        return;
    }
    for (const auto& o : doc["items"]) {
        const auto& md = o.value("metadata", nlohmann::json::object());
        const std::string ns = md.value("namespace", ""), name = md.value("name", "");
        if (ns.empty() || name.empty()) continue;
        auto& k = known_[ns + "/" + name];
        if (k.p.exists) continue;  // created by this run meanwhile
        k.p.ns = ns;
        k.p.name = name;
        k.p.exists = true;
        std::string exp;
        if (auto a = md.find("annotations"); a != md.end() && a->is_object())
            exp = a->value(std::string(respond::kExpiresAnnotation), "");
        auto until = parseSeconds(exp);
        k.adopted_until = until.value_or(WallTime{});  // unreadable: expired (deleted below)
        if (k.adopted_until > now) {
            ++counters_.adopted_total;
            spdlog::info("response: NetworkPolicy {}/{} from a previous run kept until it expires ({})", ns, name, exp);
        }
    }
    counters_.listed = true;
}

void ResponseApplier::tick(WallTime now) {
    auto v = view_ ? view_() : nullptr;
    if (opts_.mode == respond::Mode::DryRun) {
        if (v) dryRun(*v);
        return;
    }
    if (opts_.mode != respond::Mode::On) return;
    if (!counters_.listed && now >= next_list_) listLeftovers(now);

    std::map<std::string, const respond::Response*> wanted;
    if (v)
        for (const auto& r : v->active) wanted[r.spec.ns + "/" + r.spec.name] = &r;

    for (const auto& [id, r] : wanted) {
        auto& k = known_[id];
        k.p.ns = r->spec.ns;
        k.p.name = r->spec.name;
        k.wanted_once = true;
        if (k.p.exists && k.p.hash == r->hash) continue;
        if (now < k.next_attempt) continue;
        const std::string coll = kApi + "/namespaces/" + r->spec.ns + "/networkpolicies";
        const std::string body = respond::manifest(r->spec).dump();
        const char* what = "created";
        bool done = false;
        if (!k.p.exists) {
            done = send(k, "POST", coll, body, now, {200, 201, 202}, {409});
            if (!done && k.p.http_status == 409) {  // there already (a previous run's): replace it
                done = send(k, "PUT", coll + "/" + r->spec.name, body, now, {200, 201});
                what = "replaced";
            }
        } else {
            done = send(k, "PUT", coll + "/" + r->spec.name, body, now, {200, 201}, {404});
            what = "replaced";
            if (!done && k.p.http_status == 404) {  // deleted behind our back: create again
                done = send(k, "POST", coll, body, now, {200, 201, 202});
                what = "created";
            }
        }
        if (!done) continue;
        (std::string_view(what) == "created" ? counters_.creates_total : counters_.replaces_total) += 1;
        k.p.exists = true;
        k.p.hash = r->hash;
        k.p.applied_at = now;
        k.next_attempt = {};
        std::string atk;
        for (const auto& a : r->spec.attackers) atk += (atk.empty() ? "" : ", ") + util::formatAddr(a.addr);
        spdlog::info("response: {} NetworkPolicy {} ({} {}{}{}; events {}; expires in {} s)", what, id,
                     respond::toString(r->spec.action), r->spec.pod, atk.empty() ? "" : " from ", atk,
                     r->spec.event_types,
                     std::chrono::duration_cast<std::chrono::seconds>(r->spec.expires - now).count());
    }

    for (auto& [id, k] : known_) {
        if (!k.p.exists || wanted.contains(id)) continue;
        if (!k.wanted_once && k.adopted_until > now) continue;  // a previous run's, not expired yet
        if (now < k.next_attempt) continue;
        if (!send(k, "DELETE", kApi + "/namespaces/" + k.p.ns + "/networkpolicies/" + k.p.name, {}, now,
                  {200, 202, 404}))
            continue;
        k.p.exists = false;
        k.p.deleted_at = now;
        k.next_attempt = {};
        ++counters_.deletes_total;
        spdlog::info("response: deleted NetworkPolicy {} (expired)", id);
    }
    publish();
}

void ResponseApplier::publish() {
    auto s = std::make_shared<respond::ApplierState>(counters_);
    for (const auto& [id, k] : known_) s->policies[id] = k.p;
    state_.store(std::move(s));
}

}  // namespace netprobe::k8s
