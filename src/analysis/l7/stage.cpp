// The L7 stage (see stage.hpp).
#include <netprobe/analysis/l7/stage.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>

#include <netprobe/analysis/attribution.hpp>
#include <netprobe/collector/snapshot.hpp>
#include <netprobe/l7/amqp.hpp>
#include <netprobe/l7/kafka.hpp>
#include <netprobe/l7/parser.hpp>
#include <netprobe/util/parse.hpp>

namespace netprobe::analysis::l7 {
namespace {

constexpr std::size_t kSlots = 6;             // the window in slots (one more is kept as the ring's spare)
constexpr std::size_t kSamplesPerSlot = 512;  // durations kept per slot (a uniform sample beyond)

std::string endpointKey(std::string_view protocol, netprobe::l7::Side side, std::string_view service,
                        std::string_view method, std::string_view route) {
    std::string k(protocol);
    k += '|';
    k += sideName(side);
    k += '|';
    k += service;
    k += '|';
    k += method;
    k += '|';
    k += route;
    return k;
}

// A label value from traffic within its budget: known, or admitted while there is room;
// otherwise counted (the caller labels it "other").
bool admit(std::set<std::string>& admitted, const std::string& value, std::size_t max, std::uint64_t& overflow) {
    if (admitted.contains(value)) return true;
    if (admitted.size() < max) {
        admitted.insert(value);
        return true;
    }
    ++overflow;
    return false;
}

// The class of an HTTP status: a view of a constant.
std::string_view httpStatusClass(int status) {
    static constexpr std::string_view kClasses[] = {"1xx", "2xx", "3xx", "4xx", "5xx"};
    if (status < 100 || status > 599) return "unknown";
    return kClasses[status / 100 - 1];
}

}  // namespace

std::string statusClass(const Request& r) {
    if (r.protocol == "dns") return netprobe::l7::dnsRcodeName(static_cast<std::uint8_t>(r.status));
    if (r.protocol == "grpc") return netprobe::l7::grpcStatusName(r.status);
    if ((r.protocol == "kafka" || r.protocol == "amqp") && r.status == 1) {
        // the error's name (a bounded set), "error" for a code the tables do not know
        int code = 0;
        const char* name = nullptr;
        if (util::parseNumber(r.error, code))
            name = r.protocol == "kafka" ? netprobe::l7::kafkaErrorName(code) : netprobe::l7::amqpReplyName(code);
        return name ? name : "error";
    }
    if (r.protocol != "http" && r.protocol != "http2") return r.status == 1 ? "error" : r.status == 2 ? "unknown" : "ok";
    return std::string(httpStatusClass(r.status));
}

namespace {
// statusClass(r) without a string built per request for HTTP (most requests): a view of
// a constant, or of `other` (statusClass's string) for the other protocols.
std::string_view statusClassView(const Request& r, std::string& other) {
    if (r.protocol == "http" || r.protocol == "http2") return httpStatusClass(r.status);
    other = statusClass(r);
    return other;
}
}  // namespace

bool isError(const Request& r) {
    if (r.protocol == "dns") return netprobe::l7::dnsRcodeIsError(static_cast<std::uint8_t>(r.status));
    if (r.protocol == "http" || r.protocol == "http2") return r.status >= 500;
    if (r.protocol == "grpc") return netprobe::l7::grpcStatusIsError(r.status);
    return r.status == 1;
}

bool isClientError(const Request& r) {
    if (r.protocol == "dns") return r.status == 3;
    if (r.protocol == "http" || r.protocol == "http2") return r.status >= 400 && r.status < 500;
    if (r.protocol == "grpc") return r.status != 0 && r.status <= 16 && !isError(r);
    return false;
}

struct L7Stage::Endpoint {
    struct Slot {
        std::int64_t id = -1;
        std::uint64_t requests = 0, errors = 0, client_errors = 0, request_bytes = 0, response_bytes = 0;
        std::vector<float> durations;  // every one up to kSamplesPerSlot, then a uniform sample (Algorithm R)
    };
    std::string protocol, side, service, method, route;
    std::uint64_t requests_total = 0, errors_total = 0;
    std::array<Slot, kSlots + 1> slots;
};

struct L7Stage::DnsTimeouts {
    struct Slot {
        std::int64_t id = -1;
        std::uint64_t count = 0;
        double max_wait = 0;
        std::map<std::string, std::uint64_t> names;  // at most kNamesPerSlot
    };
    static constexpr std::size_t kNamesPerSlot = 32;
    std::uint64_t total = 0;
    std::array<Slot, kSlots + 1> slots;
};

L7Stage::L7Stage(L7Options options, std::shared_ptr<const Attribution> attribution)
    : opts_(options), attribution_(std::move(attribution)) {}

L7Stage::~L7Stage() = default;

std::string L7Stage::serviceOf(const Request& r) {
    // One attribution lookup per server and collection (the cache is cleared each run:
    // pods come and go).
    std::array<std::uint8_t, 18> key{};
    std::memcpy(key.data(), r.server.data(), 16);
    key[16] = static_cast<std::uint8_t>(r.server_port >> 8);
    key[17] = static_cast<std::uint8_t>(r.server_port);
    if (auto it = service_cache_.find(key); it != service_cache_.end()) return it->second;
    std::string name = nameOf(r);
    service_cache_.emplace(key, name);
    return name;
}

namespace {
flow_key keyOf(const Request& r) {
    flow_key k{};
    std::memcpy(&k.src_ip, r.client.data(), 16);
    std::memcpy(&k.dst_ip, r.server.data(), 16);
    k.src_port = r.client_port;
    k.dst_port = r.server_port;
    k.proto = 6;
    k.family = r.family;
    return k;
}
}  // namespace

std::string L7Stage::serverMesh(const Request& r) const {
    return attribution_ ? attribution_->flow(keyOf(r)).dst_mesh : std::string();
}

std::string L7Stage::nameOf(const Request& r) {
    std::string name;
    if (attribution_) {
        auto labels = attribution_->flow(keyOf(r));
        if (!labels.dst_service.empty())
            name = labels.dst_namespace.empty() ? labels.dst_service : labels.dst_namespace + "/" + labels.dst_service;
        else if (!labels.dst_workload.empty())
            name = labels.dst_namespace.empty() ? labels.dst_workload : labels.dst_namespace + "/" + labels.dst_workload;
    }
    if (name.empty()) name = util::formatEndpoint(r.server, r.server_port);
    return admit(services_, name, opts_.max_services, counters_.services_overflow) ? name : "other";
}

bool meshProxyLeg(const Request& r, std::string_view server_mesh) {
    if (r.side == netprobe::l7::Side::Server) {
        switch (r.server_port) {
        case 15001: case 15006: case 15008: case 4140: case 4143: return true;
        default: return false;
        }
    }
    static const util::Addr16 istio_inbound = *util::parseAddr("127.0.0.6");
    if (r.client == istio_inbound) return true;  // reserved by Istio for this leg
    if (server_mesh.empty()) return false;
    static const util::Addr16 loopback6 = *util::parseAddr("::1");
    const bool loopback = util::isV4Mapped(r.client) ? r.client[12] == 127 : r.client == loopback6;
    return loopback || r.client == r.server;
}

void L7Stage::add(const collector::Snapshot& snap, const Request& r, bool keep) {
    // the server's mesh matters only for a client leg from loopback or the server's own
    // address: the attribution lookup is made for those alone, not for every request
    const bool local_client = r.side == netprobe::l7::Side::Client &&
                              (r.client == r.server || (util::isV4Mapped(r.client) && r.client[12] == 127) ||
                               r.client == util::Addr16{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1});
    if (meshProxyLeg(r, local_client ? serverMesh(r) : std::string())) {
        ++counters_.mesh_proxy_legs;
        return;
    }
    std::string service = serviceOf(r);
    for (const auto& a : r.answers) {
        if (a.type != 1 && a.type != 28) continue;
        const std::uint64_t expires = r.mono_ns + static_cast<std::uint64_t>(a.ttl) * 1'000'000'000ull;
        auto it = dns_names_.find(a.addr);
        if (it == dns_names_.end() && dns_names_.size() >= opts_.max_dns_names) {
            ++counters_.dns_names_dropped;
            continue;
        }
        dns_names_[a.addr] = {r.path, expires};
    }
    // The labels, within their budgets.
    std::string_view method = r.method, route = r.route;
    if (r.protocol == "grpc" && !admit(rpc_methods_, r.method, opts_.max_rpc_methods, counters_.methods_overflow)) {
        method = "other";
        route = "other";
    }
    // Kafka topics and AMQP queues/exchanges: a budget of their own, so that a consumer of
    // thousands of topics does not take the endpoints of every other protocol.
    if ((r.protocol == "kafka" || r.protocol == "amqp") && r.route != r.method &&
        !admit(topics_, r.route, opts_.max_topics, counters_.topics_overflow))
        route = "other";
    std::string sc_other;
    const std::string_view sc = statusClassView(r, sc_other);

    LastLabels& last = last_[r.side == netprobe::l7::Side::Client ? 0 : 1];
    if (!(last.valid && last.protocol == r.protocol && last.service == service && last.method == method &&
          last.route == route && last.status_class == sc)) {
        last.series =
            &series_[SeriesKey{r.protocol, std::string(sideName(r.side)), service, std::string(method), std::string(sc)}];
        std::string key = endpointKey(r.protocol, r.side, service, method, route);
        auto it = endpoints_.find(key);
        last.endpoint_overflow = false;
        if (it == endpoints_.end()) {
            if (endpoints_.size() >= opts_.max_endpoints) {
                last.endpoint_overflow = true;
                key = endpointKey(r.protocol, r.side, service, method, "other");
                it = endpoints_.find(key);
            }
            if (it == endpoints_.end()) {
                auto e = std::make_unique<Endpoint>();
                e->protocol = r.protocol;
                e->side = sideName(r.side);
                e->service = service;
                e->method = std::string(method);
                e->route = endpoints_.size() >= opts_.max_endpoints ? "other" : std::string(route);
                it = endpoints_.emplace(key, std::move(e)).first;
            }
        }
        last.endpoint = it->second.get();
        last.valid = true;
        last.protocol = r.protocol;
        last.service = service;
        last.method = method;
        last.route = route;
        last.status_class = sc;
    }
    if (last.endpoint_overflow) ++counters_.endpoints_overflow;

    auto& t = *last.series;
    ++t.requests;
    t.duration_sum += r.duration_seconds;
    t.request_bytes += r.request_bytes;
    t.response_bytes += r.response_bytes;
    for (std::size_t i = 0; i < kDurationBuckets.size(); ++i)
        if (r.duration_seconds <= kDurationBuckets[i]) {
            ++t.buckets[i];
            break;
        }

    Endpoint& e = *last.endpoint;
    const bool error = isError(r), client_error = isClientError(r);
    ++e.requests_total;
    e.errors_total += error;
    const auto slot_ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.window).count() / kSlots, 1);
    const std::int64_t id = static_cast<std::int64_t>(r.mono_ns) / slot_ns;
    auto& s = e.slots[static_cast<std::size_t>(id) % e.slots.size()];
    if (s.id != id) s = Endpoint::Slot{.id = id};
    ++s.requests;
    s.errors += error;
    s.client_errors += client_error;
    s.request_bytes += r.request_bytes;
    s.response_bytes += r.response_bytes;
    if (s.durations.size() < kSamplesPerSlot) {
        s.durations.push_back(static_cast<float>(r.duration_seconds));
    } else {
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        const std::uint64_t j = rng_ % s.requests;  // s.requests counts this one
        if (j < kSamplesPerSlot) s.durations[j] = static_cast<float>(r.duration_seconds);
    }

    if (!keep) return;
    Request& kept = recent_.emplace_back(r);
    kept.service = std::move(service);
    kept.time = snap.wallOf(r.mono_ns);
    if (kept.method != method) kept.method = std::string(method);
    if (kept.route != route) kept.route = std::string(route);
    while (recent_.size() > opts_.recent_requests) recent_.pop_front();
}

void L7Stage::addUnanswered(const Request& r) {
    // The service as for answered queries, under the same label budget.
    std::string service = serviceOf(r);
    std::pair<std::string, std::string> key{service, sideName(r.side)};
    if (!dns_timeouts_.contains(key) && dns_timeouts_.size() >= opts_.max_services) key.first = "other";
    auto& t = dns_timeouts_[key];
    if (!t) t = std::make_unique<DnsTimeouts>();
    ++t->total;
    const auto slot_ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.window).count() / kSlots, 1);
    const auto ended = r.mono_ns + static_cast<std::uint64_t>(r.duration_seconds * 1e9);
    const std::int64_t id = static_cast<std::int64_t>(ended) / slot_ns;
    auto& s = t->slots[static_cast<std::size_t>(id) % t->slots.size()];
    if (s.id != id) s = DnsTimeouts::Slot{.id = id};
    ++s.count;
    s.max_wait = std::max(s.max_wait, r.duration_seconds);
    if (s.names.size() < DnsTimeouts::kNamesPerSlot || s.names.contains(r.path)) ++s.names[r.path];
}

void L7Stage::run(const collector::Snapshot& snap, Views& views) {
    const std::uint64_t now_ns = snap.monoNs();
    service_cache_.clear();
    last_ = {};  // (services are named again each run)
    if (snap.l7) {
        // Only the batch's last requests can stay in the recent ring: the others are not
        // copied into it (a mesh leg among those last leaves an older request in its place).
        const auto& reqs = snap.l7->requests;
        for (std::size_t i = 0; i < reqs.size(); ++i) add(snap, reqs[i], i + opts_.recent_requests >= reqs.size());
        for (const auto& r : snap.l7->dns_unanswered) addUnanswered(r);
        counters_.parse = snap.l7->parse;
    }
    auto view = std::make_shared<L7View>();
    view->series = series_;
    view->counters = counters_;
    view->connections = snap.l7 ? snap.l7->connections : 0;
    for (auto it = dns_names_.begin(); it != dns_names_.end();) {
        if (it->second.second <= now_ns) {
            it = dns_names_.erase(it);
            continue;
        }
        view->dns_names.push_back({it->first, it->second.first, snap.wallOf(it->second.second)});
        ++it;
    }
    view->window = opts_.window;
    view->recent.assign(recent_.begin(), recent_.end());

    const auto slot_ns = std::max<std::int64_t>(
        std::chrono::duration_cast<std::chrono::nanoseconds>(opts_.window).count() / kSlots, 1);
    const std::int64_t now_id = static_cast<std::int64_t>(now_ns) / slot_ns;
    const std::int64_t first_id = now_id - static_cast<std::int64_t>(kSlots) + 1;
    if (start_ns_ == 0) start_ns_ = now_ns;
    // The window's slots, or the time since the stage started when that is shorter.
    const double covered = std::min(static_cast<double>(static_cast<std::int64_t>(now_ns) - first_id * slot_ns),
                                    static_cast<double>(now_ns - start_ns_) + 1e9 * snap.interval_seconds) /
                           1e9;
    for (const auto& [key, ep] : endpoints_) {
        EndpointSummary s;
        s.protocol = ep->protocol;
        s.side = ep->side;
        s.service = ep->service;
        s.method = ep->method;
        s.route = ep->route;
        s.requests_total = ep->requests_total;
        s.errors_total = ep->errors_total;
        std::vector<float> d;
        for (const auto& sl : ep->slots) {
            if (sl.id < first_id || sl.id > now_id) continue;
            s.requests += sl.requests;
            s.errors += sl.errors;
            s.client_errors += sl.client_errors;
            s.request_bytes += sl.request_bytes;
            s.response_bytes += sl.response_bytes;
            d.insert(d.end(), sl.durations.begin(), sl.durations.end());
        }
        if (covered > 0) s.rate = static_cast<double>(s.requests) / covered;
        if (s.requests) {
            s.error_rate = static_cast<double>(s.errors) / static_cast<double>(s.requests);
            // Nearest rank over the kept durations (all of them up to kSamplesPerSlot a slot).
            auto quantile = [&](double q) -> double {
                if (d.empty()) return 0;
                auto rank = static_cast<std::size_t>(std::ceil(q * static_cast<double>(d.size())));
                rank = std::clamp<std::size_t>(rank, 1, d.size()) - 1;
                std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(rank), d.end());
                return d[rank];
            };
            s.p50 = quantile(0.5);
            s.p90 = quantile(0.9);
            s.p99 = quantile(0.99);
        }
        view->endpoints.push_back(std::move(s));
    }
    std::stable_sort(view->endpoints.begin(), view->endpoints.end(),
                     [](const EndpointSummary& a, const EndpointSummary& b) { return a.requests > b.requests; });
    for (const auto& [key, t] : dns_timeouts_) {
        DnsTimeoutSummary d;
        d.service = key.first;
        d.side = key.second;
        d.total = t->total;
        std::map<std::string, std::uint64_t> names;
        for (const auto& sl : t->slots) {
            if (sl.id < first_id || sl.id > now_id) continue;
            d.timeouts += sl.count;
            d.max_wait_seconds = std::max(d.max_wait_seconds, sl.max_wait);
            for (const auto& [n, c] : sl.names) names[n] += c;
        }
        for (const auto& [n, c] : names) d.names.emplace_back(n, c);
        std::stable_sort(d.names.begin(), d.names.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
        if (d.names.size() > 3) d.names.resize(3);
        view->dns_timeouts.push_back(std::move(d));
    }
    std::stable_sort(view->dns_timeouts.begin(), view->dns_timeouts.end(),
                     [](const DnsTimeoutSummary& a, const DnsTimeoutSummary& b) { return a.timeouts > b.timeouts; });
    views.l7 = std::move(view);
}

}  // namespace netprobe::analysis::l7
