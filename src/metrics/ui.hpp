// The web UI's embedded files (ui/, bundled at build time: cmake/WebUi.cmake).
#pragma once

#include <optional>
#include <string_view>

#include <netprobe/http/message.hpp>

namespace netprobe::metrics {

// GET /ui/<file>: the page, its script and style sheet; nullopt for other paths.
[[nodiscard]] std::optional<http::Response> uiAsset(std::string_view path);

}  // namespace netprobe::metrics
