// netprobe::k8s::ResponseApplier - the sink of the automatic response stage: makes the
// NetworkPolicies the ResponseView wants exist in the API, on its own thread (a slow or
// unreachable API server never holds up the pipeline or another background task).
//
//  --respond=dry-run  each policy is logged as YAML once per content, and once when it
//                     would be deleted; the API is not called.
//  --respond=on       at start, the policies a previous run of this node's agent left
//                     (labels app.kubernetes.io/managed-by=netprobe, netprobe.io/node=<node>)
//                     are listed: expired ones (annotation netprobe.io/expires-at) deleted,
//                     the others kept until they expire. Then every tick: a wanted policy
//                     that does not exist is created (POST; 409 Conflict: replaced), one
//                     whose content changed is replaced (PUT), one no longer wanted is
//                     deleted (DELETE; 404: already gone). A failed request is retried
//                     after `retry`, logged once per error.
// The state (what exists with which content, the last error per policy) is published for
// the stage to read on its next run.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include <netprobe/analysis/respond/stage.hpp>
#include <netprobe/k8s/client.hpp>

namespace netprobe::k8s {

struct ResponseApplierOptions {
    analysis::respond::Mode mode = analysis::respond::Mode::DryRun;
    std::string node;  // the label selecting this node's policies at start
    std::chrono::milliseconds interval{1000};
    std::chrono::seconds retry{10};
    std::chrono::seconds request_timeout{10};
};

class ResponseApplier {
public:
    using ViewProvider = std::function<std::shared_ptr<const analysis::respond::ResponseView>()>;
    ResponseApplier(std::shared_ptr<const Client> client, ResponseApplierOptions options, ViewProvider view);
    ~ResponseApplier();  // stop()
    ResponseApplier(const ResponseApplier&) = delete;
    ResponseApplier& operator=(const ResponseApplier&) = delete;

    void start();  // the thread: tick() every interval
    void stop();
    // One reconciliation at `now` (what the thread does; public for tests).
    void tick(std::chrono::system_clock::time_point now);
    // The published state (null before the first tick in mode on; always null in dry-run).
    [[nodiscard]] std::shared_ptr<const analysis::respond::ApplierState> state() const { return state_.load(); }

private:
    struct Known {
        analysis::respond::AppliedPolicy p;
        std::chrono::system_clock::time_point next_attempt{};
        std::chrono::system_clock::time_point adopted_until{};  // found at start: kept until then
        bool wanted_once = false;
    };
    void dryRun(const analysis::respond::ResponseView& v);
    void listLeftovers(std::chrono::system_clock::time_point now);
    bool send(Known& k, const char* method, const std::string& path, const std::string& body,
              std::chrono::system_clock::time_point now, std::initializer_list<int> ok,
              std::initializer_list<int> handled = {});
    void publish();

    std::shared_ptr<const Client> client_;
    ResponseApplierOptions opts_;
    ViewProvider view_;
    std::map<std::string, Known> known_;  // "ns/name"
    analysis::respond::ApplierState counters_;
    std::chrono::system_clock::time_point next_list_{};
    std::set<std::pair<std::string, std::uint64_t>> logged_;  // dry-run: (id, hash) shown
    std::set<std::string> logged_end_;
    std::atomic<std::shared_ptr<const analysis::respond::ApplierState>> state_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace netprobe::k8s
