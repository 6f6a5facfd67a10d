// Bandwidth forecasting (issue 13): what a series (bytes per minute of an interface, a
// workload's traffic, a table's fill) will be in h steps, with an interval that says how
// sure that is, and how many steps remain until it crosses a capacity.
//
// The model is additive Holt-Winters with a damped trend: a level, a trend per step and
// one seasonal offset per phase of a season of m steps (m = 1440 for a day of minutes;
// m = 0 or 1 for no season). Each point y moves them by the usual smoothing equations
//   level   = alpha (y - season[phase]) + (1 - alpha) (level + phi trend)
//   trend   = beta (level - previous level) + (1 - beta) phi trend
//   season  = gamma (y - level) + (1 - gamma) season[phase]
// and the mean h steps ahead is level + (phi + ... + phi^h) trend + season[phase + h - 1].
// phi < 1 damps the trend, so a long horizon does not extrapolate a short burst forever
// (use phi = 1 for a straight line). alpha/beta/gamma left empty in the options are chosen
// by a grid search minimising the squared one-step error over the history given at fit
// time (or over the first two seasons, when the model had fewer at fit time).
// A level shift is not left to alpha alone: when a run of one-step errors beyond 2 sigma
// on the same side reaches about a twelfth of a season (4 to 8 points; 5 without a
// season), the level jumps to the point and the trend returns to its value before the
// run, so a +50% step is absorbed within a few points instead of 1/alpha of them.
//
// Guarantees, in plain words:
// - Pure: no clock, no I/O, no global. A series is regularly spaced, one point per step;
//   the caller decides what a step is and calls update() once per step.
// - Missing points (NaN, +-inf, or a magnitude above 1e150) are skipped: the model carries
//   itself forward with its own forecast, so phases stay aligned. Zeros and negative
//   values are ordinary values. No output is ever NaN or infinite.
// - Intervals are calibrated on what the model actually got wrong: it remembers the
//   level and trend it had at each of the last max_horizon steps, and when a point
//   arrives it records, for a set of anchor horizons (1, 2, 3, 4, then about x1.5 apart,
//   plus m/2, m and max_horizon), the error of the forecast it made h steps earlier, in
//   a bounded ring per anchor (error_window values). An interval is the forecast mean plus
//   the empirical quantiles of those errors (at the split-conformal ranks, so n errors
//   exchangeable with the next give at least the nominal coverage), interpolated linearly
//   between anchors. Forecasts made before a detected level shift are not scored. Until
//   an anchor has min_errors errors, its interval is the normal approximation
//   sigma * sqrt(1 + sum_{j<h} c_j^2) with sigma the (exponentially weighted) one-step
//   error and c_j the ETS(A,Ad,A) coefficients. Beyond max_horizon an interval is the
//   max_horizon one widened by sqrt(h / max_horizon). For horizons above m the recorded
//   error uses the seasonal offset as it is when the truth arrives (it was updated since
//   the forecast was made), a small approximation; up to m it is exact.
// - Before a seasonal model has seen two seasons it runs without a season (a Holt model)
//   and keeps the raw points; at two seasons it initialises the season from them (and
//   fits the automatic parameters) and replays them. The buffer is then released.
// - Memory is bounded by the options: m + 2 max_horizon + anchors x error_window doubles
//   (plus 2 m during warm-up); memoryBytes() reports it.
// - serialize() is a versioned text form (shortest round-trip decimals) ending in a 64-bit
//   FNV-1a checksum; deserialize() is total: a cut or a changed byte fails the checksum,
//   text that passes it is still checked field by field (counts, ranges, finiteness), so
//   garbage gives nullopt and never a crash. A round trip gives a model whose forecasts
//   and later updates are bit-identical.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace netprobe::analysis::forecast {

struct Interval {
    double level = 0;   // nominal coverage, e.g. 0.80
    double lower = 0;
    double upper = 0;
};

struct Forecast {
    std::size_t horizon = 0;  // steps ahead (1 = the next point)
    double mean = 0;
    Interval inner;           // Options::inner_level (80% by default)
    Interval outer;           // Options::outer_level (95% by default)
    bool empirical = false;   // both intervals from realised errors (else the normal approximation)
};

namespace detail {
// The smoothing state proper (the season lives beside it), shared by the model and the
// parameter search so both run exactly the same equations.
struct Core {
    double level = 0, trend = 0;
    double sigma2 = 0;            // weighted mean of squared one-step errors (clipped at 3 sigma)
    std::uint64_t n_errors = 0;   // one-step errors seen (for the weight)
    std::uint32_t run_len = 0;    // consecutive one-step errors beyond 2 sigma on one side
    std::int32_t run_sign = 0;
    double run_trend = 0;         // the trend when that run began
};
}  // namespace detail

// Options of a HoltWinters model (out-of-range values are clamped to their bounds).
struct HoltWintersOptions {
    std::size_t season_length = 0;  // m; 0 or 1 = no season (Holt); at most 100000
    std::optional<double> alpha;    // level smoothing in (0, 1]; empty = fitted
    std::optional<double> beta;     // trend smoothing in [0, 1]; empty = fitted
    std::optional<double> gamma;    // season smoothing in [0, 1]; empty = fitted
    double phi = 0.98;              // trend damping per step in [0.5, 1]; 1 = undamped
    std::size_t max_horizon = 0;    // H, farthest calibrated horizon; 0 = m (60 without a season)
    double inner_level = 0.80;      // interval levels, 0 < inner < outer < 1
    double outer_level = 0.95;
    std::size_t error_window = 200; // realised errors kept per anchor horizon
    std::size_t min_errors = 30;    // errors an anchor needs before its quantiles are used
};

class HoltWinters {
public:
    using Options = HoltWintersOptions;

    // An empty model (no data yet); same as fit({}, options).
    explicit HoltWinters(Options options = {});

    // Warm start from stored history (oldest first): initialises level, trend and season
    // from the first two seasons (fewer: a Holt model until two seasons have been seen),
    // fits the automatic parameters, then replays the history through update(), which
    // also fills the error rings. Out-of-range options are clamped to their bounds.
    [[nodiscard]] static HoltWinters fit(std::span<const double> history, Options options = {});

    // The next point of the series (NaN = missing).
    void update(double y);

    // The forecast h steps ahead (h = 0 is taken as 1).
    [[nodiscard]] Forecast forecast(std::size_t h) const;

    [[nodiscard]] std::size_t memoryBytes() const;
    [[nodiscard]] std::string serialize() const;
    [[nodiscard]] static std::optional<HoltWinters> deserialize(std::string_view text);

    [[nodiscard]] double alpha() const { return alpha_; }
    [[nodiscard]] double beta() const { return beta_; }
    [[nodiscard]] double gamma() const { return gamma_; }
    [[nodiscard]] double phi() const { return opts_.phi; }
    [[nodiscard]] std::size_t seasonLength() const { return m_; }
    [[nodiscard]] std::size_t maxHorizon() const { return opts_.max_horizon; }
    [[nodiscard]] const Options& options() const { return opts_; }
    [[nodiscard]] std::uint64_t steps() const { return t_; }           // points consumed, missing included
    [[nodiscard]] bool seasonReady() const { return season_ready_; }   // season initialised from data
    [[nodiscard]] double level() const { return core_.level; }
    [[nodiscard]] double trendPerStep() const { return core_.trend; }

private:
    struct Band {  // interval offsets around the mean at one anchor horizon
        double inner_lo = 0, inner_hi = 0, outer_lo = 0, outer_hi = 0;
        bool empirical = false;
    };
    struct Ring {
        std::vector<double> values;
        std::uint32_t head = 0;  // next slot to overwrite once full
    };

    friend std::optional<std::size_t> stepsUntilAbove(const HoltWinters&, double, std::size_t, bool);

    void configure();                              // anchors and their factors from opts_ and the parameters
    void reset();                                  // state and rings back to "no data"
    void replay(std::span<const double> history);  // initialise from history, fit auto params, update() each
    void step(double y, bool missing);
    [[nodiscard]] double meanAt(std::size_t h) const;
    [[nodiscard]] Band bandAt(std::size_t anchor) const;
    [[nodiscard]] Forecast assemble(std::size_t h, double mean, const Band& lo, const Band& hi) const;
    [[nodiscard]] std::size_t anchorIndex(std::size_t h) const;  // first anchor >= h (clamped)

    Options opts_;
    std::size_t m_ = 0;        // season length, 0 when not seasonal
    double alpha_ = 0.2, beta_ = 0.02, gamma_ = 0.1;
    double z_inner_ = 0, z_outer_ = 0;  // standard normal quantiles of the two levels

    detail::Core core_;
    std::vector<double> season_;  // m_ offsets, by phase (index mod m_)
    bool has_data_ = false;
    bool season_ready_ = false;
    std::uint64_t t_ = 0;             // index of the next point
    std::uint64_t first_origin_ = 0;  // first origin whose forecasts are recorded
    std::vector<double> pending_;     // seasonal warm-up: every point since index 0

    std::vector<std::uint32_t> anchors_;  // ascending, last = max_horizon
    std::vector<double> anchor_damp_;     // phi + ... + phi^h
    std::vector<double> anchor_var_;      // 1 + sum_{j<h} c_j^2
    std::vector<double> origin_level_;    // ring of max_horizon origins, by index mod H
    std::vector<double> origin_trend_;
    std::vector<Ring> errors_;            // per anchor: realised errors (truth - forecast)
};

// Baseline: the value one season ago (the last seen value at the same phase; without a
// season, the last value). Intervals: normal, from the spread of the seasonal differences
// seen so far, widened by sqrt(seasons ahead).
class SeasonalNaive {
public:
    explicit SeasonalNaive(std::size_t season_length = 0, double inner_level = 0.80, double outer_level = 0.95);
    [[nodiscard]] static SeasonalNaive fit(std::span<const double> history, std::size_t season_length,
                                           double inner_level = 0.80, double outer_level = 0.95);
    void update(double y);
    [[nodiscard]] Forecast forecast(std::size_t h) const;
    [[nodiscard]] std::size_t memoryBytes() const;

private:
    std::size_t m_ = 1;
    double inner_ = 0.80, outer_ = 0.95;
    std::vector<double> last_;       // last finite value per phase (NaN = none yet)
    std::uint64_t t_ = 0;
    double mean_sq_ = 0;             // mean square of the seasonal differences
    std::uint64_t n_diff_ = 0;
};

// The first horizon h in [1, max_steps] whose forecast mean (use_upper: the upper bound of
// the inner interval, 80% by default) is at or above threshold; nullopt when none is
// (a damped trend has a ceiling: a threshold above it is never reached).
[[nodiscard]] std::optional<std::size_t> stepsUntilAbove(const HoltWinters& model, double threshold,
                                                         std::size_t max_steps, bool use_upper = false);

// A straight line through a series, value(x) = intercept + slope * x with x the position in
// the span (0 = its first point; NaN points skipped): Theil-Sen (median of pairwise slopes,
// robust to a minority of outliers; over at most 256 evenly spread points), intercept the
// median of y - slope x.
struct TrendFit {
    double slope = 0;      // per step
    double intercept = 0;  // at x = 0
    std::size_t points = 0;  // finite points used (fewer than 2: slope 0)
    [[nodiscard]] double at(double x) const { return intercept + slope * x; }
};

// last_n > 0: only the last last_n points of the series.
[[nodiscard]] TrendFit trend(std::span<const double> series, std::size_t last_n = 0);

// Steps from a value `current` until the line's slope carries it to threshold or above:
// 0 when already there, nullopt when the slope does not rise (or the answer overflows).
[[nodiscard]] std::optional<std::size_t> stepsUntil(const TrendFit& fit, double current, double threshold);

}  // namespace netprobe::analysis::forecast
