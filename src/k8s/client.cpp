#include <netprobe/k8s/client.hpp>

#include <httplib.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <spdlog/spdlog.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <random>
#include <thread>

#include <netprobe/k8s/watch.hpp>

namespace netprobe::k8s {

namespace {

struct BioDeleter {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Deleter {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyDeleter {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct StoreDeleter {
    void operator()(X509_STORE* s) const { X509_STORE_free(s); }
};

std::unique_ptr<BIO, BioDeleter> memBio(const std::string& pem) {
    return std::unique_ptr<BIO, BioDeleter>(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
}

Result<std::unique_ptr<X509_STORE, StoreDeleter>> caStore(const std::string& pem) {
    std::unique_ptr<X509_STORE, StoreDeleter> store(X509_STORE_new());
    auto bio = memBio(pem);
    if (!store || !bio) return std::unexpected(makeError("CA bundle: out of memory"));
    int n = 0;
    while (X509* x = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
        std::unique_ptr<X509, X509Deleter> cert(x);
        if (X509_STORE_add_cert(store.get(), cert.get()) == 1) ++n;
    }
    if (n == 0) return std::unexpected(makeError("CA bundle: no PEM certificate"));
    return store;
}

// The CA bundle as a file for SSL_CTX_load_verify_locations: httplib adds the system
// CAs when given an X509_STORE, so the PEM goes into a memfd (no writable filesystem
// needed) and is loaded by path (/proc/self/fd/N), trusting only that bundle.
class CaFile {
public:
    explicit CaFile(const std::string& pem) {
        if (pem.empty()) return;
        fd_ = ::memfd_create("netprobe-k8s-ca", MFD_CLOEXEC);
        if (fd_ < 0) return;
        std::size_t off = 0;
        while (off < pem.size()) {
            auto n = ::write(fd_, pem.data() + off, pem.size() - off);
            if (n <= 0) {
                ::close(fd_);
                fd_ = -1;
                return;
            }
            off += static_cast<std::size_t>(n);
        }
    }
    ~CaFile() {
        if (fd_ >= 0) ::close(fd_);
    }
    CaFile(const CaFile&) = delete;
    CaFile& operator=(const CaFile&) = delete;
    // "" when there is no bundle or the memfd failed (then the X509_STORE path is used).
    [[nodiscard]] std::string path() const { return fd_ >= 0 ? "/proc/self/fd/" + std::to_string(fd_) : std::string(); }

private:
    int fd_ = -1;
};

// A new HTTP(S) client for one request. The caller owns it.
Result<std::unique_ptr<httplib::ClientImpl>> makeHttpClient(const ClusterConfig& c, const std::string& ca_path) {
    std::unique_ptr<httplib::ClientImpl> cli;
    if (c.scheme == "http") {
        cli = std::make_unique<httplib::ClientImpl>(c.host, c.port);
    } else {
        std::unique_ptr<X509, X509Deleter> cert;
        std::unique_ptr<EVP_PKEY, PkeyDeleter> key;
        if (!c.client_cert_pem.empty()) {
            auto cb = memBio(c.client_cert_pem);
            cert.reset(PEM_read_bio_X509(cb.get(), nullptr, nullptr, nullptr));
            if (!cert) return std::unexpected(makeError("client certificate: not a PEM certificate"));
            auto kb = memBio(c.client_key_pem);
            key.reset(PEM_read_bio_PrivateKey(kb.get(), nullptr, nullptr, nullptr));
            if (!key) return std::unexpected(makeError("client key: not a PEM private key"));
        }
        // SSL_CTX_use_certificate/PrivateKey take their own references.
        auto ssl = std::make_unique<httplib::SSLClient>(c.host, c.port, cert.get(), key.get());
        if (!ssl->is_valid()) return std::unexpected(makeError("TLS client setup failed (client certificate/key mismatch?)"));
        ssl->enable_server_certificate_verification(!c.insecure_skip_tls_verify);
        if (!ca_path.empty()) {
            ssl->set_ca_cert_path(ca_path.c_str());
        } else if (!c.ca_pem.empty()) {
            auto store = caStore(c.ca_pem);
            if (!store) return std::unexpected(store.error());
            ssl->set_ca_cert_store(store->release());  // owned by the SSL_CTX from here
        }
        cli = std::move(ssl);
    }
    return cli;
}

// Accept and the bearer token (the token file is read again each time: rotated tokens).
httplib::Headers authHeaders(const ClusterConfig& c, std::string& err) {
    httplib::Headers h{{"Accept", "application/json"}};
    std::string token = c.token;
    if (!c.token_file.empty()) {
        auto t = readFile(c.token_file);
        if (!t) {
            err = t.error().what();
        } else {
            token = std::move(*t);
            while (!token.empty() && (token.back() == '\n' || token.back() == '\r' || token.back() == ' '))
                token.pop_back();
        }
    }
    if (!token.empty()) h.emplace("Authorization", "Bearer " + token);
    return h;
}

std::string describe(const httplib::Result& r) {
    return httplib::to_string(r.error());
}

}  // namespace

namespace detail {

// One resource: list, then watch from the list's resourceVersion, forever.
class Watcher {
public:
    struct Resource {
        std::string name;            // "pods"
        std::string path;            // "/api/v1/pods"
        std::string field_selector;  // may be empty
        std::function<void(const nlohmann::json& items)> replace_all;
        std::function<void(const nlohmann::json& obj)> upsert;
        std::function<void(const nlohmann::json& obj)> remove;
    };

    Watcher(const ClientOptions& options, Resource res)
        : options_(options), res_(std::move(res)), ca_file_(options.cluster.ca_pem) {
        status_.resource = res_.name;
    }
    ~Watcher() { stop(); }

    void start() {
        if (thread_.joinable()) return;
        stopping_ = false;
        thread_ = std::thread([this] { run(); });
    }

    void stop() {
        if (!thread_.joinable()) return;
        stopping_ = true;
        cv_.notify_all();
        // Interrupt the in-flight request; repeated because a request may start just after
        // a first stop() found nothing in flight.
        while (!done_.load()) {
            {
                std::lock_guard lock(http_mu_);
                if (active_) active_->stop();
            }
            std::unique_lock lock(mu_);
            cv_.wait_for(lock, std::chrono::milliseconds(20), [&] { return done_.load(); });
        }
        thread_.join();
        done_ = false;
    }

    WatchStatus status() const {
        std::lock_guard lock(mu_);
        return status_;
    }

    bool waitSynced(std::chrono::steady_clock::time_point deadline) const {
        std::unique_lock lock(mu_);
        return cv_.wait_until(lock, deadline, [&] { return status_.synced; });
    }

private:
    enum class Outcome { Ok, Gone, Failed, Stopped };

    httplib::Headers headers(std::string& err) const { return authHeaders(options_.cluster, err); }

    // Registers the client as the in-flight one (for stop()); nullptr when stopping.
    std::shared_ptr<httplib::ClientImpl> newClient(std::string& err) {
        auto cli = makeHttpClient(options_.cluster, ca_file_.path());
        if (!cli) {
            err = cli.error().what();
            return nullptr;
        }
        std::shared_ptr<httplib::ClientImpl> sp(std::move(*cli));
        sp->set_connection_timeout(options_.connect_timeout.count(), 0);
        sp->set_keep_alive(false);
        std::lock_guard lock(http_mu_);
        if (stopping_) return nullptr;
        active_ = sp;
        return sp;
    }

    void clearClient() {
        std::lock_guard lock(http_mu_);
        active_.reset();
    }

    void noteFailure(std::string err) {
        std::lock_guard lock(mu_);
        ++status_.failures;
        // First failure of a streak at warn, the rest at debug: an unreachable API must not spam.
        if (failure_streak_++ == 0) spdlog::warn("k8s {}: {}", res_.name, err);
        else spdlog::debug("k8s {}: {}", res_.name, err);
        status_.last_error = std::move(err);
    }

    void noteHealthy() {
        std::lock_guard lock(mu_);
        if (failure_streak_ > 0) spdlog::info("k8s {}: connected again", res_.name);
        failure_streak_ = 0;
    }

    Outcome list() {
        std::string err;
        auto h = headers(err);
        if (!err.empty()) {
            noteFailure(err);
            return Outcome::Failed;
        }
        nlohmann::json items = nlohmann::json::array();
        std::string rv;
        ListParams p{res_.field_selector, options_.list_page_size, {}};
        for (;;) {
            auto cli = newClient(err);
            if (!cli) {
                if (stopping_) return Outcome::Stopped;
                noteFailure(err);
                return Outcome::Failed;
            }
            cli->set_read_timeout(options_.list_read_timeout.count(), 0);
            auto res = cli->Get(listUrl(res_.path, p), h);
            clearClient();
            if (stopping_) return Outcome::Stopped;
            if (!res) {
                noteFailure("list " + res_.path + ": " + describe(res));
                return Outcome::Failed;
            }
            if (res->status == 410) {  // the continue token expired: start the list again
                std::lock_guard lock(mu_);
                ++status_.gone;
                return Outcome::Gone;
            }
            if (res->status != 200) {
                noteFailure("list " + res_.path + ": HTTP " + std::to_string(res->status) + " " + res->body.substr(0, 200));
                return Outcome::Failed;
            }
            auto doc = nlohmann::json::parse(res->body, nullptr, false);
            if (doc.is_discarded() || !doc.is_object()) {
                noteFailure("list " + res_.path + ": response is not a JSON object");
                return Outcome::Failed;
            }
            const auto& md = doc.contains("metadata") ? doc["metadata"] : nlohmann::json::object();
            if (p.continue_token.empty()) rv = md.value("resourceVersion", "");
            if (auto it = doc.find("items"); it != doc.end() && it->is_array())
                for (auto& o : *it) items.push_back(std::move(o));
            p.continue_token = md.value("continue", "");
            if (p.continue_token.empty()) break;
        }
        res_.replace_all(items);
        noteHealthy();
        {
            std::lock_guard lock(mu_);
            ++status_.lists;
            status_.synced = true;
            status_.last_sync = std::chrono::system_clock::now();
            status_.resource_version = rv;
        }
        cv_.notify_all();
        spdlog::debug("k8s {}: listed {} at resourceVersion {}", res_.name, items.size(), rv);
        return Outcome::Ok;
    }

    // Returns Ok when the server ended the stream cleanly (timeoutSeconds).
    Outcome watch(bool& progressed) {
        progressed = false;
        std::string err;
        auto h = headers(err);
        if (!err.empty()) {
            noteFailure(err);
            return Outcome::Failed;
        }
        std::string rv;
        {
            std::lock_guard lock(mu_);
            rv = status_.resource_version;
            ++status_.watches;
        }
        auto cli = newClient(err);
        if (!cli) {
            if (stopping_) return Outcome::Stopped;
            noteFailure(err);
            return Outcome::Failed;
        }
        cli->set_read_timeout(options_.watch_timeout.count() + 30, 0);
        int http_status = 0;
        std::string error_body;
        bool gone = false;
        std::string stream_error;
        LineBuffer lines;
        auto on_line = [&](std::string_view line) {
            auto ev = parseWatchEvent(line);
            if (!ev) {
                stream_error = ev.error().what();
                return false;
            }
            switch (ev->type) {
                case WatchEvent::Type::Added:
                case WatchEvent::Type::Modified:
                    res_.upsert(ev->object);
                    break;
                case WatchEvent::Type::Deleted:
                    res_.remove(ev->object);
                    break;
                case WatchEvent::Type::Bookmark:
                    break;
                case WatchEvent::Type::Error:
                    if (ev->error_code == 410) gone = true;
                    else stream_error = "watch ERROR " + std::to_string(ev->error_code) + ": " + ev->error_message;
                    return false;
            }
            progressed = true;
            std::lock_guard lock(mu_);
            if (!ev->resource_version.empty()) status_.resource_version = ev->resource_version;
            if (ev->type == WatchEvent::Type::Bookmark) ++status_.bookmarks;
            else ++status_.events;
            status_.last_sync = std::chrono::system_clock::now();
            return true;
        };
        auto res = cli->Get(
            watchUrl(res_.path, res_.field_selector, rv, options_.watch_timeout), h,
            [&](const httplib::Response& r) {
                http_status = r.status;
                if (r.status == 200) noteHealthy();  // connected: a later drop is a new streak
                return true;
            },
            [&](const char* data, std::size_t n) {
                if (stopping_) return false;
                if (http_status != 200) {
                    if (error_body.size() < 4096) error_body.append(data, std::min<std::size_t>(n, 4096));
                    return true;
                }
                if (!lines.feed(std::string_view(data, n), on_line)) {
                    if (stream_error.empty() && !gone) stream_error = "watch event line too long";
                    return false;
                }
                return true;
            });
        clearClient();
        if (stopping_) return Outcome::Stopped;
        if (http_status == 410 || gone) {
            std::lock_guard lock(mu_);
            ++status_.gone;
            status_.resource_version.clear();
            spdlog::debug("k8s {}: resourceVersion {} is gone (410), relisting", res_.name, rv);
            return Outcome::Gone;
        }
        if (http_status != 0 && http_status != 200) {
            noteFailure("watch " + res_.path + ": HTTP " + std::to_string(http_status) + " " + error_body.substr(0, 200));
            return Outcome::Failed;
        }
        if (!stream_error.empty()) {
            noteFailure("watch " + res_.path + ": " + stream_error);
            return Outcome::Failed;
        }
        if (!res) {
            noteFailure("watch " + res_.path + ": " + describe(res) + " (stream dropped)");
            return Outcome::Failed;
        }
        noteHealthy();
        {
            std::lock_guard lock(mu_);
            status_.last_sync = std::chrono::system_clock::now();
        }
        return Outcome::Ok;
    }

    // Sleeps d unless stopping; false when stopping.
    bool pause(std::chrono::milliseconds d) {
        std::unique_lock lock(mu_);
        return !cv_.wait_for(lock, d, [&] { return stopping_.load(); });
    }

    void run() {
        std::mt19937 rng(std::random_device{}());
        std::uniform_real_distribution<double> jitter(0.0, 1.0);
        std::chrono::milliseconds backoff{0};
        bool last_gone_unproductive = false;
        auto fail_wait = [&] {
            backoff = nextBackoff(backoff, options_.backoff_initial, options_.backoff_max);
            return pause(withJitter(backoff, jitter(rng)));
        };
        while (!stopping_) {
            bool need_list;
            {
                std::lock_guard lock(mu_);
                need_list = !status_.synced || status_.resource_version.empty();
            }
            if (need_list) {
                auto o = list();
                if (o == Outcome::Stopped) break;
                if (o != Outcome::Ok) {
                    if (!fail_wait()) break;
                    continue;
                }
                backoff = std::chrono::milliseconds{0};
            }
            bool progressed = false;
            auto o = watch(progressed);
            if (o == Outcome::Stopped) break;
            if (progressed) backoff = std::chrono::milliseconds{0};
            switch (o) {
                case Outcome::Ok:
                    last_gone_unproductive = false;
                    break;  // the server closed the watch: resume at once
                case Outcome::Gone:
                    // Relist at once, but not in a tight loop if the server keeps answering 410.
                    if (last_gone_unproductive && !progressed && !fail_wait()) return finish();
                    last_gone_unproductive = !progressed;
                    break;
                case Outcome::Failed:
                    if (!fail_wait()) return finish();
                    break;
                case Outcome::Stopped:
                    break;
            }
        }
        finish();
    }

    void finish() {
        {
            std::lock_guard lock(mu_);
            done_ = true;
        }
        cv_.notify_all();
    }

    const ClientOptions& options_;
    Resource res_;
    CaFile ca_file_;
    std::thread thread_;
    std::atomic<bool> stopping_{false};
    std::atomic<bool> done_{false};
    mutable std::mutex mu_;
    mutable std::condition_variable cv_;
    WatchStatus status_;
    int failure_streak_ = 0;
    std::mutex http_mu_;
    std::shared_ptr<httplib::ClientImpl> active_;
};

}  // namespace detail

namespace {

template <class Store, class Info>
detail::Watcher::Resource makeResource(std::string name, std::string path, std::string selector,
                                       std::shared_ptr<Store> store,
                                       Result<Info> (*parse)(const nlohmann::json&)) {
    detail::Watcher::Resource r;
    r.name = name;
    r.path = std::move(path);
    r.field_selector = std::move(selector);
    r.replace_all = [store, parse, name](const nlohmann::json& items) {
        std::vector<Info> out;
        out.reserve(items.size());
        std::vector<std::pair<std::string, std::string>> rejected;  // uid, error
        for (const auto& o : items) {
            auto info = parse(o);
            if (info) {
                out.push_back(std::move(*info));
                continue;
            }
            spdlog::debug("k8s {}: skipped: {}", name, info.error().what());
            if (auto md = o.find("metadata"); md != o.end() && md->is_object())
                if (auto uid = md->find("uid"); uid != md->end() && uid->is_string())
                    rejected.emplace_back(uid->get<std::string>(), info.error().what());
        }
        store->replaceAll(std::move(out));
        if constexpr (requires { store->reject(std::string(), std::string()); })
            for (auto& [uid, err] : rejected) store->reject(std::move(uid), std::move(err));
    };
    r.upsert = [store, parse, name](const nlohmann::json& o) {
        auto info = parse(o);
        if (info) {
            store->upsert(std::move(*info));
            return;
        }
        spdlog::debug("k8s {}: skipped: {}", name, info.error().what());
        if constexpr (requires { store->reject(std::string(), std::string()); }) {
            // A new version that does not parse replaces (drops) the previous one.
            if (auto md = o.find("metadata"); md != o.end() && md->is_object())
                if (auto uid = md->find("uid"); uid != md->end() && uid->is_string())
                    store->reject(uid->get<std::string>(), info.error().what());
        }
    };
    r.remove = [store](const nlohmann::json& o) {
        if (auto md = o.find("metadata"); md != o.end() && md->is_object())
            if (auto uid = md->find("uid"); uid != md->end() && uid->is_string()) store->remove(uid->get<std::string>());
    };
    return r;
}

}  // namespace

Client::Client(ClientOptions options)
    : options_(std::move(options)),
      pods_(std::make_shared<PodStore>()),
      services_(std::make_shared<ServiceStore>()),
      endpoints_(std::make_shared<EndpointStore>()) {
    std::string selector = options_.node_name.empty() ? std::string() : "spec.nodeName=" + options_.node_name;
    pod_watcher_ = std::make_unique<detail::Watcher>(
        options_, makeResource<PodStore, PodInfo>("pods", "/api/v1/pods", selector, pods_, &podFromJson));
    if (options_.watch_services)
        service_watcher_ = std::make_unique<detail::Watcher>(
            options_,
            makeResource<ServiceStore, ServiceInfo>("services", "/api/v1/services", {}, services_, &serviceFromJson));
    if (options_.watch_endpointslices)
        endpoint_watcher_ = std::make_unique<detail::Watcher>(
            options_, makeResource<EndpointStore, EndpointSliceInfo>("endpointslices",
                                                                     "/apis/discovery.k8s.io/v1/endpointslices", {},
                                                                     endpoints_, &endpointSliceFromJson));
    if (options_.watch_network_policies) {
        policies_ = std::make_shared<NetworkPolicyStore>();
        namespaces_ = std::make_shared<NamespaceStore>();
        policy_watchers_.push_back(std::make_unique<detail::Watcher>(
            options_, makeResource<NetworkPolicyStore, NetworkPolicy>("networkpolicies",
                                                                      "/apis/networking.k8s.io/v1/networkpolicies", {},
                                                                      policies_, &networkPolicyFromJson)));
        policy_watchers_.push_back(std::make_unique<detail::Watcher>(
            options_, makeResource<NamespaceStore, NamespaceInfo>("namespaces", "/api/v1/namespaces", {}, namespaces_,
                                                                  &namespaceFromJson)));
        nodes_ = std::make_shared<NodeStore>();
        policy_watchers_.push_back(std::make_unique<detail::Watcher>(
            options_, makeResource<NodeStore, NodeInfo>("nodes", "/api/v1/nodes", {}, nodes_, &nodeFromJson)));
        if (!options_.node_name.empty()) {
            remote_pods_ = std::make_shared<PodStore>();
            policy_watchers_.push_back(std::make_unique<detail::Watcher>(
                options_, makeResource<PodStore, PodInfo>("remote_pods", "/api/v1/pods",
                                                          "spec.nodeName!=" + options_.node_name, remote_pods_,
                                                          &podFromJson)));
        }
    }
    if (!nodes_ && options_.watch_nodes) {  // on its own: the zones of the cost classes
        nodes_ = std::make_shared<NodeStore>();
        policy_watchers_.push_back(std::make_unique<detail::Watcher>(
            options_, makeResource<NodeStore, NodeInfo>("nodes", "/api/v1/nodes", {}, nodes_, &nodeFromJson)));
    }
}

Client::~Client() { stop(); }

Result<Client::Reply> Client::request(std::string_view method, const std::string& path, const std::string& body,
                                      std::chrono::seconds timeout) const {
    std::string err;
    auto h = authHeaders(options_.cluster, err);
    if (!err.empty()) return std::unexpected(makeError(err));
    CaFile ca(options_.cluster.ca_pem);
    auto cli = makeHttpClient(options_.cluster, ca.path());
    if (!cli) return std::unexpected(cli.error());
    (*cli)->set_connection_timeout(options_.connect_timeout.count(), 0);
    (*cli)->set_read_timeout(timeout.count(), 0);
    (*cli)->set_write_timeout(timeout.count(), 0);
    (*cli)->set_keep_alive(false);
    const std::string type = "application/json";
    auto send = [&]() -> httplib::Result {
        if (method == "GET") return (*cli)->Get(path, h);
        if (method == "POST") return (*cli)->Post(path, h, body, type);
        if (method == "PUT") return (*cli)->Put(path, h, body, type);
        return body.empty() ? (*cli)->Delete(path, h) : (*cli)->Delete(path, h, body, type);
    };
    if (method != "GET" && method != "POST" && method != "PUT" && method != "DELETE")
        return std::unexpected(makeError("unsupported method " + std::string(method)));
    auto res = send();
    if (!res) return std::unexpected(makeError(std::string(method) + " " + path + ": " + describe(res)));
    return Reply{res->status, res->body};
}

void Client::start() {
    pod_watcher_->start();
    if (service_watcher_) service_watcher_->start();
    if (endpoint_watcher_) endpoint_watcher_->start();
    for (auto& w : policy_watchers_) w->start();
}

void Client::stop() {
    pod_watcher_->stop();
    if (service_watcher_) service_watcher_->stop();
    if (endpoint_watcher_) endpoint_watcher_->stop();
    for (auto& w : policy_watchers_) w->stop();
}

bool Client::waitSynced(std::chrono::milliseconds timeout) const {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    if (!pod_watcher_->waitSynced(deadline)) return false;
    if (service_watcher_ && !service_watcher_->waitSynced(deadline)) return false;
    if (endpoint_watcher_ && !endpoint_watcher_->waitSynced(deadline)) return false;
    for (const auto& w : policy_watchers_)
        if (!w->waitSynced(deadline)) return false;
    return true;
}

std::vector<WatchStatus> Client::policyStatuses() const {
    std::vector<WatchStatus> out;
    for (const auto& w : policy_watchers_) out.push_back(w->status());
    return out;
}

bool Client::policyInputsSynced() const {
    if (!policies_) return false;
    if (!pod_watcher_->status().synced) return false;
    return std::all_of(policy_watchers_.begin(), policy_watchers_.end(),
                       [](const auto& w) { return w->status().synced; });
}

WatchStatus Client::podStatus() const { return pod_watcher_->status(); }

std::optional<WatchStatus> Client::serviceStatus() const {
    if (!service_watcher_) return std::nullopt;
    return service_watcher_->status();
}

std::optional<WatchStatus> Client::endpointSliceStatus() const {
    if (!endpoint_watcher_) return std::nullopt;
    return endpoint_watcher_->status();
}

}  // namespace netprobe::k8s
