// Any number of subscribers to a stream of immutable values (snapshots, views). A
// publication calls every subscriber in turn on the publishing thread; publications
// are serialized, so every subscriber sees every value once, in order.
#pragma once

#include <cstdint>
#include <functional>
#include <mutex>
#include <utility>
#include <vector>

namespace netprobe::util {

template <class T>
class Publisher {
public:
    using Fn = std::function<void(const T&)>;

    // Unsubscribes when destroyed, waiting for a publication in progress (so the
    // subscriber's state may go right after). Not from inside a publication.
    class Subscription {
    public:
        Subscription() = default;
        Subscription(Subscription&& o) noexcept : pub_(std::exchange(o.pub_, nullptr)), id_(o.id_) {}
        Subscription& operator=(Subscription&& o) noexcept {
            if (this != &o) {
                reset();
                pub_ = std::exchange(o.pub_, nullptr);
                id_ = o.id_;
            }
            return *this;
        }
        ~Subscription() { reset(); }
        void reset() {
            if (pub_) pub_->unsubscribe(id_);
            pub_ = nullptr;
        }

    private:
        friend class Publisher;
        Subscription(Publisher* p, std::uint64_t id) : pub_(p), id_(id) {}
        Publisher* pub_ = nullptr;
        std::uint64_t id_ = 0;
    };

    [[nodiscard]] Subscription subscribe(Fn fn) {
        std::lock_guard lock(subs_mu_);
        const auto id = next_++;
        subs_.emplace_back(id, std::move(fn));
        return Subscription(this, id);
    }

    // Holds publications back: take it before releasing a lock that orders the values
    // (hand-over-hand), then publish(value, lock).
    [[nodiscard]] std::unique_lock<std::mutex> hold() { return std::unique_lock(publish_mu_); }
    void publish(const T& value, std::unique_lock<std::mutex>& held) {
        std::vector<Fn> subs;
        {
            std::lock_guard lock(subs_mu_);
            subs.reserve(subs_.size());
            for (const auto& [_, fn] : subs_) subs.push_back(fn);
        }
        for (const auto& fn : subs) fn(value);
        held.unlock();
    }
    void publish(const T& value) {
        auto held = hold();
        publish(value, held);
    }

private:
    void unsubscribe(std::uint64_t id) {
        std::lock_guard publishing(publish_mu_);
        std::lock_guard lock(subs_mu_);
        std::erase_if(subs_, [id](const auto& s) { return s.first == id; });
    }

    std::mutex publish_mu_, subs_mu_;
    std::vector<std::pair<std::uint64_t, Fn>> subs_;
    std::uint64_t next_ = 1;
};

}  // namespace netprobe::util
