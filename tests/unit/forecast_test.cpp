// Bandwidth forecasting (issue 13): Holt-Winters against the seasonal naive baseline on
// traces with known ground truth (fixed seeds: mt19937_64 is specified exactly and the
// gaussian draws are our own Box-Muller, so the traces are the same on every platform),
// recovery after a level shift, interval coverage, missing points, the text form (round
// trip, and refusal of every prefix, flipped byte and re-checksummed damage), and the
// capacity helpers.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include <netprobe/analysis/forecast/forecast.hpp>

using netprobe::analysis::forecast::Forecast;
using netprobe::analysis::forecast::HoltWinters;
using netprobe::analysis::forecast::SeasonalNaive;
using netprobe::analysis::forecast::stepsUntil;
using netprobe::analysis::forecast::stepsUntilAbove;
using netprobe::analysis::forecast::trend;
using netprobe::analysis::forecast::TrendFit;

namespace {

constexpr double kPi = 3.14159265358979323846;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

class Gauss {
public:
    explicit Gauss(std::uint64_t seed) : rng_(seed) {}
    double operator()() {
        const double u = (static_cast<double>(rng_() >> 11) + 0.5) / 9007199254740992.0;
        const double v = (static_cast<double>(rng_() >> 11) + 0.5) / 9007199254740992.0;
        return std::sqrt(-2 * std::log(u)) * std::cos(2 * kPi * v);
    }

private:
    std::mt19937_64 rng_;
};

// level + slope t + a seasonal shape of period m + N(0, sigma), with an optional shift
// added from shift_at on.
std::vector<double> trace(std::size_t n, std::size_t m, double slope, double sigma, std::uint64_t seed,
                          std::size_t shift_at = SIZE_MAX, double shift = 0) {
    Gauss g(seed);
    std::vector<double> y(n);
    for (std::size_t t = 0; t < n; ++t) {
        const double x = 2 * kPi * static_cast<double>(t % m) / static_cast<double>(m);
        y[t] = 500 + slope * static_cast<double>(t) + 150 * std::sin(x) + 60 * std::cos(3 * x) + sigma * g() +
               (t >= shift_at ? shift : 0);
    }
    return y;
}

HoltWinters::Options seasonal(std::size_t m) {
    HoltWinters::Options o;
    o.season_length = m;
    return o;
}

bool finite(const Forecast& f) {
    return std::isfinite(f.mean) && std::isfinite(f.inner.lower) && std::isfinite(f.inner.upper) &&
           std::isfinite(f.outer.lower) && std::isfinite(f.outer.upper);
}

void expectSameForecasts(const HoltWinters& a, const HoltWinters& b, std::size_t up_to) {
    for (std::size_t h = 1; h <= up_to; ++h) {
        const Forecast fa = a.forecast(h), fb = b.forecast(h);
        ASSERT_EQ(fa.mean, fb.mean) << "h=" << h;
        ASSERT_EQ(fa.inner.lower, fb.inner.lower) << "h=" << h;
        ASSERT_EQ(fa.inner.upper, fb.inner.upper) << "h=" << h;
        ASSERT_EQ(fa.outer.lower, fb.outer.lower) << "h=" << h;
        ASSERT_EQ(fa.outer.upper, fb.outer.upper) << "h=" << h;
        ASSERT_EQ(fa.empirical, fb.empirical) << "h=" << h;
    }
}

// FNV-1a 64 (the published constants), to build damaged bodies that carry a valid checksum.
std::string withChecksum(const std::string& body) {
    std::uint64_t h = 1469598103934665603ull;
    for (unsigned char c : body) {
        h ^= c;
        h *= 1099511628211ull;
    }
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(h));
    return body + " " + hex;
}

}  // namespace

TEST(Forecast, BeatsSeasonalNaiveAtOneHalfAndFullSeason) {
    const std::size_t m = 48, k = 3 * m;
    const auto y = trace(40 * m, m, 0.4, 25, 7);
    HoltWinters hw = HoltWinters::fit(std::span<const double>(y).first(k), seasonal(m));
    SeasonalNaive naive = SeasonalNaive::fit(std::span<const double>(y).first(k), m);
    const std::vector<std::size_t> hs{1, m / 2, m};
    std::vector<double> ape_hw(hs.size()), ape_naive(hs.size());
    std::vector<std::size_t> count(hs.size());
    for (std::size_t t = k; t < y.size(); ++t) {
        for (std::size_t i = 0; i < hs.size(); ++i) {
            if (t + hs[i] - 1 >= y.size()) continue;
            const double truth = y[t + hs[i] - 1];
            ape_hw[i] += std::fabs(truth - hw.forecast(hs[i]).mean) / std::fabs(truth);
            ape_naive[i] += std::fabs(truth - naive.forecast(hs[i]).mean) / std::fabs(truth);
            ++count[i];
        }
        hw.update(y[t]);
        naive.update(y[t]);
    }
    for (std::size_t i = 0; i < hs.size(); ++i) {
        const double mh = 100 * ape_hw[i] / static_cast<double>(count[i]);
        const double mn = 100 * ape_naive[i] / static_cast<double>(count[i]);
        // Clearly better one step ahead; better still a half and a whole season ahead,
        // where the naive forecast's error is the noise of two points plus m steps of trend
        // and the model's is one point's noise plus its damped trend's shortfall.
        EXPECT_LT(mh, (i == 0 ? 0.9 : 0.97) * mn) << "h=" << hs[i] << " HW " << mh << "% naive " << mn << "%";
        // The noise alone (sigma 25 on values of ~500..1400) bounds what any model can do.
        EXPECT_GT(mh, 1.0) << "h=" << hs[i];
    }
    EXPECT_TRUE(hw.seasonReady());
}

TEST(Forecast, SeasonalNaiveIsTheValueOneSeasonAgo) {
    SeasonalNaive naive(4);
    for (double y : {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}) naive.update(y);
    EXPECT_EQ(naive.forecast(1).mean, 3.0);  // index 6 -> index 2
    EXPECT_EQ(naive.forecast(2).mean, 4.0);
    EXPECT_EQ(naive.forecast(3).mean, 5.0);
    EXPECT_EQ(naive.forecast(4).mean, 6.0);
    EXPECT_EQ(naive.forecast(5).mean, 3.0);  // two seasons ahead: the same phase
    naive.update(kNaN);                      // index 6 missing: its phase keeps index 2's value
    EXPECT_EQ(naive.forecast(4).mean, 3.0);
}

TEST(Forecast, RecoversFromALevelShiftWithinAboutOneSeason) {
    const std::size_t m = 48, shift_at = 20 * m;
    const auto y = trace(30 * m, m, 0.2, 20, 11, shift_at, 0.5 * (500 + 0.2 * shift_at));  // +50% of the level
    HoltWinters hw = HoltWinters::fit(std::span<const double>(y).first(3 * m), seasonal(m));
    std::vector<double> abs_err(y.size(), 0);
    for (std::size_t t = 3 * m; t < y.size(); ++t) {
        abs_err[t] = std::fabs(y[t] - hw.forecast(1).mean);
        hw.update(y[t]);
    }
    const auto mae = [&](std::size_t from, std::size_t to) {
        double s = 0;
        for (std::size_t t = from; t < to; ++t) s += abs_err[t];
        return s / static_cast<double>(to - from);
    };
    const double before = mae(shift_at - 4 * m, shift_at);
    EXPECT_GT(mae(shift_at, shift_at + 5), 5 * before);  // the shift is seen
    // From the second season after the shift on, the one-step error is back to normal.
    EXPECT_LT(mae(shift_at + m, shift_at + 2 * m), 1.6 * before);
    EXPECT_LT(mae(shift_at + 2 * m, shift_at + 4 * m), 1.3 * before);
    // And the level moved by the shift (about 290 over 6 seasons' trend of ~58).
    EXPECT_NEAR(hw.forecast(m).mean - y[shift_at - 1 - (m - 1)], 0.5 * (500 + 0.2 * shift_at) + 0.2 * 10 * m, 120);
}

TEST(Forecast, EightyPercentIntervalCoversAboutEightyPercent) {
    const std::size_t m = 24;
    const auto y = trace(200 * m, m, 0.1, 30, 21);
    HoltWinters hw = HoltWinters::fit(std::span<const double>(y).first(4 * m), seasonal(m));
    const std::vector<std::size_t> hs{1, m / 2, m};
    std::vector<std::size_t> in80(hs.size()), in95(hs.size()), n(hs.size());
    for (std::size_t t = 4 * m; t < y.size(); ++t) {
        for (std::size_t i = 0; i < hs.size(); ++i) {
            if (t + hs[i] - 1 >= y.size()) continue;
            const double truth = y[t + hs[i] - 1];
            const Forecast f = hw.forecast(hs[i]);
            in80[i] += (truth >= f.inner.lower && truth <= f.inner.upper) ? 1 : 0;
            in95[i] += (truth >= f.outer.lower && truth <= f.outer.upper) ? 1 : 0;
            ++n[i];
        }
        hw.update(y[t]);
    }
    for (std::size_t i = 0; i < hs.size(); ++i) {
        const double c80 = static_cast<double>(in80[i]) / static_cast<double>(n[i]);
        const double c95 = static_cast<double>(in95[i]) / static_cast<double>(n[i]);
        EXPECT_GE(c80, 0.72) << "h=" << hs[i];
        EXPECT_LE(c80, 0.88) << "h=" << hs[i];
        EXPECT_GE(c95, 0.90) << "h=" << hs[i];
        EXPECT_LE(c95, 0.985) << "h=" << hs[i];
    }
    EXPECT_TRUE(hw.forecast(1).empirical);
    // With gaussian noise of sigma 30 the one-step 80% interval is about 2 x 1.28 x 30 wide.
    const Forecast f = hw.forecast(1);
    EXPECT_NEAR(f.inner.upper - f.inner.lower, 2 * 1.2816 * 30, 20);
}

TEST(Forecast, IntervalsBeforeEnoughErrorsComeFromTheVariance) {
    HoltWinters::Options o;
    o.max_horizon = 500;
    std::vector<double> y;
    Gauss g(5);
    for (int t = 0; t < 100; ++t) y.push_back(100 + 10 * g());
    const HoltWinters hw = HoltWinters::fit(y, o);
    // 99 one-step errors: empirical. No forecast 500 steps ahead has met its truth yet:
    // the normal approximation, whose two intervals are z(0.975) and z(0.90) wide.
    const Forecast near = hw.forecast(1), far = hw.forecast(500);
    EXPECT_TRUE(near.empirical);
    EXPECT_FALSE(far.empirical);
    const double inner = far.inner.upper - far.inner.lower, outer = far.outer.upper - far.outer.lower;
    EXPECT_GT(inner, 0);
    EXPECT_NEAR(outer / inner, 1.959964 / 1.281552, 1e-5);
    EXPECT_NEAR(far.inner.upper - far.mean, far.mean - far.inner.lower, 1e-9);  // symmetric
    // Beyond the farthest horizon the width grows with sqrt(h / H).
    const Forecast beyond = hw.forecast(2000);
    EXPECT_NEAR(beyond.inner.upper - beyond.inner.lower, 2 * inner, 1e-9 * inner);
    EXPECT_TRUE(finite(beyond));
}

TEST(Forecast, SerializeRoundTripGivesIdenticalForecastsAndUpdates) {
    const std::size_t m = 24;
    const auto y = trace(10 * m, m, 0.3, 15, 3);
    std::vector<HoltWinters> models;
    models.push_back(HoltWinters::fit(std::span<const double>(y).first(6 * m), seasonal(m)));
    models.push_back(HoltWinters::fit(std::span<const double>(y).first(m + 5), seasonal(m)));  // warming up
    HoltWinters::Options fixed;
    fixed.alpha = 0.3;
    fixed.beta = 0.1;
    fixed.phi = 1;
    fixed.max_horizon = 7;
    models.push_back(HoltWinters::fit(std::span<const double>(y).first(50), fixed));
    models.push_back(HoltWinters(seasonal(m)));  // empty
    std::vector<double> with_gaps(y.begin(), y.begin() + 3 * m);
    with_gaps[5] = with_gaps[40] = kNaN;
    models.push_back(HoltWinters::fit(with_gaps, seasonal(m)));
    for (std::size_t i = 0; i < models.size(); ++i) {
        SCOPED_TRACE(i);
        HoltWinters& a = models[i];
        const std::string text = a.serialize();
        auto b = HoltWinters::deserialize(text);
        ASSERT_TRUE(b.has_value());
        EXPECT_EQ(b->serialize(), text);
        expectSameForecasts(a, *b, a.maxHorizon() + 3);
        EXPECT_EQ(a.alpha(), b->alpha());
        EXPECT_EQ(a.steps(), b->steps());
        for (std::size_t t = 6 * m; t < y.size(); ++t) {
            a.update(y[t]);
            b->update(y[t]);
        }
        expectSameForecasts(a, *b, a.maxHorizon() + 3);
        EXPECT_EQ(b->serialize(), a.serialize());
    }
}

TEST(Forecast, DeserializeRefusesDamagedText) {
    HoltWinters::Options o = seasonal(4);
    o.max_horizon = 6;
    o.error_window = 8;
    o.min_errors = 3;
    const auto y = trace(40, 4, 0.5, 5, 9);
    std::vector<double> gaps = y;
    gaps[3] = kNaN;
    const std::string text = HoltWinters::fit(gaps, o).serialize();
    ASSERT_TRUE(HoltWinters::deserialize(text).has_value());
    // Every proper prefix.
    for (std::size_t n = 0; n < text.size(); ++n)
        ASSERT_FALSE(HoltWinters::deserialize(std::string_view(text).substr(0, n)).has_value()) << n;
    // Every byte with a few bit flips, and appended bytes.
    for (std::size_t i = 0; i < text.size(); ++i)
        for (unsigned char x : {0x01, 0x20, 0x80}) {
            std::string bad = text;
            bad[i] = static_cast<char>(static_cast<unsigned char>(bad[i]) ^ x);
            ASSERT_FALSE(HoltWinters::deserialize(bad).has_value()) << i << " ^ " << int(x);
        }
    EXPECT_FALSE(HoltWinters::deserialize(text + " ").has_value());
    EXPECT_FALSE(HoltWinters::deserialize(text + "0").has_value());
    // Damage under a valid checksum: the parser itself must refuse. Every token prefix of
    // the body, the body with one token dropped, and a few changed fields.
    const std::string body = text.substr(0, text.size() - 17);
    ASSERT_TRUE(HoltWinters::deserialize(withChecksum(body)).has_value());
    std::vector<std::size_t> spaces;
    for (std::size_t i = 0; i < body.size(); ++i)
        if (body[i] == ' ') spaces.push_back(i);
    for (std::size_t s : spaces) {
        ASSERT_FALSE(HoltWinters::deserialize(withChecksum(body.substr(0, s))).has_value()) << s;
        const std::size_t next = body.find(' ', s + 1);
        const std::string dropped = body.substr(0, s) + (next == std::string::npos ? "" : body.substr(next));
        ASSERT_FALSE(HoltWinters::deserialize(withChecksum(dropped)).has_value()) << s;
    }
    const auto replaceToken = [&](std::size_t index, const std::string& token) {
        std::size_t begin = 0;
        for (std::size_t k = 0; k < index; ++k) begin = body.find(' ', begin) + 1;
        const std::size_t end = body.find(' ', begin);
        return body.substr(0, begin) + token + body.substr(end);
    };
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(1, "2"))).has_value());       // version
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(2, "5"))).has_value());       // m
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(2, "1"))).has_value());       // m 1 = none
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(3, "999999999"))).has_value());
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(10, "1.5"))).has_value());    // alpha
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(19, "nan"))).has_value());    // level
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(19, "inf"))).has_value());
    EXPECT_FALSE(HoltWinters::deserialize(withChecksum(replaceToken(19, "1e999"))).has_value());
    EXPECT_TRUE(HoltWinters::deserialize(withChecksum(replaceToken(19, "-12.5"))).has_value());   // a level is a level
    // Garbage.
    for (const char* g : {"", " ", "nphw", "nphw 1", "{}", "\xff\xfe\x00", "nphw 1 0 60 200 30 0.8 0.95 0.98 7"})
        EXPECT_FALSE(HoltWinters::deserialize(g).has_value()) << g;
    std::mt19937_64 rng(1);
    for (int i = 0; i < 300; ++i) {
        std::string junk(rng() % 200, '\0');
        for (char& c : junk) c = static_cast<char>(rng());
        EXPECT_FALSE(HoltWinters::deserialize(junk).has_value());
    }
}

TEST(Forecast, MissingPointsAreSkippedOnTheModelsOwnForecast) {
    const std::size_t m = 24;
    const auto y = trace(12 * m, m, 0.3, 10, 17);
    HoltWinters a = HoltWinters::fit(std::span<const double>(y).first(4 * m), seasonal(m));
    HoltWinters b = a;
    // a sees NaN at one step; b sees, at that step, exactly a's one-step forecast there.
    // Their states (and so their means) must then agree at every horizon.
    for (std::size_t t = 4 * m; t < 5 * m; ++t) {
        if (t == 4 * m + 7) {
            const double own = a.forecast(1).mean;
            a.update(kNaN);
            b.update(own);
        } else {
            a.update(y[t]);
            b.update(y[t]);
        }
    }
    EXPECT_EQ(a.steps(), b.steps());
    for (std::size_t h = 1; h <= m; ++h) EXPECT_NEAR(a.forecast(h).mean, b.forecast(h).mean, 1e-9) << h;

    // Gaps everywhere (every 7th point, infinities and absurd values too) keep the phases
    // aligned: the one-step error stays near the complete series'.
    HoltWinters full = HoltWinters::fit(std::span<const double>(y).first(4 * m), seasonal(m));
    HoltWinters gappy = full;
    double err_full = 0, err_gappy = 0;
    std::size_t n = 0;
    for (std::size_t t = 4 * m; t < y.size(); ++t) {
        err_full += std::fabs(y[t] - full.forecast(1).mean);
        err_gappy += std::fabs(y[t] - gappy.forecast(1).mean);
        ++n;
        full.update(y[t]);
        const double bad[] = {kNaN, std::numeric_limits<double>::infinity(), -1e200};
        gappy.update(t % 7 == 0 ? bad[(t / 7) % 3] : y[t]);
        ASSERT_TRUE(finite(gappy.forecast(1)));
    }
    EXPECT_LT(err_gappy, 1.25 * err_full);
    EXPECT_EQ(gappy.steps(), full.steps());
    EXPECT_EQ(gappy.steps(), 4 * m + n);  // every point, missing ones included, is a step
}

TEST(Forecast, ZerosNegativesAndDegenerateSeriesStayFinite) {
    const HoltWinters empty(seasonal(10));
    EXPECT_TRUE(finite(empty.forecast(1)));
    EXPECT_EQ(empty.forecast(5).mean, 0);
    const std::vector<double> nans(30, kNaN);
    const HoltWinters all_missing = HoltWinters::fit(nans, seasonal(10));
    EXPECT_TRUE(finite(all_missing.forecast(3)));

    const std::vector<double> zeros(100, 0.0);
    const HoltWinters z = HoltWinters::fit(zeros, seasonal(10));
    const Forecast fz = z.forecast(7);
    EXPECT_EQ(fz.mean, 0);
    EXPECT_EQ(fz.inner.lower, 0);  // no error was ever made
    EXPECT_EQ(fz.inner.upper, 0);

    std::vector<double> neg;
    for (int t = 0; t < 200; ++t) neg.push_back(-50 + ((t % 10) < 5 ? -20 : 20) + ((t * 37) % 11) - 5.0);
    HoltWinters n = HoltWinters::fit(neg, seasonal(10));
    for (std::size_t h : {1u, 5u, 10u, 100u, 100000u}) {
        const Forecast f = n.forecast(h);
        EXPECT_TRUE(finite(f)) << h;
        EXPECT_LE(f.outer.lower, f.inner.lower);
        EXPECT_LE(f.inner.lower, f.mean);
        EXPECT_LE(f.mean, f.inner.upper);
        EXPECT_LE(f.inner.upper, f.outer.upper);
    }
    EXPECT_NEAR(n.forecast(1).mean, neg[190], 8);  // the same phase one season earlier, give or take the noise

    // Extreme but accepted magnitudes.
    HoltWinters big = HoltWinters::fit(std::vector<double>{1e149, -1e149, 1e149, -1e149, 1e149}, {});
    big.update(1e149);
    EXPECT_TRUE(finite(big.forecast(1000000)));
}

TEST(Forecast, WarmUpBecomesSeasonalAtTwoSeasonsAndReleasesTheBuffer) {
    const std::size_t m = 60;
    const auto y = trace(6 * m, m, 0, 5, 23);
    HoltWinters hw = HoltWinters::fit(std::span<const double>(y).first(m / 2), seasonal(m));
    EXPECT_FALSE(hw.seasonReady());
    std::size_t t = m / 2;
    for (; t < 2 * m - 1; ++t) hw.update(y[t]);
    EXPECT_FALSE(hw.seasonReady());
    hw.update(y[t++]);
    EXPECT_TRUE(hw.seasonReady());
    // The same as a model fitted on those two seasons at once: same forecasts, same state,
    // and no raw points kept.
    const HoltWinters direct = HoltWinters::fit(std::span<const double>(y).first(2 * m), seasonal(m));
    expectSameForecasts(hw, direct, m);
    EXPECT_EQ(hw.serialize(), direct.serialize());
    EXPECT_EQ(hw.memoryBytes(), direct.memoryBytes());
    // Now it knows the shape: the next half season within a few sigma of the truth.
    double worst = 0;
    for (std::size_t h = 1; h <= m / 2; ++h) worst = std::max(worst, std::fabs(hw.forecast(h).mean - y[t + h - 1]));
    EXPECT_LT(worst, 30);
}

TEST(Forecast, MemoryIsBoundedByTheOptions) {
    const std::size_t m = 1440;
    const auto y = trace(5 * m, m, 0.01, 10, 29);
    HoltWinters hw = HoltWinters::fit(std::span<const double>(y).first(3 * m), seasonal(m));
    const std::size_t after_fit = hw.memoryBytes();
    for (std::size_t t = 3 * m; t < y.size(); ++t) hw.update(y[t]);
    EXPECT_EQ(hw.memoryBytes(), after_fit);
    // season m + two origin rings of H = m, plus at most 40 anchors x 200 errors.
    EXPECT_GE(after_fit, 3 * m * sizeof(double));
    EXPECT_LE(after_fit, 3 * m * sizeof(double) + 40 * 200 * sizeof(double) + 4096);
}

TEST(Forecast, StepsUntilAboveOnALinearSeries) {
    HoltWinters::Options o;
    o.phi = 1;  // undamped: a straight line stays one
    std::vector<double> y;
    for (int t = 0; t < 200; ++t) y.push_back(100 + 2.0 * t);
    const HoltWinters hw = HoltWinters::fit(y, o);
    // Point 199 + h is worth 100 + 2 (199 + h) >= 600 from h = 51 on.
    const auto h = stepsUntilAbove(hw, 600, 1000);
    ASSERT_TRUE(h.has_value());
    EXPECT_NEAR(static_cast<double>(*h), 51, 1);
    EXPECT_FALSE(stepsUntilAbove(hw, 600, 40).has_value());   // not within 40 steps
    EXPECT_EQ(stepsUntilAbove(hw, 0, 10), std::optional<std::size_t>(1));
    EXPECT_FALSE(stepsUntilAbove(hw, kNaN, 10).has_value());

    // Damped (phi 0.98): the trend adds at most 0.98 / 0.02 = 49 steps' worth (98 here).
    o.phi = 0.98;
    const HoltWinters damped = HoltWinters::fit(y, o);
    const double level = damped.level(), slope = damped.trendPerStep();
    // A damped trend on a straight line of slope 2 settles where the level grows 2 a step:
    // phi b + alpha e = 2 and b (1 - phi) = alpha beta e, so b = 2 / (phi + (1 - phi) / beta).
    ASSERT_GT(damped.beta(), 0);
    EXPECT_NEAR(slope, 2 / (0.98 + 0.02 / damped.beta()), 0.01);
    EXPECT_FALSE(stepsUntilAbove(damped, level + 50 * slope, 100000).has_value());
    // level + slope (0.98 + ... + 0.98^h) >= level + 10 slope: the sum passes 10 at h = 12.
    double sum = 0, power = 1;
    std::size_t expected = 0;
    while (sum < 10) {
        power *= 0.98;
        sum += power;
        ++expected;
    }
    EXPECT_EQ(expected, 12u);
    const auto hd = stepsUntilAbove(damped, level + 10 * slope, 1000);
    ASSERT_TRUE(hd.has_value());
    EXPECT_EQ(*hd, expected);

    // With noise, about right, and the upper bound gets there first.
    Gauss g(31);
    std::vector<double> noisy;
    for (int t = 0; t < 300; ++t) noisy.push_back(1000 + 3.0 * t + 20 * g());
    o.phi = 1;
    const HoltWinters hn = HoltWinters::fit(noisy, o);
    const double threshold = 1000 + 3.0 * (299 + 50);  // the line reaches it 50 steps on
    const auto mean_h = stepsUntilAbove(hn, threshold, 10000);
    const auto upper_h = stepsUntilAbove(hn, threshold, 10000, true);
    ASSERT_TRUE(mean_h && upper_h);
    EXPECT_NEAR(static_cast<double>(*mean_h), 50, 15);
    EXPECT_LT(*upper_h, *mean_h);
}

TEST(Forecast, TheilSenTrendOnAKnownLine) {
    std::vector<double> y;
    for (int x = 0; x < 50; ++x) y.push_back(3 + 0.5 * x);
    y[7] = 1000;  // outliers and a gap do not move a median
    y[30] = -400;
    y[12] = kNaN;
    const TrendFit f = trend(y);
    EXPECT_DOUBLE_EQ(f.slope, 0.5);
    EXPECT_DOUBLE_EQ(f.intercept, 3);
    EXPECT_EQ(f.points, 49u);
    EXPECT_DOUBLE_EQ(f.at(49), 27.5);

    // The last 10 points only: x counts from the first of them.
    const TrendFit tail = trend(y, 10);
    EXPECT_DOUBLE_EQ(tail.slope, 0.5);
    EXPECT_DOUBLE_EQ(tail.intercept, 3 + 0.5 * 40);

    // Long series (subsampled pairs) on an exact line.
    std::vector<double> long_line;
    for (int x = 0; x < 5000; ++x) long_line.push_back(-7 + 0.25 * x);
    const TrendFit lf = trend(long_line);
    EXPECT_DOUBLE_EQ(lf.slope, 0.25);
    EXPECT_DOUBLE_EQ(lf.intercept, -7);

    // Conntrack at 10 and growing 0.5 per step: 20 steps to 20 (exactly reaching it).
    EXPECT_EQ(stepsUntil(f, 10, 20), std::optional<std::size_t>(20));
    EXPECT_EQ(stepsUntil(f, 10, 20.1), std::optional<std::size_t>(21));
    EXPECT_EQ(stepsUntil(f, 30, 20), std::optional<std::size_t>(0));
    EXPECT_FALSE(stepsUntil(TrendFit{-1, 0, 2}, 10, 20).has_value());
    EXPECT_FALSE(stepsUntil(TrendFit{0, 0, 2}, 10, 20).has_value());
    EXPECT_FALSE(stepsUntil(TrendFit{1e-300, 0, 2}, 0, 1e10).has_value());  // overflow
    EXPECT_FALSE(stepsUntil(f, kNaN, 20).has_value());

    EXPECT_EQ(trend(std::vector<double>{}).points, 0u);
    const TrendFit one = trend(std::vector<double>{kNaN, 4.0});
    EXPECT_EQ(one.slope, 0);
    EXPECT_EQ(one.at(1), 4.0);
}
