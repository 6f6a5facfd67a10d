// Accuracy of the bandwidth forecast (issue 13) on synthetic traces with known ground
// truth, by rolling-origin evaluation: fit on the first K seasons, then for every later
// step forecast h = 1, m/2 and m steps ahead, feed the truth, and compare each forecast
// with the point it was about. Holt-Winters (fitted parameters, default damping) against
// the seasonal naive baseline (the value one season ago).
//   seasonal    m = 60 ("a day" scaled down): 1000 + 0.5/step trend + two harmonics + N(0, 30)
//   step        the same with a +50% level shift half-way
//   lowtraffic  Poisson counts with a seasonal rate between 2 and 10 (zeros happen; MAPE
//               is over the points whose truth is not zero)
// Also the cost of one update and the model's memory at m = 1440 (a day of minutes).
// Lines "RESULT<TAB>forecast_<trace><TAB>..." are for the bench runner (bench/run.sh); the table is for people.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include <netprobe/analysis/forecast/forecast.hpp>

namespace fc = netprobe::analysis::forecast;

namespace {

constexpr std::size_t kSeason = 60;
constexpr std::size_t kSeasons = 40;
constexpr std::size_t kFitSeasons = 3;
constexpr double kPi = 3.14159265358979323846;

// Gaussian noise from mt19937_64 by Box-Muller, so the traces are the same everywhere.
class Noise {
public:
    explicit Noise(std::uint64_t seed) : rng_(seed) {}
    double uniform() { return (static_cast<double>(rng_() >> 11) + 0.5) / 9007199254740992.0; }
    double gauss() {
        const double u = uniform(), v = uniform();
        return std::sqrt(-2 * std::log(u)) * std::cos(2 * kPi * v);
    }
    std::uint64_t poisson(double lambda) {  // Knuth's product of uniforms (small rates)
        const double limit = std::exp(-lambda);
        std::uint64_t k = 0;
        for (double p = uniform(); p > limit; p *= uniform()) ++k;
        return k;
    }

private:
    std::mt19937_64 rng_;
};

double shape(std::size_t t, std::size_t m) {
    const double x = 2 * kPi * static_cast<double>(t % m) / static_cast<double>(m);
    return 300 * std::sin(x) + 100 * std::sin(2 * x + 1);
}

std::vector<double> seasonalTrace(std::size_t n, std::size_t m, bool step, std::uint64_t seed) {
    Noise noise(seed);
    std::vector<double> y(n);
    const std::size_t shift_at = n / 2;
    const double shift = 0.5 * (1000 + 0.5 * static_cast<double>(shift_at));
    for (std::size_t t = 0; t < n; ++t)
        y[t] = 1000 + 0.5 * static_cast<double>(t) + shape(t, m) + 30 * noise.gauss() +
               (step && t >= shift_at ? shift : 0);
    return y;
}

std::vector<double> lowTrafficTrace(std::size_t n, std::size_t m, std::uint64_t seed) {
    Noise noise(seed);
    std::vector<double> y(n);
    for (std::size_t t = 0; t < n; ++t)
        y[t] = static_cast<double>(
            noise.poisson(6 + 4 * std::sin(2 * kPi * static_cast<double>(t % m) / static_cast<double>(m))));
    return y;
}

struct Score {
    double ape_sum = 0;
    std::size_t ape_n = 0;
    std::size_t covered = 0, covered95 = 0, n = 0;
    void add(double truth, const fc::Forecast& f) {
        ++n;
        covered += (truth >= f.inner.lower && truth <= f.inner.upper) ? 1 : 0;
        covered95 += (truth >= f.outer.lower && truth <= f.outer.upper) ? 1 : 0;
        if (truth != 0) {
            ape_sum += std::fabs((truth - f.mean) / truth);
            ++ape_n;
        }
    }
    [[nodiscard]] double mape() const { return ape_n ? 100 * ape_sum / static_cast<double>(ape_n) : 0; }
    [[nodiscard]] double coverage() const { return n ? static_cast<double>(covered) / static_cast<double>(n) : 0; }
    [[nodiscard]] double coverage95() const {
        return n ? static_cast<double>(covered95) / static_cast<double>(n) : 0;
    }
};

struct Evaluation {
    std::vector<std::size_t> horizons;
    std::vector<Score> model, naive;
    Score pooled;  // the model's intervals over all horizons
    fc::HoltWinters fitted;
};

Evaluation evaluate(const std::vector<double>& y, std::size_t m) {
    const std::size_t k = kFitSeasons * m;
    const std::span<const double> all(y);
    fc::HoltWinters::Options options;
    options.season_length = m;
    Evaluation ev{{1, m / 2, m}, {}, {}, {}, fc::HoltWinters::fit(all.first(k), options)};
    fc::SeasonalNaive naive = fc::SeasonalNaive::fit(all.first(k), m);
    ev.model.resize(ev.horizons.size());
    ev.naive.resize(ev.horizons.size());
    for (std::size_t t = k; t < y.size(); ++t) {
        for (std::size_t i = 0; i < ev.horizons.size(); ++i) {
            const std::size_t h = ev.horizons[i];
            if (t + h - 1 >= y.size()) continue;
            const double truth = y[t + h - 1];
            const fc::Forecast f = ev.fitted.forecast(h);
            ev.model[i].add(truth, f);
            ev.pooled.add(truth, f);
            ev.naive[i].add(truth, naive.forecast(h));
        }
        ev.fitted.update(y[t]);
        naive.update(y[t]);
    }
    return ev;
}

}  // namespace

int main() {
    struct Trace {
        const char* name;
        std::vector<double> y;
    };
    const std::size_t n = kSeason * kSeasons;
    const std::vector<Trace> traces{{"seasonal", seasonalTrace(n, kSeason, false, 13)},
                                    {"step", seasonalTrace(n, kSeason, true, 14)},
                                    {"lowtraffic", lowTrafficTrace(n, kSeason, 15)}};

    std::printf("forecast accuracy: m = %zu, %zu seasons, fit on %zu, rolling origin over the rest\n", kSeason,
                kSeasons, kFitSeasons);
    std::printf("%-11s %8s %11s %11s %9s %9s   fitted alpha/beta/gamma\n", "trace", "horizon", "HW MAPE %",
                "naive MAPE%", "cover80", "cover95");
    std::vector<std::string> results;
    char line[160];
    for (const Trace& tr : traces) {
        const Evaluation ev = evaluate(tr.y, kSeason);
        for (std::size_t i = 0; i < ev.horizons.size(); ++i)
            std::printf("%-11s %8zu %11.2f %11.2f %9.3f %9.3f   %.3g/%.3g/%.3g\n", tr.name, ev.horizons[i],
                        ev.model[i].mape(), ev.naive[i].mape(), ev.model[i].coverage(), ev.model[i].coverage95(),
                        ev.fitted.alpha(), ev.fitted.beta(), ev.fitted.gamma());
        std::printf("%-11s %8s %11s %11s %9.3f %9.3f\n", tr.name, "pooled", "", "", ev.pooled.coverage(),
                    ev.pooled.coverage95());
        // RESULT<TAB>forecast_<trace><TAB>MAPE h1<TAB>naive h1<TAB>MAPE h=season<TAB>naive<TAB>cover80
        std::snprintf(line, sizeof line, "RESULT\tforecast_%s\t%.2f\t%.2f\t%.2f\t%.2f\t%.3f", tr.name,
                      ev.model[0].mape(), ev.naive[0].mape(), ev.model[2].mape(), ev.naive[2].mape(),
                      ev.pooled.coverage());
        results.emplace_back(line);
    }

    // Cost at a day of minutes: fit on 3 days, then one update + one forecast per minute.
    {
        const std::size_t m = 1440;
        const std::vector<double> y = seasonalTrace(m * 6, m, false, 16);
        fc::HoltWinters::Options options;
        options.season_length = m;
        const auto t0 = std::chrono::steady_clock::now();
        fc::HoltWinters model = fc::HoltWinters::fit(std::span<const double>(y).first(3 * m), options);
        const auto t1 = std::chrono::steady_clock::now();
        double sink = 0;
        for (std::size_t t = 3 * m; t < y.size(); ++t) {
            model.update(y[t]);
            sink += model.forecast(60).inner.upper;
        }
        const auto t2 = std::chrono::steady_clock::now();
        const double fit_ms = std::chrono::duration<double, std::milli>(t1 - t0).count();
        const double per_ns = std::chrono::duration<double, std::nano>(t2 - t1).count() / static_cast<double>(3 * m);
        std::printf("m = 1440: fit on 3 days %.1f ms, update + forecast(60) %.0f ns, memory %zu bytes, "
                    "serialized %zu bytes (%g)\n",
                    fit_ms, per_ns, model.memoryBytes(), model.serialize().size(), sink > 0 ? 1.0 : 0.0);
    }
    for (const std::string& r : results) std::printf("%s\n", r.c_str());
    return 0;
}
