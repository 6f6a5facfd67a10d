// Anomaly detection (issue 13): is this point of a metric unusual, and is this host or
// workload behaving unlike itself?
//
// Two pure detectors. Neither reads a clock, does I/O or touches a global: the caller feeds
// one point (or one sample) per interval, in order, and decides what an interval is
// (10 s, a minute). Both keep bounded state, report memoryBytes(), and persist through a
// versioned text form with a checksum: deserialize() is total (any truncation, corruption
// or garbage gives nullopt; counts are checked against the remaining input before anything
// is allocated), and a round trip gives an object whose next answers are identical.
//
// ---- SeriesDetector: one metric --------------------------------------------------------
// Two views of each point:
//  1. Shape (after Netdata's ML). Each point is differenced (y_t - y_{t-1}) and the
//     differences are averaged over the last `smooth` of them; the feature vector of a point
//     is its smoothed difference and the `lag` before it (lag + 1 numbers). Every
//     `train_every` points a k-means model (k = 2, deterministic farthest-point start, Lloyd
//     iterations) is trained on the latest `train_window` feature vectors; its threshold is
//     the `model_quantile` (99%) quantile of the training vectors' distances to their closest
//     centroid. A point's score under a model is its distance to the closest centroid divided
//     by that threshold, so > 1 means "farther out than 99% of what the model trained on".
//     Up to `max_models` models from successive trainings are kept, and the point's score is
//     the MINIMUM over them: score > 1 means all models agree (consensus).
//  2. Level. The expected range of the raw value is a rolling median of the last
//     `range_window` values +- range_k * 1.4826 * MAD (a robust sigma), the half-width
//     floored at max(min_spread, min_spread_fraction * |centre|). With season_length
//     m >= 2, a profile keeps one value per phase (the first value seen at that phase, then
//     an EWMA with season_gamma, one update per season), and once the phase has one the
//     range is profile[phase] + median +- k robust sigmas of the window's residuals
//     (value - profile[its phase]): the profile carries the usual shape of the season, the
//     window the recent departure from it (a level change, a growth). The window keeps the
//     phase of each value (4 bytes more per entry).
//
// Decision rule (chosen from measurements, see tests/unit/anomaly_test.cpp):
//     anomalous = !learning && ((outside_range && score > joint_score) || score >= strong_score)
// with joint_score = 0.8 and strong_score = 2 by default. score > 1 is Netdata's consensus
// (every model puts the point beyond its 99% distance: ~0.4% of benign Gaussian points);
// score > 0.8 is "in every model's outer few percent" (~3.4%). Neither view alone is quiet
// enough: the range alone flags heavy tails and seasonal slopes, consensus alone about one
// benign point in 250. Together, measured over 5000-point seasonal series: 0.01-0.08% of
// points on Gaussian noise, 0.05-0.32% on Laplace or Student-t(3) noise. The range
// carries the newest point, which the k-means sees diluted among lag + 1 smoothed
// differences (a single spike is S/3 in one of 6 coordinates), so when the value is
// outside the range a slightly weaker consensus (0.8) is enough: with 1.0 a 6-sigma spike
// is caught 64% of the time instead of 86-92%, for +0.01% benign flags on Gaussian noise.
// A change of variance may stay inside the range for a few points but its feature
// vectors are far beyond the models (score >= strong_score), which flags alone.
// Caught within 3 points (Gaussian noise, 2 x 200 trials): +5 sigma level shift 96-98%
// (mostly at the first point), +4 sigma 78-84%, 8 sigma spike 98-100% (at the spike),
// 6 sigma 86-92%, noise x10 94%, x6 80-84%, x4 64% (three points of a variance change
// are often small: an oracle knowing sigma and flagging beyond 4 sigma gets ~70% at x4).
// A level shift is flagged while its differences are in the feature window (about lag +
// smooth points), not forever: the differenced features see only the transition, and the
// median catches up. A variance change is flagged until the next training absorbs it
// (<= train_every points).
//
// learning: until `learning_points` finite points have been seen and a model exists
// (min_train_points feature vectors), no point is anomalous.
// Missing points (NaN, +-inf, magnitude above 1e150) are skipped: the verdict returned is
// the previous one, the season phase still advances, and the next difference is taken
// against the last finite value.
//
// Memory, fixed at construction: 8 bytes x (train_window + lag + smooth + range_window) +
// rate_window bytes + max_models x (16 (lag + 1) + 32) + ~470 bytes; a season adds
// 8 x season_length + 4 x range_window. Defaults (720, 5, 3, 60, 60 flags, 18 models of
// 6 dims): 9140 bytes (~8.9 KiB) per series; a day of minutes as season: +11.5 KiB.
// Training allocates ~train_window x (lag + 2) doubles for its duration (~40 KiB).
// Cost: ~1.6 us per point on average, training included (one core, -O2).
//
// ---- BehaviourProfile: one host or workload ("zero-day" behaviour) ----------------------
// Per interval a BehaviourSample (the sets it served/used/talked to, bytes, connections).
// For `learning_intervals` intervals it only learns: the sets (ports served, remote ports
// used, peers, protocols, DNS names; each at most max_items, items cut to 256 bytes), the
// per-interval count of new peers and new names (after the first quarter of learning,
// when everything is new), robust ranges of bytes in/out and of the failure ratio, and the
// protocol byte shares. Then evaluate() reports the deviating features:
//   new_server_port  any port served that is not in the baseline
//   new_client_port  >= new_client_ports_min remote ports used that are not in the baseline
//   new_peers        more new peers than max(min_new_peers, new_rate_factor x p95 of the
//                    learned per-interval count); new_dns_names likewise with min_new_names
//   protocol_mix     total variation distance of the byte shares from the baseline shares
//                    above mix_threshold, or a new protocol with >= new_protocol_share
//   bytes_in/out     above max(hi x bytes_factor, hi + min_bytes), or below lo / bytes_factor
//                    when lo / bytes_factor is more than min_bytes below lo; [lo, hi] =
//                    median +- range_k robust sigmas of the recent benign intervals
//   failure_ratio    failed / connections (>= min_connections) above hi + failure_jump
// A set whose baseline is full (max_items, none unseen for forget_after intervals to evict)
// is saturated: listed in Deviation::saturated and not judged.
//
// Adaptation (so a one-off deviation is reported once, not forever):
//  - New items of a feature that did not deviate this interval (a peer or two of normal
//    churn, a tiny new protocol) join the baseline at once.
//  - New items of a deviating feature are reported, then held as pending: they are not
//    reported again while pending, join the baseline once seen in absorb_after intervals
//    (counting the first), and are dropped (so reported again if they return) after
//    pending_ttl intervals without a sighting.
//  - Numeric features learn from intervals where they did not deviate; after
//    persist_absorb consecutive deviating intervals the values are learnt anyway, so a
//    lasting change becomes the new normal within about history / 2 intervals.
//  - Counts of new peers/names are learnt from intervals where that feature did not deviate.
// Memory: max_items x (~100 bytes + item length) per set at most, five sets (plus as many
// pending), and 8 x history x 3 + 8 x 60 x 5 bytes of numbers; memoryBytes() sums the
// actual content (the test workload after 200 intervals, ~200 peers seen: ~25 KiB; at the
// 1024-item caps with 20000 peers per interval: ~80 KiB, ~5 ms per evaluate()).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace netprobe::analysis::anomaly {

namespace detail {

// A fixed-capacity ring, oldest first; the storage is reserved at construction.
template <class T>
class Ring {
public:
    Ring() = default;
    explicit Ring(std::size_t capacity) : cap_(capacity) { buf_.reserve(capacity); }
    void push(T v) {
        if (cap_ == 0) return;
        if (buf_.size() < cap_) {
            buf_.push_back(v);
        } else {
            buf_[head_] = v;
            head_ = (head_ + 1) % cap_;
        }
    }
    [[nodiscard]] std::size_t size() const { return buf_.size(); }
    [[nodiscard]] std::size_t capacity() const { return cap_; }
    [[nodiscard]] bool full() const { return buf_.size() == cap_; }
    // i = 0 is the oldest element, size() - 1 the newest.
    [[nodiscard]] T operator[](std::size_t i) const { return buf_[(head_ + i) % buf_.size()]; }
    [[nodiscard]] std::size_t bytes() const { return buf_.capacity() * sizeof(T); }

private:
    std::vector<T> buf_;
    std::size_t cap_ = 0;
    std::size_t head_ = 0;  // index of the oldest element once full
};

}  // namespace detail

// ---- one metric ---------------------------------------------------------------------------

// Out-of-range values are clamped to their bounds by the constructor.
struct SeriesOptions {
    std::size_t lag = 5;                 // feature = smoothed difference + lag previous, 1..32
    std::size_t smooth = 3;              // differences averaged, 1..32
    std::size_t train_window = 720;      // latest feature vectors a model trains on, 16..100000
    std::size_t train_every = 60;        // points between trainings, 1..100000
    std::size_t min_train_points = 180;  // feature vectors before the first model, 16..train_window
    std::size_t max_models = 18;         // models kept (consensus over all), 1..64
    double model_quantile = 0.99;        // training distance quantile = threshold, 0.5..1
    std::size_t learning_points = 360;   // finite points before anything is anomalous, <= 1e9
    std::size_t range_window = 60;       // values the expected range is over, 5..100000
    double range_k = 4;                  // half-width in robust sigmas, 0.5..100
    double min_spread = 0;               // half-width floor (the metric's unit), 0..1e150
    double min_spread_fraction = 0.001;  // half-width floor as a fraction of |centre|, 0..10
    std::size_t season_length = 0;       // phases of a season, 0 or 1 = none, at most 100000
    double season_gamma = 0.1;           // profile EWMA weight (one update per season), 0.01..1
    double joint_score = 0.8;            // score that flags together with outside_range, 0.1..strong_score
    double strong_score = 2;             // score that flags without the range, 1..1e6
    std::size_t rate_window = 60;        // points anomalyRate() is over, 1..100000
    bool operator==(const SeriesOptions&) const = default;
};

struct Verdict {
    double observed = 0;     // the value judged
    double score = 0;        // min over models of distance / threshold; > 1 = all models agree
    bool anomalous = false;
    bool outside_range = false;
    double expected_lo = 0;  // expected range of the value (before seeing it)
    double expected_hi = 0;
    bool learning = true;
};

class SeriesDetector {
public:
    using Options = SeriesOptions;

    explicit SeriesDetector(Options options = {});

    // The next point (one per interval). A missing point returns the previous verdict.
    Verdict observe(double value);

    [[nodiscard]] const Verdict& last() const { return last_; }
    // Fraction of anomalous points over the last rate_window judged (non-learning) points.
    [[nodiscard]] double anomalyRate() const;
    [[nodiscard]] std::uint64_t points() const { return points_; }  // finite points seen
    [[nodiscard]] std::uint64_t steps() const { return steps_; }    // all points, missing included
    [[nodiscard]] std::size_t models() const { return models_.size(); }
    [[nodiscard]] const Options& options() const { return opts_; }

    [[nodiscard]] std::size_t memoryBytes() const;
    [[nodiscard]] std::string serialize() const;
    [[nodiscard]] static std::optional<SeriesDetector> deserialize(std::string_view text);

private:
    struct Model {
        std::vector<double> centroids;  // 2 x (lag + 1)
        double threshold = 1;           // > 0
    };

    [[nodiscard]] std::size_t dims() const { return opts_.lag + 1; }
    [[nodiscard]] bool seasonal() const { return opts_.season_length >= 2; }
    [[nodiscard]] double scoreLatest() const;
    void train();

    Options opts_;
    std::uint64_t steps_ = 0;
    std::uint64_t points_ = 0;
    bool has_last_ = false;
    double last_value_ = 0;
    detail::Ring<double> diffs_;     // last `smooth` differences
    detail::Ring<double> smoothed_;  // train_window + lag smoothed differences
    std::uint64_t since_train_ = 0;
    std::vector<Model> models_;      // oldest first
    detail::Ring<double> window_;               // recent values
    detail::Ring<std::uint32_t> window_phase_;  // their season phases (seasonal only)
    std::vector<double> profile_;               // season profile by phase (NaN = not seen yet)
    detail::Ring<std::uint8_t> flags_;
    Verdict last_;
};

// ---- one host or workload -----------------------------------------------------------------

struct BehaviourSample {
    std::vector<std::uint32_t> ports_served;  // local ports that accepted connections
    std::vector<std::uint32_t> ports_used;    // remote server ports this entity connected to
    std::vector<std::string> peers;           // peer identities (address, pod, workload)
    std::vector<std::pair<std::string, double>> protocol_bytes;  // "tcp/443", "http" -> bytes
    double bytes_in = 0;
    double bytes_out = 0;
    std::uint64_t connections = 0;
    std::uint64_t failed_connections = 0;
    std::vector<std::string> dns_names;
};

struct BehaviourOptions {
    std::size_t learning_intervals = 60;  // 1..1e9
    std::size_t max_items = 1024;         // per set, 1..65536
    std::size_t forget_after = 10080;     // unseen intervals before a baseline item may be evicted
    std::size_t absorb_after = 3;         // sightings (intervals) that absorb a pending item, 1..1000
    std::size_t pending_ttl = 60;         // intervals a pending item waits for its next sighting, 1..1e6
    double new_rate_factor = 3;           // x p95 of learned new-per-interval counts, 1..1000
    double min_new_peers = 5;             // new peers per interval never judged unusual, 0..1e6
    double min_new_names = 5;             // new DNS names likewise, 0..1e6
    std::size_t new_client_ports_min = 1; // new remote ports in an interval that deviate, 1..65536
    std::size_t history = 120;            // benign intervals the numeric ranges are over, 5..100000
    double range_k = 4;                   // robust sigmas, 0.5..100
    double bytes_factor = 2;              // beyond the range by this factor, 1..1e6
    double min_bytes = 65536;             // and by at least this many bytes, 0..1e15
    std::size_t min_connections = 10;     // connections for the failure ratio to count, 1..1e9
    double failure_jump = 0.2;            // above the range's top by this much, 0.001..1
    double mix_threshold = 0.3;           // total variation distance, 0.01..1
    double new_protocol_share = 0.05;     // share of bytes a new protocol needs, 0..1
    double mix_alpha = 0.05;              // share EWMA after learning, 0.001..1
    std::size_t persist_absorb = 6;       // deviating intervals after which numbers are learnt, 1..1e6
    bool operator==(const BehaviourOptions&) const = default;
};

struct FeatureDeviation {
    std::string feature;    // "new_server_port", "new_client_port", "new_peers", "new_dns_names",
                            // "protocol_mix", "bytes_in", "bytes_out", "failure_ratio"
    double observed = 0;    // count of new items, bytes, ratio or distance
    double expected_lo = 0; // what was expected (a count's threshold is expected_hi)
    double expected_hi = 0;
    std::string baseline;   // the same as text ("0-6 new per interval", "1.2e+06-3.4e+06")
    double score = 0;       // observed relative to the threshold (> 1 beyond it); new ports: their number
    std::vector<std::string> examples;  // up to 5 new items (or protocol share changes)
};

struct Deviation {
    bool learning = false;
    double score = 0;  // max of the features' scores, 0 when none
    std::vector<FeatureDeviation> features;
    std::vector<std::string> saturated;  // set features not judged this interval

    [[nodiscard]] const FeatureDeviation* find(std::string_view feature) const;
};

class BehaviourProfile {
public:
    using Options = BehaviourOptions;

    explicit BehaviourProfile(Options options = {});

    // Judge one interval's sample (nothing while learning), then learn from it.
    Deviation evaluate(const BehaviourSample& sample);

    [[nodiscard]] bool learning() const { return intervals_ < opts_.learning_intervals; }
    [[nodiscard]] std::uint64_t intervals() const { return intervals_; }
    // Whether an item is in a set's baseline: set is "ports_served", "ports_used", "peers",
    // "protocols" or "dns_names".
    [[nodiscard]] bool known(std::string_view set, std::string_view item) const;
    [[nodiscard]] const Options& options() const { return opts_; }

    [[nodiscard]] std::size_t memoryBytes() const;
    [[nodiscard]] std::string serialize() const;
    [[nodiscard]] static std::optional<BehaviourProfile> deserialize(std::string_view text);

private:
    struct Pending {
        std::uint64_t last = 0;  // interval of the latest sighting
        std::uint32_t seen = 0;  // intervals seen in
    };
    struct ItemSet {
        std::map<std::string, std::uint64_t, std::less<>> known;  // item -> interval last seen
        std::map<std::string, Pending, std::less<>> pending;
        detail::Ring<double> new_counts;                          // per benign interval
    };
    struct Numeric {
        detail::Ring<double> history;
        std::uint64_t streak = 0;  // consecutive deviating intervals
    };
    struct Scan {
        std::vector<std::string> fresh;  // not known, not pending (sample order)
        bool saturated = false;
    };

    Scan scan(ItemSet& set, const std::vector<std::string>& items) const;
    void settle(ItemSet& set, const std::vector<std::string>& fresh, bool deviated, bool rate, bool warm);
    bool insertKnown(ItemSet& set, const std::string& item) const;
    [[nodiscard]] bool saturated(const ItemSet& set) const;
    [[nodiscard]] const ItemSet* setNamed(std::string_view name) const;

    Options opts_;
    std::uint64_t intervals_ = 0;
    ItemSet served_, used_, peers_, protocols_, names_;
    Numeric bytes_in_, bytes_out_, failure_;
    Numeric mix_tv_;  // total variation distances of benign intervals' mixes from the learnt one
    // The distance of an interval's shares from the learnt mix (-1: nothing learnt yet).
    [[nodiscard]] double mixDistance(const std::map<std::string, double, std::less<>>& shares) const;
    // mix_threshold, or the learnt distances' peak x 1.25 when higher.
    [[nodiscard]] double mixThreshold() const;
    std::map<std::string, double, std::less<>> mix_;  // baseline byte share by protocol
    std::uint64_t mix_n_ = 0;                          // intervals the shares learnt from
    std::uint64_t mix_streak_ = 0;
};

// FNV-1a 64 of a serialized form's body (all but its last 17 characters, " " + 16 hex
// digits); exposed so tests can corrupt a body and still get past the checksum.
[[nodiscard]] std::uint64_t blobChecksum(std::string_view body);

}  // namespace netprobe::analysis::anomaly
