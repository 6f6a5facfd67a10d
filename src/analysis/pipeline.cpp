#include "netprobe/analysis/pipeline.hpp"

namespace netprobe::analysis {

Pipeline::Pipeline(collector::Collector& source) : source_(source) {
    auto empty = std::make_shared<Views>();
    empty->snapshot = source.latest();
    latest_.store(std::move(empty));
    subscription_ = source.subscribe([this](const std::shared_ptr<const collector::Snapshot>& s) { run(s); });
}

Pipeline::~Pipeline() { subscription_.reset(); }

void Pipeline::addStage(std::unique_ptr<Stage> stage) {
    std::lock_guard lock(run_mu_);
    stats_.push_back({std::string(stage->name()), 0, 0});
    stages_.push_back(std::move(stage));
}

Pipeline::ViewsPtr Pipeline::run(const std::shared_ptr<const collector::Snapshot>& snapshot) {
    std::unique_lock lock(run_mu_);
    auto views = std::make_shared<Views>();
    views->snapshot = snapshot;
    for (std::size_t i = 0; i < stages_.size(); ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        stages_[i]->run(*snapshot, *views);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        stats_[i].last_seconds = secs;
        stats_[i].max_seconds = std::max(stats_[i].max_seconds, secs);
    }
    {
        std::lock_guard s(stats_mu_);
        published_stats_ = stats_;
    }
    // The views are published with the snapshot minus its flow samples and other stage
    // inputs (security ring records, L7 requests, names: nothing the export reads): they
    // go once the collector's subscribers ran (it drops them from its latest() too),
    // instead of staying alive with these views while the next ones are built (up to one
    // sample per kernel flow entry).
    if (snapshot->hasStageInputs()) views->snapshot = snapshot->withoutFlowSamples();
    return publish(std::move(lock), std::move(views));
}

Pipeline::ViewsPtr Pipeline::publish(std::unique_lock<std::mutex> lock, std::shared_ptr<Views> views) {
    ViewsPtr out = std::move(views);
    latest_.store(out);
    auto held = sinks_.hold();
    lock.unlock();
    sinks_.publish(out, held);
    return out;
}

Pipeline::ViewsPtr Pipeline::finish() {
    std::unique_lock lock(run_mu_);
    auto snapshot = source_.latest();
    auto views = std::make_shared<Views>(*latest_.load());
    views->snapshot = snapshot->hasStageInputs() ? snapshot->withoutFlowSamples() : snapshot;
    views->exports = nullptr;  // records are handed over once: only what finish() emits
    for (auto& stage : stages_) stage->finish(*snapshot, *views);
    return publish(std::move(lock), std::move(views));
}

Pipeline::ViewsPtr Pipeline::latest() const { return latest_.load(); }

Pipeline::Subscription Pipeline::subscribe(std::function<void(const ViewsPtr&)> fn) const {
    return sinks_.subscribe(std::move(fn));
}

std::vector<StageStats> Pipeline::stageStats() const {
    std::lock_guard s(stats_mu_);
    return published_stats_;
}

}  // namespace netprobe::analysis
