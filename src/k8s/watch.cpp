#include <netprobe/k8s/watch.hpp>

#include <algorithm>

namespace netprobe::k8s {

bool LineBuffer::feed(std::string_view data, const std::function<bool(std::string_view)>& on_line) {
    while (!data.empty()) {
        auto nl = data.find('\n');
        if (nl == std::string_view::npos) {
            if (buf_.size() + data.size() > max_line_) return false;
            buf_.append(data);
            return true;
        }
        std::string_view line;
        if (buf_.empty()) {
            line = data.substr(0, nl);
        } else {
            if (buf_.size() + nl > max_line_) return false;
            buf_.append(data.substr(0, nl));
            line = buf_;
        }
        data.remove_prefix(nl + 1);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        bool ok = line.empty() || on_line(line);
        buf_.clear();
        if (!ok) return false;
    }
    return true;
}

Result<WatchEvent> parseWatchEvent(std::string_view line) {
    auto j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::unexpected(makeError("watch event is not a JSON object"));
    auto t = j.find("type");
    if (t == j.end() || !t->is_string()) return std::unexpected(makeError("watch event without type"));
    const std::string& type = t->get_ref<const std::string&>();
    WatchEvent ev;
    if (type == "ADDED") ev.type = WatchEvent::Type::Added;
    else if (type == "MODIFIED") ev.type = WatchEvent::Type::Modified;
    else if (type == "DELETED") ev.type = WatchEvent::Type::Deleted;
    else if (type == "BOOKMARK") ev.type = WatchEvent::Type::Bookmark;
    else if (type == "ERROR") ev.type = WatchEvent::Type::Error;
    else return std::unexpected(makeError("watch event of unknown type \"" + type + "\""));
    auto o = j.find("object");
    if (o == j.end() || !o->is_object()) return std::unexpected(makeError("watch event " + type + " without object"));
    ev.object = std::move(*o);
    if (auto md = ev.object.find("metadata"); md != ev.object.end() && md->is_object()) {
        if (auto rv = md->find("resourceVersion"); rv != md->end() && rv->is_string()) ev.resource_version = *rv;
    }
    if (ev.type == WatchEvent::Type::Error) {
        if (auto c = ev.object.find("code"); c != ev.object.end() && c->is_number_integer()) ev.error_code = *c;
        if (auto m = ev.object.find("message"); m != ev.object.end() && m->is_string()) ev.error_message = *m;
    }
    return ev;
}

std::string urlEscape(std::string_view s) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : s) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
            c == '_' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            out.push_back('%');
            out.push_back(kHex[c >> 4]);
            out.push_back(kHex[c & 15]);
        }
    }
    return out;
}

std::string listUrl(std::string_view path, const ListParams& p) {
    std::string url(path);
    char sep = '?';
    auto add = [&](std::string_view k, std::string_view v) {
        url.push_back(sep);
        sep = '&';
        url.append(k);
        url.push_back('=');
        url.append(urlEscape(v));
    };
    if (!p.field_selector.empty()) add("fieldSelector", p.field_selector);
    if (p.limit > 0) add("limit", std::to_string(p.limit));
    if (!p.continue_token.empty()) add("continue", p.continue_token);
    return url;
}

std::string watchUrl(std::string_view path, std::string_view field_selector, std::string_view resource_version,
                     std::chrono::seconds timeout) {
    std::string url(path);
    url += "?watch=true&allowWatchBookmarks=true";
    if (!resource_version.empty()) url += "&resourceVersion=" + urlEscape(resource_version);
    if (!field_selector.empty()) url += "&fieldSelector=" + urlEscape(field_selector);
    if (timeout.count() > 0) url += "&timeoutSeconds=" + std::to_string(timeout.count());
    return url;
}

std::chrono::milliseconds nextBackoff(std::chrono::milliseconds current, std::chrono::milliseconds initial,
                                      std::chrono::milliseconds max) {
    if (current.count() <= 0) return std::min(initial, max);
    return std::min(current * 2, max);
}

std::chrono::milliseconds withJitter(std::chrono::milliseconds d, double jitter01) {
    jitter01 = std::clamp(jitter01, 0.0, 1.0);
    return d + std::chrono::milliseconds(static_cast<std::int64_t>(static_cast<double>(d.count()) * 0.25 * jitter01));
}

}  // namespace netprobe::k8s
