#include "netprobe/intel/indicators.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace netprobe::intel {

static_assert(kMaxFeeds == NP_INTEL_FEEDS_MAX, "the config's feed limit is the kernel's counter slots");

namespace {

constexpr std::size_t kFirstErrors = 20;
constexpr std::uint64_t kMaxFeedBytes = 512ull << 20;

// Which of two indicators of one prefix speaks for it: block over alert, then the
// higher confidence, then the earlier feed.
bool better(const IpMatch& a, Action aa, const IpMatch& b, Action ba) {
    if (aa != ba) return aa == Action::Block;
    return a.indicator->confidence > b.indicator->confidence;
}

}  // namespace

IndicatorSet::IndicatorSet(std::vector<FeedStatus> feeds, std::vector<std::shared_ptr<const ParsedFeed>> parsed,
                           std::uint64_t generation)
    : feeds_(std::move(feeds)), parsed_(std::move(parsed)), generation_(generation) {
    for (std::size_t f = 0; f < parsed_.size() && f < NP_INTEL_FEEDS_MAX; ++f) {
        if (!parsed_[f]) continue;
        const Action act = feeds_[f].action;
        for (const auto& ind : parsed_[f]->ips) {
            const IpMatch m{static_cast<std::uint16_t>(f), &ind};
            auto [it, fresh] = by_len_[ind.prefix.len].try_emplace(ind.prefix.addr, m);
            if (!fresh && better(m, act, it->second, feeds_[it->second.feed].action)) it->second = m;
        }
    }
    for (std::size_t f = 0; f < parsed_.size() && f < NP_INTEL_FEEDS_MAX; ++f) {
        if (!parsed_[f]) continue;
        const Action act = feeds_[f].action;
        for (const auto& d : parsed_[f]->domains) {
            const DomainMatch m{static_cast<std::uint16_t>(f), &d};
            auto [it, fresh] = domains_.try_emplace(d.domain, m);
            if (fresh) continue;
            const Action old = feeds_[it->second.feed].action;
            if (act != old ? act == Action::Block : d.confidence > it->second.indicator->confidence) it->second = m;
        }
    }
    for (int len = 128; len >= 0; --len)
        if (!by_len_[static_cast<std::size_t>(len)].empty()) {
            lengths_.push_back(static_cast<std::uint8_t>(len));
            ip_count_ += by_len_[static_cast<std::size_t>(len)].size();
        }
}

std::optional<IpMatch> IndicatorSet::match(const util::Addr16& a) const {
    for (auto len : lengths_) {
        const auto& m = by_len_[len];
        if (auto it = m.find(util::maskAddr(a, len)); it != m.end()) return it->second;
    }
    return std::nullopt;
}

std::optional<IndicatorSet::DomainMatch> IndicatorSet::matchDomain(std::string_view name) const {
    if (domains_.empty()) return std::nullopt;
    if (name.ends_with('.')) name.remove_suffix(1);
    if (name.empty() || name.size() > 253) return std::nullopt;
    std::string n(name);
    for (auto& c : n) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view rest = n;;) {
        if (auto it = domains_.find(std::string(rest)); it != domains_.end()) return it->second;
        const auto dot = rest.find('.');
        if (dot == std::string_view::npos) return std::nullopt;
        rest.remove_prefix(dot + 1);
    }
}

std::vector<ebpf::IntelEntry> IndicatorSet::kernelEntries() const {
    std::vector<ebpf::IntelEntry> out;
    out.reserve(ip_count_);
    for (auto len : lengths_)
        for (const auto& [addr, m] : by_len_[len]) {
            ebpf::IntelEntry e;
            e.addr = addr;
            e.prefix = len;
            e.value.feed = m.feed;
            e.value.action = feeds_[m.feed].action == Action::Block ? NP_INTEL_BLOCK : NP_INTEL_ALERT;
            e.value.confidence = m.indicator->confidence;
            out.push_back(e);
        }
    return out;
}

namespace {

// The whole file; nullopt when it cannot be opened or read (an empty file is "").
std::optional<std::string> readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return std::nullopt;
    std::ostringstream s;
    s << in.rdbuf();  // sets failbit on s for an empty file: not an error
    if (in.bad()) return std::nullopt;
    return s.str();
}

// Writes a file whole (a temporary file, then renamed over): a crash never leaves half of one.
bool writeFile(const std::string& path, std::string_view text) {
    const std::string tmp = path + ".tmp";
    {
        std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
        if (!out || !out.write(text.data(), static_cast<std::streamsize>(text.size())) || !out.flush()) return false;
    }
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    return !ec;
}

}  // namespace

std::vector<FeedStatus> FeedLoader::statuses() const {
    std::vector<FeedStatus> out;
    out.reserve(states_.size());
    for (const auto& s : states_) out.push_back(s.status);
    return out;
}

std::shared_ptr<const IndicatorSet> FeedLoader::refresh(WallTime now) {
    const bool first = states_.empty();
    if (first) {
        states_.resize(config_.feeds.size());
        for (std::size_t i = 0; i < config_.feeds.size(); ++i) {
            const auto& f = config_.feeds[i];
            auto& st = states_[i].status;
            st.name = f.name;
            st.format = f.format;
            st.action = f.action;
            st.source = f.path.empty() ? f.url : f.path;
        }
    }
    bool changed = first;
    for (std::size_t i = 0; i < config_.feeds.size(); ++i) {
        const auto& f = config_.feeds[i];
        auto& s = states_[i];
        auto failed = [&](std::string why) {
            if (s.status.last_error != why) changed = true;
            ++s.status.load_failures_total;
            s.status.last_error = std::move(why);
            s.mtime_ns.reset();  // read again next time
        };
        auto loaded = [&](std::string_view text) {
            auto parsed = std::make_shared<ParsedFeed>(parseFeed(f.format, text, f.confidence, now));
            auto& st = s.status;
            st.ips = parsed->ips.size();
            st.domains = parsed->domains.size();
            st.errors = parsed->errors.size() + parsed->errors_omitted;
            st.first_errors.assign(parsed->errors.begin(),
                                   parsed->errors.begin() +
                                       static_cast<std::ptrdiff_t>(std::min(parsed->errors.size(), kFirstErrors)));
            st.expired = parsed->expired;
            st.loaded_at = now;
            ++st.loads_total;
            st.last_error.clear();
            s.parsed = std::move(parsed);
            changed = true;
        };
        if (!f.url.empty()) {
            const std::string cache = cache_dir_.empty() ? std::string() : cache_dir_ + "/" + f.name;
            if (first && !cache.empty()) {
                // the copy the previous run fetched, until the first answer of this one
                auto body = readFile(cache + ".feed");
                auto validators = readFile(cache + ".validators");
                if (body && validators) {
                    const auto nl = validators->find('\n');
                    s.validators.etag = validators->substr(0, nl);
                    s.validators.last_modified = nl == std::string::npos ? std::string() : validators->substr(nl + 1);
                    loaded(*body);
                    s.status.from_cache = true;
                }
            }
            if (now < s.next_fetch) continue;
            s.status.checked_at = now;
            auto r = fetchFeed(f, s.validators);
            if (!r) {
                failed(r.error().what());
                s.next_fetch = now + std::min<std::chrono::seconds>(f.refresh, std::chrono::seconds(60));
                continue;
            }
            s.next_fetch = now + f.refresh;
            if (r->not_modified) {
                ++s.status.not_modified_total;
                if (s.status.from_cache) changed = true;  // the cached copy is current: the status says so
                s.status.from_cache = false;
                if (!s.status.last_error.empty()) changed = true;  // recovered: the status says so
                s.status.last_error.clear();
                continue;
            }
            s.validators = r->validators;
            loaded(r->body);
            s.status.from_cache = false;
            if (!cache.empty()) {
                std::error_code ec;
                std::filesystem::create_directories(cache_dir_, ec);
                if (ec || !writeFile(cache + ".feed", r->body) ||
                    !writeFile(cache + ".validators", s.validators.etag + "\n" + s.validators.last_modified))
                    s.status.last_error = "fetched, but not cached in " + cache_dir_ + (ec ? ": " + ec.message() : "");
            }
            continue;
        }
        struct stat sb{};
        if (::stat(f.path.c_str(), &sb) != 0) {
            failed(std::string("cannot read ") + f.path + ": " + std::strerror(errno));
            continue;
        }
        if (!S_ISREG(sb.st_mode)) {
            failed(f.path + " is not a regular file");
            continue;
        }
        if (sb.st_size < 0 || static_cast<std::uint64_t>(sb.st_size) > kMaxFeedBytes) {
            failed(f.path + " is larger than 512 MiB");
            continue;
        }
        const std::int64_t mtime = static_cast<std::int64_t>(sb.st_mtim.tv_sec) * 1000000000 + sb.st_mtim.tv_nsec;
        if (s.mtime_ns == mtime && s.size == static_cast<std::uint64_t>(sb.st_size)) continue;
        auto text = readFile(f.path);
        if (!text) {
            failed(std::string("cannot read ") + f.path + ": " + std::strerror(errno));
            continue;
        }
        loaded(*text);
        s.status.modified_at = WallTime(std::chrono::duration_cast<WallTime::duration>(std::chrono::nanoseconds(mtime)));
        s.mtime_ns = mtime;
        s.size = static_cast<std::uint64_t>(sb.st_size);
    }
    if (!changed) return nullptr;
    std::vector<FeedStatus> feeds;
    std::vector<std::shared_ptr<const ParsedFeed>> parsed;
    for (const auto& s : states_) {
        feeds.push_back(s.status);
        parsed.push_back(s.parsed);
    }
    return std::make_shared<const IndicatorSet>(std::move(feeds), std::move(parsed), ++generation_);
}

}  // namespace netprobe::intel
