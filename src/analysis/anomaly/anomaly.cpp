// Anomaly detection: see the header for the model, the decision rule and the guarantees.
#include "netprobe/analysis/anomaly/anomaly.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <unordered_set>

namespace netprobe::analysis::anomaly {
namespace {

constexpr double kMaxInput = 1e150;  // larger magnitudes are missing points
constexpr double kMaxState = 1e151;  // a deserialized number beyond this is corrupt (state stays below 2e150)
constexpr double kMaxScore = 1e12;   // scores are capped (a constant series has a zero threshold)
constexpr double kRobustSigma = 1.4826;  // MAD -> sigma of a normal distribution
constexpr std::size_t kMaxDims = 33;     // lag <= 32
constexpr std::size_t kMaxItemLength = 256;
constexpr std::size_t kExamples = 5;
constexpr std::size_t kRateHistory = 60;  // per-interval new-item counts kept
constexpr std::size_t kMinRangePoints = 5;

bool usable(double v) { return std::isfinite(v) && std::fabs(v) <= kMaxInput; }

template <class T>
T clampTo(T v, T lo, T hi) {
    if (!(v >= lo)) return lo;  // also NaN
    if (!(v <= hi)) return hi;
    return v;
}

// Median of a scratch vector (reordered).
double median(std::vector<double>& v) {
    if (v.empty()) return 0;
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    double m = v[mid];
    if (v.size() % 2 == 0) m = (m + *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid))) / 2;
    return m;
}

struct Robust {
    double centre = 0;
    double sigma = 0;  // 1.4826 x MAD
};

Robust robust(std::vector<double> v) {
    Robust r;
    if (v.empty()) return r;
    r.centre = median(v);
    for (double& x : v) x = std::fabs(x - r.centre);
    r.sigma = kRobustSigma * median(v);
    return r;
}

template <class T>
std::vector<double> values(const detail::Ring<T>& ring) {
    std::vector<double> v(ring.size());
    for (std::size_t i = 0; i < ring.size(); ++i) v[i] = static_cast<double>(ring[i]);
    return v;
}

// Linear-interpolated quantile of a scratch vector (reordered), q in [0, 1].
double quantile(std::vector<double>& v, double q) {
    if (v.empty()) return 0;
    const double pos = q * static_cast<double>(v.size() - 1);
    const auto lo = static_cast<std::size_t>(std::floor(pos));
    const double frac = pos - static_cast<double>(lo);
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(lo), v.end());
    const double a = v[lo];
    if (frac <= 0 || lo + 1 >= v.size()) return a;
    const double b = *std::min_element(v.begin() + static_cast<std::ptrdiff_t>(lo) + 1, v.end());
    return a + frac * (b - a);
}

double dist2(const double* a, const double* b, std::size_t d) {
    double s = 0;
    for (std::size_t k = 0; k < d; ++k) {
        const double e = a[k] - b[k];
        s += e * e;
    }
    return s;
}

std::string fmt(double v) {
    char buf[48];
    const auto r = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::general, 4);
    return std::string(buf, r.ptr);
}

std::string percent(double share) { return fmt(std::round(share * 1000) / 10) + "%"; }

// ---- text form: "magic version token token ... checksum" --------------------------------
// Tokens are separated by one space; numbers in their shortest round-trip form; strings as
// "<length>:<bytes>" (any bytes). The checksum is FNV-1a 64 of everything before its space,
// as 16 lowercase hex digits.

class Writer {
public:
    Writer(std::string_view magic, std::uint64_t version) : out_(magic) { u(version); }
    void u(std::uint64_t v) {
        char buf[24];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        out_ += ' ';
        out_.append(buf, r.ptr);
    }
    void d(double v) {
        char buf[48];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        out_ += ' ';
        out_.append(buf, r.ptr);
    }
    void flag(bool b) { u(b ? 1 : 0); }
    void s(std::string_view v) {
        u(v.size());
        out_ += ':';
        out_ += v;
    }
    std::string finish() && {
        char buf[17];
        const auto r = std::to_chars(buf, buf + 16, blobChecksum(out_), 16);
        const auto len = static_cast<std::size_t>(r.ptr - buf);
        out_ += ' ';
        out_.append(16 - len, '0');
        out_.append(buf, len);
        return std::move(out_);
    }

private:
    std::string out_;
};

class Reader {
public:
    Reader(std::string_view text, std::string_view magic, std::uint64_t version) {
        if (text.size() < 18 || text[text.size() - 17] != ' ') {
            ok_ = false;
            return;
        }
        const std::string_view sum = text.substr(text.size() - 16);
        std::uint64_t expected = 0;
        const auto r = std::from_chars(sum.data(), sum.data() + sum.size(), expected, 16);
        rest_ = text.substr(0, text.size() - 17);
        if (r.ec != std::errc{} || r.ptr != sum.data() + sum.size() || expected != blobChecksum(rest_)) {
            ok_ = false;
            return;
        }
        if (token() != magic || u(version) != version) ok_ = false;
    }

    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] bool finished() const { return ok_ && rest_.empty(); }

    std::uint64_t u(std::uint64_t max) {
        const std::string_view t = token();
        std::uint64_t v = 0;
        if (!ok_) return 0;
        const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
        if (r.ec != std::errc{} || r.ptr != t.data() + t.size() || v > max) return fail();
        return v;
    }
    std::size_t size(std::size_t max) { return static_cast<std::size_t>(u(max)); }
    // A count of elements to follow: each takes at least two characters of the input.
    std::size_t count(std::size_t max) {
        const std::size_t n = size(max);
        if (n > rest_.size() / 2 + 1) return static_cast<std::size_t>(fail());
        return n;
    }
    bool flag() { return u(1) == 1; }
    // A number in [lo, hi]; NaN only when allowed (an empty slot).
    double d(double lo = -kMaxState, double hi = kMaxState, bool nan_ok = false) {
        const std::string_view t = token();
        double v = 0;
        if (!ok_) return 0;
        const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
        if (r.ec != std::errc{} || r.ptr != t.data() + t.size()) return static_cast<double>(fail());
        if (std::isnan(v) ? !nan_ok : !(v >= lo && v <= hi)) return static_cast<double>(fail());
        return v;
    }
    // "<length>:<bytes>" then a separator (or the end).
    std::string str(std::size_t max_len) {
        if (!ok_) return {};
        const std::size_t colon = rest_.find(':');
        if (colon == std::string_view::npos || colon == 0 || colon > 8) return fail(), std::string{};
        std::size_t n = 0;
        const auto r = std::from_chars(rest_.data(), rest_.data() + colon, n);
        if (r.ec != std::errc{} || r.ptr != rest_.data() + colon || n > max_len || n > rest_.size() - colon - 1)
            return fail(), std::string{};
        std::string out(rest_.substr(colon + 1, n));
        rest_.remove_prefix(colon + 1 + n);
        separator();
        return out;
    }

private:
    std::uint64_t fail() {
        ok_ = false;
        return 0;
    }
    void separator() {
        if (rest_.empty()) return;
        if (rest_.front() != ' ' || rest_.size() == 1) {
            fail();
            return;
        }
        rest_.remove_prefix(1);
    }
    std::string_view token() {
        if (!ok_ || rest_.empty()) return fail(), std::string_view{};
        const std::size_t sp = rest_.find(' ');
        const std::string_view t = rest_.substr(0, sp);
        rest_.remove_prefix(sp == std::string_view::npos ? rest_.size() : sp);
        separator();
        if (t.empty()) fail();
        return t;
    }

    std::string_view rest_;
    bool ok_ = true;
};

constexpr std::string_view kSeriesMagic = "npanomaly-series";
constexpr std::string_view kBehaviourMagic = "npanomaly-behaviour";
constexpr std::uint64_t kVersion = 2;  // 2: behaviour profiles keep their mix distances

SeriesOptions clampOptions(SeriesOptions o) {
    o.lag = clampTo<std::size_t>(o.lag, 1, kMaxDims - 1);
    o.smooth = clampTo<std::size_t>(o.smooth, 1, 32);
    o.train_window = clampTo<std::size_t>(o.train_window, 16, 100000);
    o.train_every = clampTo<std::size_t>(o.train_every, 1, 100000);
    o.min_train_points = clampTo<std::size_t>(o.min_train_points, 16, o.train_window);
    o.max_models = clampTo<std::size_t>(o.max_models, 1, 64);
    o.model_quantile = clampTo(o.model_quantile, 0.5, 1.0);
    o.learning_points = clampTo<std::size_t>(o.learning_points, 0, 1000000000);
    o.range_window = clampTo<std::size_t>(o.range_window, kMinRangePoints, 100000);
    o.range_k = clampTo(o.range_k, 0.5, 100.0);
    o.min_spread = clampTo(o.min_spread, 0.0, kMaxInput);
    o.min_spread_fraction = clampTo(o.min_spread_fraction, 0.0, 10.0);
    o.season_length = clampTo<std::size_t>(o.season_length, 0, 100000);
    o.season_gamma = clampTo(o.season_gamma, 0.01, 1.0);
    o.strong_score = clampTo(o.strong_score, 1.0, 1e6);
    o.joint_score = clampTo(o.joint_score, 0.1, o.strong_score);
    o.rate_window = clampTo<std::size_t>(o.rate_window, 1, 100000);
    return o;
}

BehaviourOptions clampOptions(BehaviourOptions o) {
    o.learning_intervals = clampTo<std::size_t>(o.learning_intervals, 1, 1000000000);
    o.max_items = clampTo<std::size_t>(o.max_items, 1, 65536);
    o.forget_after = clampTo<std::size_t>(o.forget_after, 0, 1000000000);
    o.absorb_after = clampTo<std::size_t>(o.absorb_after, 1, 1000);
    o.pending_ttl = clampTo<std::size_t>(o.pending_ttl, 1, 1000000);
    o.new_rate_factor = clampTo(o.new_rate_factor, 1.0, 1000.0);
    o.min_new_peers = clampTo(o.min_new_peers, 0.0, 1e6);
    o.min_new_names = clampTo(o.min_new_names, 0.0, 1e6);
    o.new_client_ports_min = clampTo<std::size_t>(o.new_client_ports_min, 1, 65536);
    o.history = clampTo<std::size_t>(o.history, kMinRangePoints, 100000);
    o.range_k = clampTo(o.range_k, 0.5, 100.0);
    o.bytes_factor = clampTo(o.bytes_factor, 1.0, 1e6);
    o.min_bytes = clampTo(o.min_bytes, 0.0, 1e15);
    o.min_connections = clampTo<std::size_t>(o.min_connections, 1, 1000000000);
    o.failure_jump = clampTo(o.failure_jump, 0.001, 1.0);
    o.mix_threshold = clampTo(o.mix_threshold, 0.01, 1.0);
    o.new_protocol_share = clampTo(o.new_protocol_share, 0.0, 1.0);
    o.mix_alpha = clampTo(o.mix_alpha, 0.001, 1.0);
    o.persist_absorb = clampTo<std::size_t>(o.persist_absorb, 1, 1000000);
    return o;
}

}  // namespace

std::uint64_t blobChecksum(std::string_view body) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char c : body) {
        h ^= c;
        h *= 0x100000001b3ull;
    }
    return h;
}

// ======================================= SeriesDetector ======================================

SeriesDetector::SeriesDetector(Options options)
    : opts_(clampOptions(options)),
      diffs_(opts_.smooth),
      smoothed_(opts_.train_window + opts_.lag),
      window_(opts_.range_window),
      window_phase_(opts_.season_length >= 2 ? opts_.range_window : 0),
      flags_(opts_.rate_window) {
    models_.reserve(opts_.max_models);
    if (seasonal()) profile_.assign(opts_.season_length, std::numeric_limits<double>::quiet_NaN());
}

double SeriesDetector::scoreLatest() const {
    const std::size_t d = dims();
    std::array<double, kMaxDims> f{};
    const std::size_t first = smoothed_.size() - d;
    for (std::size_t k = 0; k < d; ++k) f[k] = smoothed_[first + k];
    double best = kMaxScore;
    for (const Model& m : models_) {
        const double near = std::min(dist2(f.data(), m.centroids.data(), d), dist2(f.data(), m.centroids.data() + d, d));
        best = std::min(best, std::sqrt(near) / m.threshold);
    }
    return std::isfinite(best) ? best : kMaxScore;
}

void SeriesDetector::train() {
    const std::size_t d = dims();
    const std::size_t n = std::min(smoothed_.size() + 1 - d, opts_.train_window);
    std::vector<double> x(n * d);
    const std::size_t first = smoothed_.size() - n + 1 - d;  // oldest element of the first vector
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) x[i * d + k] = smoothed_[first + i + k];

    std::vector<double> mean(d, 0.0);
    double ms = 0;  // mean square, accumulated pre-divided so it cannot overflow
    const double per = 1.0 / static_cast<double>(n * d);
    for (std::size_t i = 0; i < n; ++i)
        for (std::size_t k = 0; k < d; ++k) {
            mean[k] += x[i * d + k];
            ms += x[i * d + k] * x[i * d + k] * per;
        }
    for (double& m : mean) m /= static_cast<double>(n);
    const double rms = std::sqrt(ms);

    // Deterministic start: the vector farthest from the mean, then the one farthest from it.
    auto farthest = [&](const double* from) {
        std::size_t best = 0;
        double far = -1;
        for (std::size_t i = 0; i < n; ++i)
            if (const double e = dist2(&x[i * d], from, d); e > far) {
                far = e;
                best = i;
            }
        return best;
    };
    std::vector<double> c(2 * d);
    const std::size_t a = farthest(mean.data());
    std::copy_n(&x[a * d], d, c.begin());
    const std::size_t b = farthest(c.data());
    std::copy_n(&x[b * d], d, c.begin() + static_cast<std::ptrdiff_t>(d));

    std::vector<std::uint8_t> assign(n, 2);
    for (int it = 0; it < 50; ++it) {
        bool changed = false;
        for (std::size_t i = 0; i < n; ++i) {
            const std::uint8_t k = dist2(&x[i * d], c.data(), d) <= dist2(&x[i * d], c.data() + d, d) ? 0 : 1;
            if (k != assign[i]) {
                assign[i] = k;
                changed = true;
            }
        }
        if (!changed) break;
        std::array<std::size_t, 2> cnt{};
        std::vector<double> sum(2 * d, 0.0);
        for (std::size_t i = 0; i < n; ++i) {
            ++cnt[assign[i]];
            for (std::size_t k = 0; k < d; ++k) sum[assign[i] * d + k] += x[i * d + k];
        }
        for (std::size_t j = 0; j < 2; ++j)
            if (cnt[j] > 0)
                for (std::size_t k = 0; k < d; ++k) c[j * d + k] = sum[j * d + k] / static_cast<double>(cnt[j]);
    }

    std::vector<double> dist(n);
    for (std::size_t i = 0; i < n; ++i)
        dist[i] = std::sqrt(std::min(dist2(&x[i * d], c.data(), d), dist2(&x[i * d], c.data() + d, d)));
    double threshold = quantile(dist, opts_.model_quantile);
    threshold = std::max({threshold, 1e-9 * rms, std::numeric_limits<double>::min()});

    if (models_.size() >= opts_.max_models) models_.erase(models_.begin());
    models_.push_back(Model{std::move(c), threshold});
}

Verdict SeriesDetector::observe(double value) {
    if (!usable(value)) {
        ++steps_;
        return last_;
    }
    const bool seasonal_mode = seasonal();
    const auto phase = seasonal_mode ? static_cast<std::uint32_t>(steps_ % opts_.season_length) : 0u;

    Verdict v;
    v.observed = value;
    double half = 0;
    if (window_.size() > 0) {
        // Residuals from the season profile when the phase has one, else the raw values.
        std::vector<double> r;
        double base = 0;
        if (seasonal_mode && !std::isnan(profile_[phase])) {
            base = profile_[phase];
            r.reserve(window_.size());
            for (std::size_t i = 0; i < window_.size(); ++i)
                if (const double p = profile_[window_phase_[i]]; !std::isnan(p)) r.push_back(window_[i] - p);
        }
        if (r.empty()) {
            base = 0;
            r = values(window_);
        }
        const Robust rb = robust(std::move(r));
        const double centre = base + rb.centre;
        half = std::max({opts_.range_k * rb.sigma, opts_.min_spread, opts_.min_spread_fraction * std::fabs(centre)});
        v.expected_lo = centre - half;
        v.expected_hi = centre + half;
    } else {
        v.expected_lo = v.expected_hi = value;
    }
    v.outside_range = window_.size() >= kMinRangePoints && (value < v.expected_lo || value > v.expected_hi);

    bool fresh = false;
    if (has_last_) {
        diffs_.push(value - last_value_);
        if (diffs_.full()) {
            double s = 0;
            for (std::size_t i = 0; i < diffs_.size(); ++i) s += diffs_[i];
            smoothed_.push(s / static_cast<double>(diffs_.size()));
            fresh = true;
        }
    }
    has_last_ = true;
    last_value_ = value;

    if (fresh && smoothed_.size() >= dims() && !models_.empty()) v.score = scoreLatest();
    v.learning = points_ < opts_.learning_points || models_.empty();
    v.anomalous = !v.learning && ((v.outside_range && v.score > opts_.joint_score) || v.score >= opts_.strong_score);

    window_.push(value);
    if (seasonal_mode) {
        window_phase_.push(phase);
        double& p = profile_[phase];
        // An update moves the profile at most as far as a value on the range's edge would.
        const double step = half > 0 ? std::clamp(value - p, -half, half) : value - p;
        p = std::isnan(p) ? value : p + opts_.season_gamma * step;
    }

    ++since_train_;
    if (smoothed_.size() >= dims()) {
        const std::size_t vectors = smoothed_.size() + 1 - dims();
        if ((models_.empty() && vectors >= opts_.min_train_points) ||
            (!models_.empty() && since_train_ >= opts_.train_every)) {
            train();
            since_train_ = 0;
        }
    }
    if (!v.learning) flags_.push(v.anomalous ? 1 : 0);
    ++points_;
    ++steps_;
    last_ = v;
    return v;
}

double SeriesDetector::anomalyRate() const {
    if (flags_.size() == 0) return 0;
    std::size_t n = 0;
    for (std::size_t i = 0; i < flags_.size(); ++i) n += flags_[i];
    return static_cast<double>(n) / static_cast<double>(flags_.size());
}

std::size_t SeriesDetector::memoryBytes() const {
    std::size_t bytes = sizeof(*this) + diffs_.bytes() + smoothed_.bytes() + window_.bytes() + window_phase_.bytes() + flags_.bytes() +
                        profile_.capacity() * sizeof(double) + models_.capacity() * sizeof(Model);
    for (const Model& m : models_) bytes += m.centroids.capacity() * sizeof(double);
    // Models not trained yet will take their centroids too.
    bytes += (opts_.max_models - models_.size()) * 2 * dims() * sizeof(double);
    return bytes;
}

std::string SeriesDetector::serialize() const {
    Writer w(kSeriesMagic, kVersion);
    const Options& o = opts_;
    w.u(o.lag), w.u(o.smooth), w.u(o.train_window), w.u(o.train_every), w.u(o.min_train_points);
    w.u(o.max_models), w.d(o.model_quantile), w.u(o.learning_points), w.u(o.range_window), w.d(o.range_k);
    w.d(o.min_spread), w.d(o.min_spread_fraction), w.u(o.season_length), w.d(o.season_gamma);
    w.d(o.joint_score), w.d(o.strong_score), w.u(o.rate_window);

    w.u(steps_), w.u(points_), w.flag(has_last_), w.d(last_value_), w.u(since_train_);
    w.u(diffs_.size());
    for (std::size_t i = 0; i < diffs_.size(); ++i) w.d(diffs_[i]);
    w.u(smoothed_.size());
    for (std::size_t i = 0; i < smoothed_.size(); ++i) w.d(smoothed_[i]);
    w.u(models_.size());
    for (const Model& m : models_) {
        for (const double c : m.centroids) w.d(c);
        w.d(m.threshold);
    }
    w.u(window_.size());
    for (std::size_t i = 0; i < window_.size(); ++i) w.d(window_[i]);
    for (std::size_t i = 0; i < window_phase_.size(); ++i) w.u(window_phase_[i]);
    w.u(profile_.size());
    for (const double p : profile_) w.d(p);
    w.u(flags_.size());
    for (std::size_t i = 0; i < flags_.size(); ++i) w.u(flags_[i]);
    w.d(last_.observed), w.d(last_.score), w.flag(last_.anomalous), w.flag(last_.outside_range);
    w.d(last_.expected_lo), w.d(last_.expected_hi), w.flag(last_.learning);
    return std::move(w).finish();
}

std::optional<SeriesDetector> SeriesDetector::deserialize(std::string_view text) {
    Reader r(text, kSeriesMagic, kVersion);
    constexpr std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
    Options o;
    o.lag = r.size(1000000), o.smooth = r.size(1000000), o.train_window = r.size(1000000);
    o.train_every = r.size(1000000), o.min_train_points = r.size(1000000), o.max_models = r.size(1000000);
    o.model_quantile = r.d(), o.learning_points = r.size(big), o.range_window = r.size(1000000);
    o.range_k = r.d(), o.min_spread = r.d(), o.min_spread_fraction = r.d(), o.season_length = r.size(1000000);
    o.season_gamma = r.d(), o.joint_score = r.d(), o.strong_score = r.d(), o.rate_window = r.size(1000000);
    if (!r.ok() || !(clampOptions(o) == o)) return std::nullopt;

    SeriesDetector det(o);
    det.steps_ = r.u(big);
    det.points_ = r.u(det.steps_);
    det.has_last_ = r.flag();
    det.last_value_ = r.d(-kMaxInput, kMaxInput);
    det.since_train_ = r.u(big);
    for (std::size_t i = 0, n = r.count(o.smooth); i < n; ++i) det.diffs_.push(r.d());
    for (std::size_t i = 0, n = r.count(o.train_window + o.lag); i < n; ++i) det.smoothed_.push(r.d());
    for (std::size_t i = 0, n = r.count(o.max_models); i < n && r.ok(); ++i) {
        Model m;
        m.centroids.resize(2 * det.dims());
        for (double& c : m.centroids) c = r.d();
        m.threshold = r.d(std::numeric_limits<double>::min(), kMaxState);
        det.models_.push_back(std::move(m));
    }
    const std::size_t window = r.count(o.range_window);
    for (std::size_t i = 0; i < window; ++i) det.window_.push(r.d(-kMaxInput, kMaxInput));
    if (det.seasonal())
        for (std::size_t i = 0; i < window; ++i) det.window_phase_.push(static_cast<std::uint32_t>(r.u(o.season_length - 1)));
    if (r.count(det.profile_.size()) != det.profile_.size()) return std::nullopt;
    for (double& p : det.profile_) p = r.d(-kMaxInput, kMaxInput, true);
    for (std::size_t i = 0, n = r.count(o.rate_window); i < n; ++i) det.flags_.push(static_cast<std::uint8_t>(r.u(1)));
    det.last_.observed = r.d(-kMaxInput, kMaxInput);
    det.last_.score = r.d(0, kMaxScore);
    det.last_.anomalous = r.flag();
    det.last_.outside_range = r.flag();
    det.last_.expected_lo = r.d(-1e300, 1e300);
    det.last_.expected_hi = r.d(-1e300, 1e300);
    det.last_.learning = r.flag();
    if (!r.finished()) return std::nullopt;
    return det;
}

// ====================================== BehaviourProfile =====================================

namespace {

std::vector<std::string> uniqueItems(const std::vector<std::string>& in) {
    std::vector<std::string> out;
    std::unordered_set<std::string_view> seen;
    out.reserve(in.size());
    for (const std::string& s : in) {
        const std::string_view v = std::string_view(s).substr(0, kMaxItemLength);
        if (v.empty() || !seen.insert(v).second) continue;
        out.emplace_back(v);
    }
    return out;
}

std::vector<std::string> portItems(const std::vector<std::uint32_t>& ports) {
    std::vector<std::string> s;
    s.reserve(ports.size());
    for (const std::uint32_t p : ports) s.push_back(std::to_string(p));
    return uniqueItems(s);
}

std::vector<std::string> firstFew(const std::vector<std::string>& items) {
    return {items.begin(), items.begin() + static_cast<std::ptrdiff_t>(std::min(items.size(), kExamples))};
}

template <class Map>
std::string knownText(const Map& known) {
    std::string t = std::to_string(known.size()) + " known";
    std::size_t shown = 0;
    for (const auto& [item, _] : known) {
        if (shown == kExamples) {
            t += ", ...";
            break;
        }
        t += shown++ == 0 ? ": " : ", ";
        t += item;
    }
    return t;
}

template <class Map>
std::size_t mapBytes(const Map& m) {
    constexpr std::size_t kNode = 32 + sizeof(typename Map::value_type);  // red-black node header + pair
    std::size_t b = 0;
    for (const auto& [k, _] : m) b += kNode + (k.capacity() > 15 ? k.capacity() + 1 : 0);
    return b;
}

}  // namespace

const FeatureDeviation* Deviation::find(std::string_view feature) const {
    for (const FeatureDeviation& f : features)
        if (f.feature == feature) return &f;
    return nullptr;
}

BehaviourProfile::BehaviourProfile(Options options) : opts_(clampOptions(options)) {
    for (ItemSet* s : {&served_, &used_, &peers_, &protocols_, &names_}) s->new_counts = detail::Ring<double>(kRateHistory);
    for (Numeric* n : {&bytes_in_, &bytes_out_, &failure_, &mix_tv_}) n->history = detail::Ring<double>(opts_.history);
}

bool BehaviourProfile::saturated(const ItemSet& set) const {
    if (set.known.size() < opts_.max_items) return false;
    for (const auto& [_, last] : set.known)
        if (intervals_ - last > opts_.forget_after) return false;
    return true;
}

BehaviourProfile::Scan BehaviourProfile::scan(ItemSet& set, const std::vector<std::string>& items) const {
    Scan s;
    for (const std::string& item : items) {
        if (const auto k = set.known.find(item); k != set.known.end()) {
            k->second = intervals_;
        } else if (const auto p = set.pending.find(item); p != set.pending.end()) {
            ++p->second.seen;
            p->second.last = intervals_;
        } else {
            s.fresh.push_back(item);
        }
    }
    s.saturated = saturated(set);
    return s;
}

bool BehaviourProfile::insertKnown(ItemSet& set, const std::string& item) const {
    if (set.known.size() >= opts_.max_items) {
        auto oldest = set.known.begin();
        for (auto it = set.known.begin(); it != set.known.end(); ++it)
            if (it->second < oldest->second) oldest = it;
        if (oldest == set.known.end() || intervals_ - oldest->second <= opts_.forget_after) return false;
        set.known.erase(oldest);
    }
    set.known.emplace(item, intervals_);
    return true;
}

void BehaviourProfile::settle(ItemSet& set, const std::vector<std::string>& fresh, bool deviated, bool rate, bool warm) {
    const bool learn = learning();
    if (learn || !deviated) {
        for (const std::string& f : fresh)
            if (!insertKnown(set, f)) break;
    } else {
        for (const std::string& f : fresh) {
            if (set.pending.size() >= opts_.max_items) break;
            set.pending.emplace(f, Pending{intervals_, 1});
        }
    }
    for (auto it = set.pending.begin(); it != set.pending.end();) {
        if (it->second.seen >= opts_.absorb_after && insertKnown(set, it->first))
            it = set.pending.erase(it);
        else if (intervals_ - it->second.last > opts_.pending_ttl)
            it = set.pending.erase(it);
        else
            ++it;
    }
    if (rate && (learn ? warm : !deviated)) set.new_counts.push(static_cast<double>(fresh.size()));
}

const BehaviourProfile::ItemSet* BehaviourProfile::setNamed(std::string_view name) const {
    if (name == "ports_served") return &served_;
    if (name == "ports_used") return &used_;
    if (name == "peers") return &peers_;
    if (name == "protocols") return &protocols_;
    if (name == "dns_names") return &names_;
    return nullptr;
}

bool BehaviourProfile::known(std::string_view set, std::string_view item) const {
    const ItemSet* s = setNamed(set);
    return s != nullptr && s->known.contains(item);
}

double BehaviourProfile::mixDistance(const std::map<std::string, double, std::less<>>& shares) const {
    double qsum = 0;
    for (const auto& [_, q] : mix_) qsum += q;
    if (qsum <= 0) return -1;
    double tv = 0;
    for (const auto& [k, p] : shares) {
        const auto q = mix_.find(k);
        tv += std::fabs(p - (q == mix_.end() ? 0.0 : q->second / qsum));
    }
    for (const auto& [k, q] : mix_)
        if (!shares.contains(k)) tv += q / qsum;
    return tv / 2;
}

double BehaviourProfile::mixThreshold() const {
    if (mix_tv_.history.size() < kMinRangePoints) return opts_.mix_threshold;
    const auto h = values(mix_tv_.history);
    return std::max(opts_.mix_threshold, std::min(1.0, *std::max_element(h.begin(), h.end()) * 1.25));
}

Deviation BehaviourProfile::evaluate(const BehaviourSample& sample) {
    Deviation out;
    const bool learn = learning();
    out.learning = learn;
    const bool warm = intervals_ >= std::max<std::uint64_t>(1, opts_.learning_intervals / 4);

    // Protocol byte shares of this interval.
    std::vector<std::string> proto_names;
    std::map<std::string, double, std::less<>> shares;
    double total = 0;
    for (const auto& [name, bytes] : sample.protocol_bytes) {
        if (!usable(bytes) || bytes <= 0) continue;
        const std::string key(std::string_view(name).substr(0, kMaxItemLength));
        if (key.empty()) continue;
        proto_names.push_back(key);
        shares[key] += bytes;
        total += bytes;
    }
    if (total > 0)
        for (auto& [_, s] : shares) s /= total;
    proto_names = uniqueItems(proto_names);

    const Scan served = scan(served_, portItems(sample.ports_served));
    const Scan used = scan(used_, portItems(sample.ports_used));
    const Scan peers = scan(peers_, uniqueItems(sample.peers));
    const Scan protos = scan(protocols_, proto_names);
    const Scan names = scan(names_, uniqueItems(sample.dns_names));

    bool dev_served = false, dev_used = false, dev_peers = false, dev_names = false, dev_new_proto = false,
         dev_mix = false, dev_in = false, dev_out = false, dev_fail = false;
    double mix_tv_now = -1;  // this interval's mix distance, once computed

    const auto rateThreshold = [&](const ItemSet& set, double floor) {
        std::vector<double> counts = values(set.new_counts);
        return std::max(floor, opts_.new_rate_factor * quantile(counts, 0.95));
    };
    const auto newPorts = [&](const Scan& s, const ItemSet& set, const char* feature, std::size_t min) {
        if (s.saturated || s.fresh.size() < min) return false;
        const auto n = static_cast<double>(s.fresh.size());
        out.features.push_back({feature, n, 0, static_cast<double>(min - 1), knownText(set.known), n, firstFew(s.fresh)});
        return true;
    };
    const auto newRate = [&](const Scan& s, const ItemSet& set, const char* feature, double floor) {
        if (s.saturated) return false;
        const double thr = rateThreshold(set, floor);
        const auto n = static_cast<double>(s.fresh.size());
        if (n <= thr) return false;
        out.features.push_back({feature, n, 0, thr, "0-" + fmt(thr) + " new per interval", n / std::max(thr, 1.0),
                                firstFew(s.fresh)});
        return true;
    };
    const auto bytes = [&](const Numeric& num, double obs, const char* feature) {
        if (!usable(obs) || obs < 0 || num.history.size() < kMinRangePoints) return false;
        const auto hist = values(num.history);
        const Robust r = robust(hist);
        const double lo = std::max(0.0, r.centre - opts_.range_k * r.sigma);
        const double hi = r.centre + opts_.range_k * r.sigma;
        // the busiest benign interval counts too: a periodic bulk transfer is no deviation
        const double peak = *std::max_element(hist.begin(), hist.end());
        const double upper = std::max({hi * opts_.bytes_factor, hi + opts_.min_bytes, peak * opts_.bytes_factor});
        const double lower = lo / opts_.bytes_factor;
        double score = 0;
        if (obs > upper)
            score = upper > 0 ? obs / upper : kMaxScore;
        else if (lo - lower >= opts_.min_bytes && lo - lower > 0 && obs < lower)
            score = std::min(kMaxScore, lower / std::max(obs, lower / kMaxScore));
        else
            return false;
        out.features.push_back({feature, obs, lo, hi, fmt(lo) + "-" + fmt(hi), std::min(score, kMaxScore), {}});
        return true;
    };

    const bool fail_counts = sample.connections >= opts_.min_connections;
    const double ratio = fail_counts ? std::min(1.0, static_cast<double>(sample.failed_connections) /
                                                         static_cast<double>(sample.connections))
                                     : 0.0;

    if (!learn) {
        for (const auto& [scan_, name] : {std::pair{&served, "ports_served"}, std::pair{&used, "ports_used"},
                                          std::pair{&peers, "peers"}, std::pair{&protos, "protocols"},
                                          std::pair{&names, "dns_names"}})
            if (scan_->saturated) out.saturated.emplace_back(name);

        dev_served = newPorts(served, served_, "new_server_port", 1);
        dev_used = newPorts(used, used_, "new_client_port", opts_.new_client_ports_min);
        dev_peers = newRate(peers, peers_, "new_peers", opts_.min_new_peers);
        dev_names = newRate(names, names_, "new_dns_names", opts_.min_new_names);

        double qsum = 0;
        for (const auto& [_, q] : mix_) qsum += q;
        if (total > 0 && mix_n_ > 0 && qsum > 0) {
            const double tv = mixDistance(shares);
            // a mix that swings between intervals (a periodic bulk transfer) learnt its swing
            const double thr = mixThreshold();
            std::vector<std::string> examples;
            double score = tv / thr;
            if (!protos.saturated)
                for (const std::string& p : protos.fresh) {
                    const double s = shares[p];
                    if (s < opts_.new_protocol_share) continue;
                    dev_new_proto = true;
                    score = std::max(score, opts_.new_protocol_share > 0 ? s / opts_.new_protocol_share : kMaxScore);
                    if (examples.size() < kExamples) examples.push_back(p + " new " + percent(s));
                }
            dev_mix = dev_new_proto || tv > thr;
            mix_tv_now = tv;
            if (dev_mix) {
                // The largest share changes after the new protocols.
                std::vector<std::pair<double, std::string>> changes;
                for (const auto& [k, p] : shares)
                    if (const auto q = mix_.find(k); q != mix_.end())
                        changes.emplace_back(std::fabs(p - q->second / qsum), k + " " + percent(q->second / qsum) + "->" + percent(p));
                for (const auto& [k, q] : mix_)
                    if (!shares.contains(k)) changes.emplace_back(q / qsum, k + " " + percent(q / qsum) + "->0%");
                std::sort(changes.begin(), changes.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
                for (const auto& [_, text] : changes)
                    if (examples.size() < kExamples) examples.push_back(text);
                std::vector<std::pair<double, std::string>> top;
                for (const auto& [k, q] : mix_) top.emplace_back(q / qsum, k);
                std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
                std::string text;
                for (std::size_t i = 0; i < top.size() && i < 3; ++i)
                    text += (i ? ", " : "") + top[i].second + " " + percent(top[i].first);
                out.features.push_back({"protocol_mix", tv, 0, thr, text, score, std::move(examples)});
            }
        }

        dev_in = bytes(bytes_in_, sample.bytes_in, "bytes_in");
        dev_out = bytes(bytes_out_, sample.bytes_out, "bytes_out");

        if (fail_counts && failure_.history.size() >= kMinRangePoints) {
            const Robust r = robust(values(failure_.history));
            const double lo = std::max(0.0, r.centre - opts_.range_k * r.sigma);
            const double hi = std::min(1.0, r.centre + opts_.range_k * r.sigma);
            const double thr = hi + opts_.failure_jump;
            if (ratio > thr) {
                dev_fail = true;
                out.features.push_back({"failure_ratio", ratio, lo, hi, fmt(lo) + "-" + fmt(hi), ratio / thr,
                                        {std::to_string(sample.failed_connections) + " of " +
                                         std::to_string(sample.connections) + " failed"}});
            }
        }
    }

    // Learn.
    settle(served_, served.fresh, dev_served, false, warm);
    settle(used_, used.fresh, dev_used, false, warm);
    settle(peers_, peers.fresh, dev_peers, !peers.saturated, warm);
    settle(protocols_, protos.fresh, dev_new_proto, false, warm);
    settle(names_, names.fresh, dev_names, !names.saturated, warm);

    const auto learnNumber = [&](Numeric& num, double v, bool deviated) {
        if (!usable(v) || v < 0) return;
        if (learn || !deviated) {
            num.history.push(v);
            num.streak = 0;
        } else if (++num.streak >= opts_.persist_absorb) {
            num.history.push(v);
        }
    };
    if (total > 0 && mix_n_ > 0) {  // the mix distances of benign intervals (learning included)
        if (mix_tv_now < 0) mix_tv_now = mixDistance(shares);
        if (mix_tv_now >= 0) learnNumber(mix_tv_, mix_tv_now, dev_mix);
    }
    learnNumber(bytes_in_, sample.bytes_in, dev_in);
    learnNumber(bytes_out_, sample.bytes_out, dev_out);
    if (fail_counts) learnNumber(failure_, ratio, dev_fail);

    if (total > 0) {
        bool update = learn || !dev_mix;
        if (!learn) mix_streak_ = dev_mix ? mix_streak_ + 1 : 0;
        if (!learn && dev_mix && mix_streak_ >= opts_.persist_absorb) update = true;
        if (update) {
            const double w = learn ? 1.0 / static_cast<double>(++mix_n_) : opts_.mix_alpha;
            if (!learn) ++mix_n_;
            for (auto& [k, q] : mix_) {
                const auto p = shares.find(k);
                q += w * ((p == shares.end() ? 0.0 : p->second) - q);
            }
            for (const auto& [k, p] : shares)
                if (!mix_.contains(k) && mix_.size() < opts_.max_items) mix_.emplace(k, w * p);
            std::erase_if(mix_, [](const auto& e) { return e.second < 1e-6; });
        }
    }

    ++intervals_;
    for (const FeatureDeviation& f : out.features) out.score = std::max(out.score, f.score);
    return out;
}

std::size_t BehaviourProfile::memoryBytes() const {
    std::size_t b = sizeof(*this) + mapBytes(mix_);
    for (const ItemSet* s : {&served_, &used_, &peers_, &protocols_, &names_})
        b += mapBytes(s->known) + mapBytes(s->pending) + s->new_counts.bytes();
    for (const Numeric* n : {&bytes_in_, &bytes_out_, &failure_, &mix_tv_}) b += n->history.bytes();
    return b;
}

std::string BehaviourProfile::serialize() const {
    Writer w(kBehaviourMagic, kVersion);
    const Options& o = opts_;
    w.u(o.learning_intervals), w.u(o.max_items), w.u(o.forget_after), w.u(o.absorb_after), w.u(o.pending_ttl);
    w.d(o.new_rate_factor), w.d(o.min_new_peers), w.d(o.min_new_names), w.u(o.new_client_ports_min);
    w.u(o.history), w.d(o.range_k), w.d(o.bytes_factor), w.d(o.min_bytes), w.u(o.min_connections);
    w.d(o.failure_jump), w.d(o.mix_threshold), w.d(o.new_protocol_share), w.d(o.mix_alpha), w.u(o.persist_absorb);

    w.u(intervals_);
    for (const ItemSet* s : {&served_, &used_, &peers_, &protocols_, &names_}) {
        w.u(s->known.size());
        for (const auto& [item, last] : s->known) w.s(item), w.u(last);
        w.u(s->pending.size());
        for (const auto& [item, p] : s->pending) w.s(item), w.u(p.last), w.u(p.seen);
        w.u(s->new_counts.size());
        for (std::size_t i = 0; i < s->new_counts.size(); ++i) w.d(s->new_counts[i]);
    }
    for (const Numeric* n : {&bytes_in_, &bytes_out_, &failure_, &mix_tv_}) {
        w.u(n->history.size());
        for (std::size_t i = 0; i < n->history.size(); ++i) w.d(n->history[i]);
        w.u(n->streak);
    }
    w.u(mix_n_), w.u(mix_streak_), w.u(mix_.size());
    for (const auto& [k, q] : mix_) w.s(k), w.d(q);
    return std::move(w).finish();
}

std::optional<BehaviourProfile> BehaviourProfile::deserialize(std::string_view text) {
    Reader r(text, kBehaviourMagic, kVersion);
    constexpr std::uint64_t big = std::numeric_limits<std::uint64_t>::max();
    Options o;
    o.learning_intervals = r.size(big), o.max_items = r.size(1000000), o.forget_after = r.size(big);
    o.absorb_after = r.size(big), o.pending_ttl = r.size(big), o.new_rate_factor = r.d(), o.min_new_peers = r.d();
    o.min_new_names = r.d(), o.new_client_ports_min = r.size(big), o.history = r.size(1000000);
    o.range_k = r.d(), o.bytes_factor = r.d(), o.min_bytes = r.d(), o.min_connections = r.size(big);
    o.failure_jump = r.d(), o.mix_threshold = r.d(), o.new_protocol_share = r.d(), o.mix_alpha = r.d();
    o.persist_absorb = r.size(big);
    if (!r.ok() || !(clampOptions(o) == o)) return std::nullopt;

    BehaviourProfile p(o);
    p.intervals_ = r.u(big);
    for (ItemSet* s : {&p.served_, &p.used_, &p.peers_, &p.protocols_, &p.names_}) {
        for (std::size_t i = 0, n = r.count(o.max_items); i < n && r.ok(); ++i) {
            std::string item = r.str(kMaxItemLength);
            const std::uint64_t last = r.u(p.intervals_);
            if (item.empty() || !s->known.emplace(std::move(item), last).second) return std::nullopt;
        }
        for (std::size_t i = 0, n = r.count(o.max_items); i < n && r.ok(); ++i) {
            std::string item = r.str(kMaxItemLength);
            const std::uint64_t last = r.u(p.intervals_);
            const auto seen = static_cast<std::uint32_t>(r.u(std::numeric_limits<std::uint32_t>::max()));
            if (item.empty() || seen == 0 || s->known.contains(item) || !s->pending.emplace(std::move(item), Pending{last, seen}).second)
                return std::nullopt;
        }
        for (std::size_t i = 0, n = r.count(kRateHistory); i < n; ++i) s->new_counts.push(r.d(0, kMaxState));
    }
    for (Numeric* n : {&p.bytes_in_, &p.bytes_out_, &p.failure_, &p.mix_tv_}) {
        for (std::size_t i = 0, c = r.count(o.history); i < c; ++i) n->history.push(r.d(0, kMaxInput));
        n->streak = r.u(big);
    }
    p.mix_n_ = r.u(big);
    p.mix_streak_ = r.u(big);
    for (std::size_t i = 0, n = r.count(o.max_items); i < n && r.ok(); ++i) {
        std::string k = r.str(kMaxItemLength);
        const double q = r.d(0, 1);
        if (k.empty() || !p.mix_.emplace(std::move(k), q).second) return std::nullopt;
    }
    if (!r.finished()) return std::nullopt;
    return p;
}

}  // namespace netprobe::analysis::anomaly
