// Kubernetes API answers: watch event lines and the objects in them (pods, services,
// endpoint slices), split into lines the way a chunked watch body arrives.
#include <nlohmann/json.hpp>

#include <netprobe/k8s/store.hpp>
#include <netprobe/k8s/watch.hpp>

#include "fuzz_util.hpp"

using namespace netprobe::k8s;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto in = netprobe::fuzz::text(data, size);
    LineBuffer lines(4096);
    std::size_t n = 0;
    (void)lines.feed(in.substr(0, in.size() / 2), [&](std::string_view) { return ++n < 64; });
    (void)lines.feed(in.substr(in.size() / 2), [&](std::string_view line) {
        if (auto ev = parseWatchEvent(line); ev && ev->object.is_object()) {
            (void)podFromJson(ev->object);
            (void)serviceFromJson(ev->object);
            (void)endpointSliceFromJson(ev->object);
        }
        return ++n < 64;
    });
    const auto doc = nlohmann::json::parse(in, nullptr, false);
    if (!doc.is_discarded()) {
        (void)podFromJson(doc);
        (void)serviceFromJson(doc);
        (void)endpointSliceFromJson(doc);
        if (doc.is_object() && doc.contains("items") && doc["items"].is_array())
            for (const auto& item : doc["items"]) (void)podFromJson(item);
    }
    return 0;
}
