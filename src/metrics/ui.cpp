// The web UI's files (see ui.hpp).
#include "metrics/ui.hpp"

#include <string>

extern "C" {
extern const char netprobe_ui_app_js[], netprobe_ui_app_js_end[];
extern const char netprobe_ui_index_html[], netprobe_ui_index_html_end[];
extern const char netprobe_ui_app_css[], netprobe_ui_app_css_end[];
}

namespace netprobe::metrics {

std::optional<http::Response> uiAsset(std::string_view path) {
    struct File {
        std::string_view path;
        const char *begin, *end;
        const char* type;
    };
    static const File files[] = {
        {"/ui/", netprobe_ui_index_html, netprobe_ui_index_html_end, "text/html; charset=utf-8"},
        {"/ui/index.html", netprobe_ui_index_html, netprobe_ui_index_html_end, "text/html; charset=utf-8"},
        {"/ui/app.js", netprobe_ui_app_js, netprobe_ui_app_js_end, "text/javascript; charset=utf-8"},
        {"/ui/app.css", netprobe_ui_app_css, netprobe_ui_app_css_end, "text/css; charset=utf-8"},
    };
    for (const auto& f : files) {
        if (f.path != path) continue;
        http::Response r;
        r.status = 200;
        r.content_type = f.type;
        r.body.assign(f.begin, f.end);
        // Everything the page loads comes from the agent; nothing may be framed or sniffed.
        r.headers = {{"Content-Security-Policy",
                      "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
                      "frame-ancestors 'none'"},
                     {"X-Content-Type-Options", "nosniff"},
                     {"Cache-Control", "no-cache"}};
        return r;
    }
    return std::nullopt;
}

}  // namespace netprobe::metrics
