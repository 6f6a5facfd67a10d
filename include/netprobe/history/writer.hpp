// The history store's writer thread: the analysis pipeline hands it batches of points
// (push never blocks: a bounded queue that drops its oldest batch when full), it appends
// them in the background and runs the store's maintenance every few minutes. stop() (or
// the destructor) writes what is queued, then joins.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include <netprobe/history/store.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::history {

struct WriterOptions {
    std::size_t queue_batches = 256;  // batches waiting; a push beyond drops the oldest
    std::chrono::milliseconds maintain_interval{std::chrono::minutes(5)};
    std::function<std::int64_t()> now;  // unix seconds for maintain(); empty: the system clock
};

struct WriterStats {
    StoreStats store;
    std::uint64_t batches_written = 0;   // appended (successfully or not: see store.write_errors)
    std::uint64_t batches_dropped = 0;   // the oldest, dropped from a full queue
    std::uint64_t points_dropped = 0;    // their points
    std::uint64_t batches_refused = 0;   // pushed after stop()
    std::uint64_t queued = 0;            // batches waiting now
    std::uint64_t maintenance_runs = 0;
    std::uint64_t maintenance_errors = 0;
};

class Writer {
public:
    [[nodiscard]] static Result<std::unique_ptr<Writer>> start(Store store, WriterOptions options = {});
    ~Writer();  // stop()
    Writer(const Writer&) = delete;
    Writer& operator=(const Writer&) = delete;

    // Any thread, never blocks on the store. false: stopped (the batch is discarded).
    bool push(std::vector<Point> batch);
    // Waits until every batch pushed before it has been written or dropped (tests, shutdown).
    void flush();
    // Writes what is queued, then joins the thread. Idempotent.
    void stop();

    // Reads (query, listSeries, getState) and model state from any thread: the store is
    // internally synchronised. Points go through push().
    [[nodiscard]] Store& store() { return store_; }
    [[nodiscard]] const Store& store() const { return store_; }
    [[nodiscard]] WriterStats stats() const;

private:
    Writer(Store store, WriterOptions options);
    void loop();
    [[nodiscard]] std::int64_t now() const;

    Store store_;
    WriterOptions options_;
    mutable std::mutex mu_;
    std::condition_variable wake_;   // the thread: a batch, stop
    std::condition_variable idle_;   // flush(): the queue is empty and nothing is being written
    std::deque<std::vector<Point>> queue_;
    bool writing_ = false;
    bool stopping_ = false;
    bool exited_ = false;            // the thread has returned
    WriterStats counters_;           // (without store; under mu_)
    std::chrono::steady_clock::time_point last_error_log_{};
    std::thread thread_;
};

}  // namespace netprobe::history
