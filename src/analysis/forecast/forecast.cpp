// Holt-Winters forecasting with calibrated intervals, the seasonal naive baseline and the
// capacity helpers (see the header for the model and its guarantees).
#include <netprobe/analysis/forecast/forecast.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <tuple>
#include <utility>

namespace netprobe::analysis::forecast {

namespace {

constexpr double kMaxAbs = 1e150;  // larger inputs are treated as missing (their squares stay finite)
constexpr double kOutputCap = 1e300;
constexpr std::size_t kMaxSeason = 100000;
constexpr std::size_t kMaxHorizon = 100000;
constexpr std::size_t kMaxWindow = 10000;
constexpr double kDefaultAlpha = 0.2, kDefaultBeta = 0.02, kDefaultGamma = 0.1;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr std::size_t kTheilSenPoints = 256;

bool usable(double y) { return std::isfinite(y) && std::fabs(y) <= kMaxAbs; }

double capped(double v) {
    if (std::isnan(v)) return 0;
    return std::clamp(v, -kOutputCap, kOutputCap);
}

// Standard normal quantile: Newton's method on the CDF written with erfc.
double normalQuantile(double p) {
    p = std::clamp(p, 1e-12, 1 - 1e-12);
    double z = 0;
    for (int i = 0; i < 60; ++i) {
        const double cdf = 0.5 * std::erfc(-z / std::sqrt(2.0));
        const double pdf = std::exp(-0.5 * z * z) / std::sqrt(2 * std::acos(-1.0));
        const double dz = (cdf - p) / std::max(pdf, 1e-300);
        z -= std::clamp(dz, -2.0, 2.0);
        if (std::fabs(dz) < 1e-13) break;
    }
    return z;
}

// Sum of phi^1 .. phi^h.
double dampSum(double phi, double h) {
    if (phi >= 1) return h;
    return phi * (1 - std::pow(phi, h)) / (1 - phi);
}

// The two ends of a central interval of `level` from n sorted errors, at the split-conformal
// ranks floor((n + 1) a / 2) and ceil((n + 1) (1 - a / 2)) with a = 1 - level: a new error
// exchangeable with these falls between them with probability >= level (up to ranks
// clamped to [1, n]).
std::pair<double, double> conformalBounds(const std::vector<double>& v, double level) {
    if (v.empty()) return {0, 0};
    const double n1 = static_cast<double>(v.size() + 1), a = 1 - level;
    const double lo = std::floor(n1 * a / 2), hi = std::ceil(n1 * (1 - a / 2));
    const auto rank = [&](double r) { return v[static_cast<std::size_t>(std::clamp(r, 1.0, n1 - 1)) - 1]; };
    return {rank(lo), rank(hi)};
}

double median(std::vector<double>& v) {
    if (v.empty()) return 0;
    const std::size_t mid = v.size() / 2;
    std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid), v.end());
    const double hi = v[mid];
    if (v.size() % 2 == 1) return hi;
    const double lo = *std::max_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(mid));
    return lo + (hi - lo) / 2;
}

struct Params {
    double alpha, beta, gamma, phi;
};

// One observed point: the smoothing equations, except when this point completes a run
// of `run_needed` one-step errors beyond 2 sigma on the same side: that is a level shift,
// not noise, so the level jumps to the point (alpha = 1) and the trend returns to its
// value before the run (the run would otherwise have bent it). s is the seasonal offset of
// y's phase, updated in place. Returns the one-step error; `shifted` tells a shift.
double observe(detail::Core& c, double& s, double y, const Params& p, std::uint32_t run_needed, bool& shifted) {
    const double e = y - (c.level + p.phi * c.trend + s);
    const double sd = std::sqrt(c.sigma2);
    shifted = false;
    const std::int32_t sign = e > 0 ? 1 : -1;
    if (c.n_errors >= 10 && std::fabs(e) > 2 * sd) {
        if (sign != c.run_sign) {
            c.run_sign = sign;
            c.run_len = 0;
            c.run_trend = c.trend;
        }
        ++c.run_len;
    } else {
        c.run_len = 0;
        c.run_sign = 0;
    }
    if (c.run_len >= run_needed) {
        c.level = y - s;  // the season keeps its value: gamma (y - level) + (1 - gamma) s = s
        c.trend = c.run_trend;
        c.run_len = 0;
        c.run_sign = 0;
        shifted = true;
    } else {
        const double prev = c.level;
        c.level = p.alpha * (y - s) + (1 - p.alpha) * (c.level + p.phi * c.trend);
        c.trend = p.beta * (c.level - prev) + (1 - p.beta) * p.phi * c.trend;
        s = p.gamma * (y - c.level) + (1 - p.gamma) * s;
    }
    // Clipped at 3 sigma (after 30 errors) so that one outlier or a shift's first errors
    // do not blow sigma up; a real change of the noise still grows it ~16% a step.
    const double clip = c.n_errors >= 30 ? 3 * sd : std::numeric_limits<double>::infinity();
    const double ec = std::clamp(e, -clip, clip);
    ++c.n_errors;
    const double w = std::max(1.0 / static_cast<double>(c.n_errors), 0.02);
    c.sigma2 = (1 - w) * c.sigma2 + w * ec * ec;
    return e;
}

void carry(detail::Core& c, double phi) {  // a missing point: the model's own forecast
    c.level += phi * c.trend;
    c.trend *= phi;
}

// Consecutive one-sided large errors that make a level shift: about a twelfth of a season,
// 4 to 8 points (without a season, 5).
std::uint32_t shiftRun(std::size_t m) {
    return m == 0 ? 5 : static_cast<std::uint32_t>(std::clamp<std::size_t>(m / 12, 4, 8));
}

// The state before the first point of a history.
struct Init {
    double level = 0, trend = 0;
    std::vector<double> season;  // m offsets, or empty
    bool has = false;
};

Init holtInit(std::span<const double> h) {
    Init init;
    const TrendFit line = trend(h.first(std::min<std::size_t>(h.size(), 20)));
    if (line.points == 0) return init;
    init.has = true;
    init.trend = line.points >= 2 ? line.slope : 0;
    init.level = line.at(-1);
    if (!usable(init.level) || !usable(init.trend)) {
        init.trend = 0;
        for (double y : h)
            if (usable(y)) {
                init.level = y;
                break;
            }
    }
    return init;
}

// From the first two seasons: level and trend from their means, the season from each
// phase's deviation from the (trend-adjusted) mean, centred on zero.
Init seasonalInit(std::span<const double> h, std::size_t m) {
    Init init;
    init.season.assign(m, 0);
    std::array<double, 2> mean{0, 0};
    std::array<std::size_t, 2> count{0, 0};
    for (std::size_t k = 0; k < 2; ++k)
        for (std::size_t i = 0; i < m; ++i)
            if (const double y = h[k * m + i]; usable(y)) {
                mean[k] += y;
                ++count[k];
            }
    if (count[0] + count[1] == 0) return init;
    init.has = true;
    for (std::size_t k = 0; k < 2; ++k)
        if (count[k] > 0) mean[k] /= static_cast<double>(count[k]);
    if (count[0] == 0) mean[0] = mean[1];
    if (count[1] == 0) mean[1] = mean[0];
    const double md = static_cast<double>(m);
    init.trend = (count[0] > 0 && count[1] > 0) ? (mean[1] - mean[0]) / md : 0;
    const double centre = (md - 1) / 2;
    double total = 0;
    for (std::size_t i = 0; i < m; ++i) {
        double sum = 0;
        int n = 0;
        for (std::size_t k = 0; k < 2; ++k)
            if (const double y = h[k * m + i]; usable(y)) {
                sum += y - (mean[k] + init.trend * (static_cast<double>(i) - centre));
                ++n;
            }
        init.season[i] = n > 0 ? sum / n : 0;
        total += init.season[i];
    }
    for (double& s : init.season) s -= total / md;
    init.level = mean[0] - init.trend * (centre + 1);
    return init;
}

// Squared one-step errors of a parameter set over a history (the first `warm` skipped).
double oneStepSse(const Init& init, std::span<const double> h, std::size_t m, const Params& p, std::size_t warm) {
    detail::Core c;
    c.level = init.level;
    c.trend = init.trend;
    std::vector<double> season = init.season;
    bool has = init.has;
    double sse = 0, dummy = 0;
    const std::uint32_t run = shiftRun(m);
    for (std::size_t t = 0; t < h.size(); ++t) {
        const double y = h[t];
        if (!has) {
            if (usable(y)) {
                c.level = y;
                has = true;
            }
            continue;
        }
        double& s = m > 0 ? season[t % m] : dummy;
        if (!usable(y)) {
            carry(c, p.phi);
            continue;
        }
        bool shifted = false;
        const double e = observe(c, s, y, p, run, shifted);
        if (t >= warm) sse += e * e;
    }
    return std::isfinite(sse) ? sse : std::numeric_limits<double>::infinity();
}

// ---- text form: tokens separated by one space, a checksum last --------------------------

std::uint64_t fnv1a(std::string_view s) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) {
        h ^= c;
        h *= 1099511628211ull;
    }
    return h;
}

class Writer {
public:
    void u(std::uint64_t v) {
        char buf[32];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    }
    void d(double v) {
        char buf[64];
        const auto r = std::to_chars(buf, buf + sizeof buf, v);
        put(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
    }
    void put(std::string_view token) {
        if (!out_.empty()) out_ += ' ';
        out_ += token;
    }
    std::string finish() {
        char buf[17];
        const auto r = std::to_chars(buf, buf + 16, fnv1a(out_), 16);
        std::string sum(buf, static_cast<std::size_t>(r.ptr - buf));
        out_ += ' ';
        out_ += std::string(16 - sum.size(), '0') + sum;
        return std::move(out_);
    }

private:
    std::string out_;
};

class Reader {
public:
    explicit Reader(std::string_view body) : rest_(body) {}
    bool token(std::string_view& t) {
        if (!ok_ || rest_.empty()) return ok_ = false;
        const std::size_t sp = rest_.find(' ');
        t = rest_.substr(0, sp);
        rest_ = sp == std::string_view::npos ? std::string_view{} : rest_.substr(sp + 1);
        if (t.empty() || (sp != std::string_view::npos && rest_.empty())) return ok_ = false;
        return true;
    }
    bool u(std::uint64_t& v, std::uint64_t max) {
        std::string_view t;
        if (!token(t)) return false;
        const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
        if (r.ec != std::errc{} || r.ptr != t.data() + t.size() || v > max) return ok_ = false;
        return true;
    }
    // State is any finite number; a raw point (raw) is NaN (missing) or usable.
    bool d(double& v, bool raw = false) {
        std::string_view t;
        if (!token(t)) return false;
        const auto r = std::from_chars(t.data(), t.data() + t.size(), v);
        if (r.ec != std::errc{} || r.ptr != t.data() + t.size()) return ok_ = false;
        if (raw ? (!std::isnan(v) && !usable(v)) : !std::isfinite(v)) return ok_ = false;
        return true;
    }
    [[nodiscard]] bool done() const { return ok_ && rest_.empty(); }

private:
    std::string_view rest_;
    bool ok_ = true;
};

constexpr std::string_view kMagic = "nphw";
constexpr std::uint64_t kVersion = 1;

}  // namespace

// ---- HoltWinters ---------------------------------------------------------------------------

HoltWinters::HoltWinters(Options options) : opts_(options) {
    Options& o = opts_;
    if (o.season_length <= 1) o.season_length = 0;
    o.season_length = std::min(o.season_length, kMaxSeason);
    m_ = o.season_length;
    const auto clampOpt = [](std::optional<double>& v, double lo, double hi) {
        if (v && !std::isfinite(*v)) v.reset();
        if (v) *v = std::clamp(*v, lo, hi);
    };
    clampOpt(o.alpha, 0.001, 1.0);
    clampOpt(o.beta, 0.0, 1.0);
    clampOpt(o.gamma, 0.0, 1.0);
    o.phi = std::isfinite(o.phi) ? std::clamp(o.phi, 0.5, 1.0) : 0.98;
    if (o.max_horizon == 0) o.max_horizon = m_ > 0 ? m_ : 60;
    o.max_horizon = std::min(o.max_horizon, kMaxHorizon);
    if (!(o.inner_level > 0 && o.inner_level < o.outer_level && o.outer_level < 1)) {
        o.inner_level = 0.80;
        o.outer_level = 0.95;
    }
    if (o.error_window == 0) o.error_window = 200;
    o.error_window = std::clamp<std::size_t>(o.error_window, 2, kMaxWindow);
    o.min_errors = std::clamp<std::size_t>(o.min_errors, 1, o.error_window);
    alpha_ = o.alpha.value_or(kDefaultAlpha);
    beta_ = o.beta.value_or(kDefaultBeta);
    gamma_ = o.gamma.value_or(kDefaultGamma);
    z_inner_ = normalQuantile((1 + o.inner_level) / 2);
    z_outer_ = normalQuantile((1 + o.outer_level) / 2);
    configure();
    reset();
}

void HoltWinters::configure() {
    const std::size_t H = opts_.max_horizon;
    std::vector<std::uint32_t> a;
    for (std::size_t h = 1; h <= std::min<std::size_t>(4, H); ++h) a.push_back(static_cast<std::uint32_t>(h));
    for (double x = 4; x * 1.5 < static_cast<double>(H);) {
        x = std::ceil(x * 1.5);
        a.push_back(static_cast<std::uint32_t>(x));
    }
    if (m_ >= 2 && m_ / 2 <= H) a.push_back(static_cast<std::uint32_t>(m_ / 2));
    if (m_ >= 1 && m_ <= H) a.push_back(static_cast<std::uint32_t>(m_));
    a.push_back(static_cast<std::uint32_t>(H));
    std::sort(a.begin(), a.end());
    a.erase(std::unique(a.begin(), a.end()), a.end());
    anchors_ = std::move(a);

    // Variance factor 1 + sum_{j<h} c_j^2 of ETS(A,Ad,A) in this parameterisation: the
    // error-correction trend gain is alpha*beta and the seasonal one gamma*(1 - alpha).
    anchor_damp_.assign(anchors_.size(), 0);
    anchor_var_.assign(anchors_.size(), 1);
    double var = 1, phi_j = 0;
    std::size_t next = 0;
    for (std::size_t h = 1; h <= H && next < anchors_.size(); ++h) {
        if (h > 1) {
            const std::size_t j = h - 1;
            phi_j = phi_j * opts_.phi + opts_.phi;  // phi + ... + phi^j
            double c = alpha_ * (1 + beta_ * phi_j);
            if (m_ > 0 && j % m_ == 0) c += gamma_ * (1 - alpha_);
            var += c * c;
        }
        if (anchors_[next] == h) {
            anchor_var_[next] = var;
            anchor_damp_[next] = dampSum(opts_.phi, static_cast<double>(h));
            ++next;
        }
    }
    errors_.resize(anchors_.size());
}

void HoltWinters::reset() {
    core_ = detail::Core{};
    season_.assign(m_, 0);
    has_data_ = season_ready_ = false;
    t_ = first_origin_ = 0;
    pending_.clear();
    origin_level_.assign(opts_.max_horizon, 0);
    origin_trend_.assign(opts_.max_horizon, 0);
    for (Ring& r : errors_) {
        r.values.clear();
        r.head = 0;
    }
}

HoltWinters HoltWinters::fit(std::span<const double> history, Options options) {
    HoltWinters model(options);
    model.replay(history);
    return model;
}

void HoltWinters::replay(std::span<const double> history) {
    reset();
    const bool seasonal = m_ > 0 && history.size() >= 2 * m_;
    const Init init = seasonal ? seasonalInit(history, m_) : holtInit(history);
    const bool want_auto = !opts_.alpha || !opts_.beta || (seasonal && !opts_.gamma);
    std::size_t finite = 0;
    for (double y : history) finite += usable(y) ? 1 : 0;
    // Before two seasons of a seasonal model the parameters stay at their defaults: the
    // fit at two seasons chooses them.
    if (want_auto && (m_ == 0 ? finite >= 10 : seasonal)) {
        const std::array<double, 8> alphas{0.02, 0.05, 0.1, 0.2, 0.35, 0.5, 0.7, 0.9};
        const std::array<double, 5> betas{0, 0.005, 0.02, 0.05, 0.15};
        const std::array<double, 6> gammas{0.01, 0.05, 0.1, 0.2, 0.35, 0.5};
        const auto choices = [](const std::optional<double>& fixed, std::span<const double> grid) {
            return fixed ? std::vector<double>{*fixed} : std::vector<double>(grid.begin(), grid.end());
        };
        const auto as = choices(opts_.alpha, alphas);
        const auto bs = choices(opts_.beta, betas);
        const auto gs = seasonal ? choices(opts_.gamma, gammas) : std::vector<double>{gamma_};
        const std::size_t warm = seasonal ? m_ : 2;
        double best = std::numeric_limits<double>::infinity();
        for (double a : as)
            for (double b : bs)
                for (double g : gs) {
                    const double sse = oneStepSse(init, history, seasonal ? m_ : 0, {a, b, g, opts_.phi}, warm);
                    if (sse < best) {
                        best = sse;
                        alpha_ = a;
                        beta_ = b;
                        gamma_ = g;
                    }
                }
        configure();
    }
    core_.level = init.level;
    core_.trend = init.trend;
    if (seasonal) season_ = init.season;
    has_data_ = init.has;
    season_ready_ = seasonal;
    for (double y : history) update(y);
}

void HoltWinters::update(double y) {
    const bool missing = !usable(y);
    if (m_ > 0 && !season_ready_) {
        pending_.push_back(missing ? kNaN : y);
        if (pending_.size() >= 2 * m_) {
            const std::vector<double> history = std::move(pending_);
            replay(history);
            pending_.shrink_to_fit();
            return;
        }
    }
    step(y, missing);
}

void HoltWinters::step(double y, bool missing) {
    if (!has_data_) {
        if (!missing) {
            core_.level = y;
            core_.trend = 0;
            has_data_ = true;
            first_origin_ = t_ + 1;
        }
        ++t_;
        return;
    }
    const std::size_t H = opts_.max_horizon;
    origin_level_[t_ % H] = core_.level;
    origin_trend_[t_ % H] = core_.trend;
    double dummy = 0;
    double& s = m_ > 0 ? season_[t_ % m_] : dummy;
    const Params p{alpha_, beta_, gamma_, opts_.phi};
    if (!missing) {
        // The forecasts made h steps ago for this point, against the truth.
        for (std::size_t i = 0; i < anchors_.size(); ++i) {
            const std::uint64_t h = anchors_[i];
            if (t_ + 1 < first_origin_ + h) break;  // anchors ascend: the later ones are older still
            const std::size_t idx = (t_ + 1 - h) % H;
            const double e = y - (origin_level_[idx] + anchor_damp_[i] * origin_trend_[idx] + s);
            if (!std::isfinite(e)) continue;
            Ring& r = errors_[i];
            if (r.values.size() < opts_.error_window) {
                r.values.push_back(e);
            } else {
                r.values[r.head] = e;
                r.head = static_cast<std::uint32_t>((r.head + 1) % opts_.error_window);
            }
        }
        detail::Core next = core_;
        double season = s;
        bool shifted = false;
        const double e1 = observe(next, season, y, p, shiftRun(m_), shifted);
        if (std::isfinite(next.level) && std::isfinite(next.trend) && std::isfinite(next.sigma2) &&
            std::isfinite(season) && std::isfinite(e1)) {
            core_ = next;
            s = season;
            ++t_;
            // Forecasts made before a level shift say nothing about the model's errors now.
            if (shifted) first_origin_ = t_;
            return;
        }
    }
    carry(core_, p.phi);
    ++t_;
}

double HoltWinters::meanAt(std::size_t h) const {
    double s = 0;
    if (m_ > 0) s = season_[(t_ % m_ + (h - 1) % m_) % m_];
    return core_.level + dampSum(opts_.phi, static_cast<double>(h)) * core_.trend + s;
}

HoltWinters::Band HoltWinters::bandAt(std::size_t i) const {
    Band b;
    const Ring& r = errors_[i];
    if (r.values.size() >= opts_.min_errors) {
        std::vector<double> v = r.values;
        std::sort(v.begin(), v.end());
        std::tie(b.inner_lo, b.inner_hi) = conformalBounds(v, opts_.inner_level);
        std::tie(b.outer_lo, b.outer_hi) = conformalBounds(v, opts_.outer_level);
        b.empirical = true;
        return b;
    }
    double s2 = core_.sigma2;
    if (core_.n_errors == 0 && has_data_) s2 = std::pow(0.1 * std::max(std::fabs(core_.level), 1.0), 2);
    const double sd = std::sqrt(s2 * anchor_var_[i]);
    b.inner_lo = -z_inner_ * sd;
    b.inner_hi = z_inner_ * sd;
    b.outer_lo = -z_outer_ * sd;
    b.outer_hi = z_outer_ * sd;
    return b;
}

std::size_t HoltWinters::anchorIndex(std::size_t h) const {
    const auto it = std::lower_bound(anchors_.begin(), anchors_.end(), h);
    return it == anchors_.end() ? anchors_.size() - 1 : static_cast<std::size_t>(it - anchors_.begin());
}

Forecast HoltWinters::assemble(std::size_t h, double mean, const Band& lo, const Band& hi) const {
    // lo/hi: the bands of the anchors around h (the same band when h is an anchor or is
    // beyond the last one, which is then widened by sqrt(h / H)).
    double w = 0, scale = 1;
    const std::size_t i = anchorIndex(h);
    if (h >= anchors_.back()) {
        scale = std::sqrt(static_cast<double>(h) / static_cast<double>(anchors_.back()));
    } else if (anchors_[i] != h && i > 0) {
        const double a = anchors_[i - 1], b = anchors_[i];
        w = (static_cast<double>(h) - a) / (b - a);
    }
    const auto mix = [&](double l, double u) { return capped(mean + scale * (l + w * (u - l))); };
    Forecast f;
    f.horizon = h;
    f.mean = capped(mean);
    f.inner = {opts_.inner_level, mix(lo.inner_lo, hi.inner_lo), mix(lo.inner_hi, hi.inner_hi)};
    f.outer = {opts_.outer_level, mix(lo.outer_lo, hi.outer_lo), mix(lo.outer_hi, hi.outer_hi)};
    f.inner.lower = std::min(f.inner.lower, f.mean);
    f.inner.upper = std::max(f.inner.upper, f.mean);
    f.outer.lower = std::min(f.outer.lower, f.inner.lower);
    f.outer.upper = std::max(f.outer.upper, f.inner.upper);
    f.empirical = lo.empirical && hi.empirical;
    return f;
}

Forecast HoltWinters::forecast(std::size_t h) const {
    h = std::max<std::size_t>(h, 1);
    const std::size_t i = anchorIndex(h);
    const Band hi = bandAt(i);
    const bool between = h < anchors_.back() && anchors_[i] != h && i > 0;
    return assemble(h, meanAt(h), between ? bandAt(i - 1) : hi, hi);
}

std::size_t HoltWinters::memoryBytes() const {
    std::size_t bytes = sizeof(*this);
    bytes += season_.capacity() * sizeof(double) + pending_.capacity() * sizeof(double);
    bytes += anchors_.capacity() * sizeof(std::uint32_t);
    bytes += (anchor_damp_.capacity() + anchor_var_.capacity()) * sizeof(double);
    bytes += (origin_level_.capacity() + origin_trend_.capacity()) * sizeof(double);
    bytes += errors_.capacity() * sizeof(Ring);
    for (const Ring& r : errors_) bytes += r.values.capacity() * sizeof(double);
    return bytes;
}

std::string HoltWinters::serialize() const {
    Writer w;
    w.put(kMagic);
    w.u(kVersion);
    w.u(m_);
    w.u(opts_.max_horizon);
    w.u(opts_.error_window);
    w.u(opts_.min_errors);
    w.d(opts_.inner_level);
    w.d(opts_.outer_level);
    w.d(opts_.phi);
    w.u((opts_.alpha ? 0u : 1u) | (opts_.beta ? 0u : 2u) | (opts_.gamma ? 0u : 4u));
    w.d(alpha_);
    w.d(beta_);
    w.d(gamma_);
    w.u(has_data_ ? 1 : 0);
    w.u(season_ready_ ? 1 : 0);
    w.u(t_);
    w.u(first_origin_);
    w.u(core_.n_errors);
    w.d(core_.sigma2);
    w.d(core_.level);
    w.d(core_.trend);
    w.u(core_.run_len);
    w.u(core_.run_sign < 0 ? 2 : static_cast<std::uint64_t>(core_.run_sign));
    w.d(core_.run_trend);
    for (double s : season_) w.d(s);
    w.u(pending_.size());
    for (double y : pending_) w.d(y);
    for (double l : origin_level_) w.d(l);
    for (double b : origin_trend_) w.d(b);
    for (const Ring& r : errors_) {
        w.u(r.values.size());
        w.u(r.head);
        for (double e : r.values) w.d(e);
    }
    return w.finish();
}

std::optional<HoltWinters> HoltWinters::deserialize(std::string_view text) {
    // Checksum first: any change to the body (a flipped byte, a cut) is refused before parsing.
    if (text.size() < 18 || text[text.size() - 17] != ' ') return std::nullopt;
    const std::string_view body = text.substr(0, text.size() - 17);
    const std::string_view sum = text.substr(text.size() - 16);
    if (!std::all_of(sum.begin(), sum.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }))
        return std::nullopt;
    std::uint64_t expected = 0;
    const auto sr = std::from_chars(sum.data(), sum.data() + sum.size(), expected, 16);
    if (sr.ec != std::errc{} || sr.ptr != sum.data() + sum.size() || expected != fnv1a(body)) return std::nullopt;

    Reader r(body);
    std::string_view magic;
    std::uint64_t version = 0, m = 0, horizon = 0, window = 0, min_errors = 0, mask = 0;
    Options o;
    if (!r.token(magic) || magic != kMagic || !r.u(version, 1000) || version != kVersion) return std::nullopt;
    if (!r.u(m, kMaxSeason) || !r.u(horizon, kMaxHorizon) || !r.u(window, kMaxWindow) || !r.u(min_errors, kMaxWindow) ||
        !r.d(o.inner_level) || !r.d(o.outer_level) || !r.d(o.phi) || !r.u(mask, 7))
        return std::nullopt;
    double a = 0, b = 0, g = 0;
    if (!r.d(a) || !r.d(b) || !r.d(g)) return std::nullopt;
    o.season_length = m;
    o.max_horizon = horizon;
    o.error_window = window;
    o.min_errors = min_errors;
    if (!(mask & 1u)) o.alpha = a;
    if (!(mask & 2u)) o.beta = b;
    if (!(mask & 4u)) o.gamma = g;
    HoltWinters model(o);
    // What the constructor would change was not written by serialize().
    const Options& s = model.opts_;
    if (model.m_ != m || s.max_horizon != horizon || s.error_window != window || s.min_errors != min_errors ||
        s.inner_level != o.inner_level || s.outer_level != o.outer_level || s.phi != o.phi || s.alpha != o.alpha ||
        s.beta != o.beta || s.gamma != o.gamma || !(a >= 0.001 && a <= 1) || !(b >= 0 && b <= 1) ||
        !(g >= 0 && g <= 1))
        return std::nullopt;
    model.alpha_ = a;
    model.beta_ = b;
    model.gamma_ = g;
    model.configure();

    std::uint64_t has = 0, ready = 0, n_pending = 0;
    if (!r.u(has, 1) || !r.u(ready, 1) || !r.u(model.t_, std::numeric_limits<std::uint64_t>::max() / 2) ||
        !r.u(model.first_origin_, model.t_) || !r.u(model.core_.n_errors, model.t_) || !r.d(model.core_.sigma2) ||
        !r.d(model.core_.level) || !r.d(model.core_.trend) || model.core_.sigma2 < 0)
        return std::nullopt;
    std::uint64_t run_len = 0, run_sign = 0;
    if (!r.u(run_len, shiftRun(model.m_) - 1) || !r.u(run_sign, 2) || (run_len == 0) != (run_sign == 0) ||
        !r.d(model.core_.run_trend))
        return std::nullopt;
    model.core_.run_len = static_cast<std::uint32_t>(run_len);
    model.core_.run_sign = run_sign == 2 ? -1 : static_cast<std::int32_t>(run_sign);
    model.has_data_ = has == 1;
    model.season_ready_ = ready == 1;
    if (model.season_ready_ && m == 0) return std::nullopt;
    for (double& x : model.season_)
        if (!r.d(x)) return std::nullopt;
    if (!r.u(n_pending, 2 * kMaxSeason)) return std::nullopt;
    const bool warming = m > 0 && !model.season_ready_;
    if (warming ? (n_pending != model.t_ || n_pending >= 2 * m) : n_pending != 0) return std::nullopt;
    for (std::uint64_t i = 0; i < n_pending; ++i) {
        double y = 0;
        if (!r.d(y, true)) return std::nullopt;
        model.pending_.push_back(y);
    }
    for (double& x : model.origin_level_)
        if (!r.d(x)) return std::nullopt;
    for (double& x : model.origin_trend_)
        if (!r.d(x)) return std::nullopt;
    for (Ring& ring : model.errors_) {
        std::uint64_t n = 0, head = 0;
        if (!r.u(n, window) || !r.u(head, window - 1) || (n < window && head != 0)) return std::nullopt;
        ring.head = static_cast<std::uint32_t>(head);
        for (std::uint64_t i = 0; i < n; ++i) {
            double e = 0;
            if (!r.d(e)) return std::nullopt;
            ring.values.push_back(e);
        }
    }
    if (!r.done()) return std::nullopt;
    return model;
}

// ---- SeasonalNaive -------------------------------------------------------------------------

SeasonalNaive::SeasonalNaive(std::size_t season_length, double inner_level, double outer_level)
    : m_(std::clamp<std::size_t>(season_length, 1, kMaxSeason)), inner_(inner_level), outer_(outer_level) {
    if (!(inner_ > 0 && inner_ < outer_ && outer_ < 1)) {
        inner_ = 0.80;
        outer_ = 0.95;
    }
    last_.assign(m_, kNaN);
}

SeasonalNaive SeasonalNaive::fit(std::span<const double> history, std::size_t season_length, double inner_level,
                                 double outer_level) {
    SeasonalNaive model(season_length, inner_level, outer_level);
    for (double y : history) model.update(y);
    return model;
}

void SeasonalNaive::update(double y) {
    const std::size_t p = t_ % m_;
    ++t_;
    if (!usable(y)) return;
    if (std::isfinite(last_[p])) {
        const double d = y - last_[p];
        ++n_diff_;
        mean_sq_ += (d * d - mean_sq_) / static_cast<double>(n_diff_);  // running mean
    }
    last_[p] = y;
}

Forecast SeasonalNaive::forecast(std::size_t h) const {
    h = std::max<std::size_t>(h, 1);
    double mean = last_[(t_ % m_ + (h - 1) % m_) % m_];
    if (!std::isfinite(mean)) {  // that phase not seen yet: the most recent value seen
        mean = 0;
        for (std::size_t k = 1; k <= m_; ++k)
            if (const double v = last_[(t_ + m_ - k % m_) % m_]; std::isfinite(v)) {
                mean = v;
                break;
            }
    }
    const double seasons = std::ceil(static_cast<double>(h) / static_cast<double>(m_));
    const double sd = std::sqrt(mean_sq_ * seasons);
    const double zi = normalQuantile((1 + inner_) / 2), zo = normalQuantile((1 + outer_) / 2);
    Forecast f;
    f.horizon = h;
    f.mean = capped(mean);
    f.inner = {inner_, capped(mean - zi * sd), capped(mean + zi * sd)};
    f.outer = {outer_, capped(mean - zo * sd), capped(mean + zo * sd)};
    return f;
}

std::size_t SeasonalNaive::memoryBytes() const { return sizeof(*this) + last_.capacity() * sizeof(double); }

// ---- capacity ------------------------------------------------------------------------------

std::optional<std::size_t> stepsUntilAbove(const HoltWinters& model, double threshold, std::size_t max_steps,
                                           bool use_upper) {
    if (std::isnan(threshold)) return std::nullopt;
    std::size_t limit = max_steps;
    if (!use_upper) {
        // The mean is level + D(h) trend + season: past one season, a trend that does not
        // rise cannot bring anything new, and a damped one has a ceiling.
        const std::size_t m = std::max<std::size_t>(model.m_, 1);
        double season_max = 0;
        for (double s : model.season_) season_max = std::max(season_max, s);
        if (model.core_.trend <= 0) {
            limit = std::min(limit, m);
        } else if (model.opts_.phi < 1) {
            const double ceiling = model.core_.level + model.opts_.phi / (1 - model.opts_.phi) * model.core_.trend + season_max;
            if (ceiling < threshold) return std::nullopt;
        }
    }
    std::vector<std::optional<HoltWinters::Band>> bands(model.anchors_.size());
    const auto band = [&](std::size_t i) -> const HoltWinters::Band& {
        if (!bands[i]) bands[i] = model.bandAt(i);
        return *bands[i];
    };
    for (std::size_t h = 1; h <= limit; ++h) {
        const double mean = capped(model.meanAt(h));
        double value = mean;
        if (use_upper) {
            const std::size_t i = model.anchorIndex(h);
            const bool between = h < model.anchors_.back() && model.anchors_[i] != h && i > 0;
            value = model.assemble(h, mean, between ? band(i - 1) : band(i), band(i)).inner.upper;
        }
        if (value >= threshold) return h;
    }
    return std::nullopt;
}

TrendFit trend(std::span<const double> series, std::size_t last_n) {
    if (last_n > 0 && last_n < series.size()) series = series.last(last_n);
    std::vector<std::size_t> idx;
    for (std::size_t i = 0; i < series.size(); ++i)
        if (usable(series[i])) idx.push_back(i);
    TrendFit fit;
    if (idx.empty()) return fit;
    if (idx.size() > kTheilSenPoints) {  // evenly spread subset, first and last kept
        std::vector<std::size_t> sub(kTheilSenPoints);
        for (std::size_t k = 0; k < kTheilSenPoints; ++k) sub[k] = idx[k * (idx.size() - 1) / (kTheilSenPoints - 1)];
        idx = std::move(sub);
    }
    fit.points = idx.size();
    if (idx.size() >= 2) {
        std::vector<double> slopes;
        slopes.reserve(idx.size() * (idx.size() - 1) / 2);
        for (std::size_t a = 0; a < idx.size(); ++a)
            for (std::size_t b = a + 1; b < idx.size(); ++b)
                slopes.push_back((series[idx[b]] - series[idx[a]]) / static_cast<double>(idx[b] - idx[a]));
        fit.slope = median(slopes);
    }
    std::vector<double> resid;
    resid.reserve(idx.size());
    for (std::size_t i : idx) resid.push_back(series[i] - fit.slope * static_cast<double>(i));
    fit.intercept = median(resid);
    return fit;
}

std::optional<std::size_t> stepsUntil(const TrendFit& fit, double current, double threshold) {
    if (!std::isfinite(current) || !std::isfinite(threshold) || !std::isfinite(fit.slope)) return std::nullopt;
    if (current >= threshold) return 0;
    if (!(fit.slope > 0)) return std::nullopt;
    const double k = std::ceil((threshold - current) / fit.slope);
    if (!(k < 1e18)) return std::nullopt;
    return static_cast<std::size_t>(k);
}

}  // namespace netprobe::analysis::forecast
