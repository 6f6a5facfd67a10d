// A source reads one part of the kernel's state into the snapshot being built:
// the datapath maps, the stack monitor, the per-cgroup counters, the security ring.
//
//   class MySource : public collector::Source {
//       std::string_view name() const override { return "mine"; }
//       Result<void> collect(collector::SnapshotBuilder& b) override { b.snapshot().x = read(); return {}; }
//   };
//   collector.addSource(std::make_shared<MySource>());
#pragma once

#include <memory>
#include <string_view>

#include <netprobe/collector/snapshot.hpp>
#include <netprobe/util/error.hpp>

namespace netprobe::collector {

// The snapshot of one collection while the sources fill it, with the collection's time.
class SnapshotBuilder {
public:
    SnapshotBuilder(std::uint64_t sequence, MonoTime mono, WallTime wall, double interval_seconds);
    [[nodiscard]] Snapshot& snapshot() { return *snap_; }
    [[nodiscard]] const Snapshot& snapshot() const { return *snap_; }
    [[nodiscard]] std::shared_ptr<const Snapshot> finish() { return std::move(snap_); }

private:
    std::shared_ptr<Snapshot> snap_;
};

class Source {
public:
    virtual ~Source() = default;
    [[nodiscard]] virtual std::string_view name() const = 0;
    // A required source's failure fails the collection (nothing is published); an
    // optional one's costs only its part of the snapshot.
    [[nodiscard]] virtual bool required() const { return false; }
    // Reads the source's part into b. Called on the collector's thread, one
    // collection at a time. Map reads only: slow work belongs to a scheduler task.
    virtual Result<void> collect(SnapshotBuilder& b) = 0;
};

}  // namespace netprobe::collector
