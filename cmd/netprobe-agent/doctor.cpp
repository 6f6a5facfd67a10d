#include "doctor.hpp"

#include <algorithm>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <map>
#include <sstream>

#include <netprobe/ebpf/features.hpp>
#include <netprobe/ebpf/inspect.hpp>
#include <netprobe/ebpf/interfaces.hpp>
#include <netprobe/util/capabilities.hpp>

namespace netprobe::agent {

namespace {

using nlohmann::json;

// The agent's own view: /readyz and a few families of /metrics.
json agentHealth(const DoctorOptions& o, std::vector<std::string>& problems) {
    json a{{"url", ""}, {"reachable", false}};
    const std::string host = (o.address == "0.0.0.0" || o.address == "::") ? "127.0.0.1" : o.address;
    for (const bool tls : {false, true}) {
        std::unique_ptr<httplib::ClientImpl> c;
        if (tls) {
            auto s = std::make_unique<httplib::SSLClient>(host, o.port);
            s->enable_server_certificate_verification(false);  // a local health check, not a trust decision
            c = std::move(s);
        } else {
            c = std::make_unique<httplib::ClientImpl>(host, o.port);
        }
        c->set_connection_timeout(2, 0);
        c->set_read_timeout(5, 0);
        if (auto colon = o.basic_auth.find(':'); colon != std::string::npos)
            c->set_basic_auth(o.basic_auth.substr(0, colon), o.basic_auth.substr(colon + 1));
        const std::string url = std::string(tls ? "https" : "http") + "://" + host + ":" + std::to_string(o.port);
        auto ready = c->Get("/readyz");
        if (!ready) continue;
        a["url"] = url;
        a["reachable"] = true;
        a["ready"] = ready->status == 200;
        if (ready->status != 200) problems.push_back("the agent at " + url + " is not ready: " + ready->body);
        auto m = c->Get("/metrics");
        if (!m || m->status != 200) {
            a["metrics_status"] = m ? m->status : 0;
            if (m && m->status == 401)
                problems.push_back("/metrics needs credentials: set NETPROBE_DOCTOR_AUTH=user:password");
            return a;
        }
        // A few values, summed over their series.
        std::map<std::string, double> sums;
        std::istringstream in(m->body);
        for (std::string line; std::getline(in, line);) {
            if (line.empty() || line[0] == '#') continue;
            const auto name_end = line.find_first_of("{ ");
            const auto sp = line.rfind(' ');
            if (name_end == std::string::npos || sp == std::string::npos) continue;
            const std::string name = line.substr(0, name_end);
            for (const char* want : {"netprobe_collections_total", "netprobe_collect_errors_total",
                                     "netprobe_last_collect_timestamp_seconds", "netprobe_map_update_errors_total",
                                     "netprobe_source_errors_total", "netprobe_interface_attached",
                                     "netprobe_flows_tracked", "netprobe_map_operation_failures_total"})
                if (name == want) sums[name] += std::strtod(line.c_str() + sp + 1, nullptr);
        }
        for (const auto& [k, v] : sums) a[k] = v;
        const double now = std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
        if (sums.contains("netprobe_last_collect_timestamp_seconds")) {
            const double age = now - sums["netprobe_last_collect_timestamp_seconds"];
            a["last_collect_age_seconds"] = age;
            if (age > 120) problems.push_back("the agent's last collection was " + std::to_string(int(age)) + " s ago");
        }
        if (sums["netprobe_collect_errors_total"] > 0) problems.push_back("the agent reports collection errors");
        if (sums["netprobe_source_errors_total"] > 0) problems.push_back("the agent reports source read errors");
        return a;
    }
    a["error"] = "nothing answers on " + host + ":" + std::to_string(o.port) + " (http or https)";
    return a;
}

std::string yesno(bool b) { return b ? "yes" : "NO"; }

}  // namespace

int runDoctor(const DoctorOptions& o) {
    std::vector<std::string> problems;
    json report;

    // Kernel features.
    const auto kernel = ebpf::probeKernel();
    json feats = json::array();
    for (const auto& f : kernel.features) {
        feats.push_back({{"name", f.name}, {"available", f.available}, {"min_kernel", f.min_kernel},
                         {"used_for", f.used_for}, {"without", f.without}, {"required", f.required}});
        if (!f.available && f.required) problems.push_back("kernel lacks " + f.name + " (Linux " + f.min_kernel + "+)");
    }
    report["kernel"] = {{"release", kernel.release}, {"machine", kernel.machine}, {"features", feats}};
    const auto missing = util::missingCapabilities();
    report["capabilities_missing"] = missing;
    if (!missing.empty()) problems.push_back("this process lacks capabilities; the kernel lists below may be incomplete");

    // What is loaded and attached.
    auto progs = ebpf::listPrograms();
    std::vector<ebpf::ProgInfo> p = progs ? *progs : std::vector<ebpf::ProgInfo>{};
    if (!progs) problems.push_back(progs.error().what());
    std::map<std::uint32_t, std::string> prog_name;
    json jp = json::array();
    for (const auto& x : p) {
        prog_name[x.id] = x.name;
        jp.push_back({{"id", x.id}, {"name", x.name}, {"type", x.type_name}, {"run_cnt", x.run_cnt},
                      {"run_time_ns", x.run_time_ns}});
    }
    report["programs"] = jp;
    auto links = ebpf::listLinks(p);
    std::vector<ebpf::LinkInfo> l = links ? *links : std::vector<ebpf::LinkInfo>{};

    auto ifaces = ebpf::listInterfaces();
    json ji = json::array();
    std::set<std::uint32_t> link_ids_on_ifaces;
    if (ifaces) {
        for (const auto& i : *ifaces) {
            const auto hooks = ebpf::hookPrograms(i.index);
            json tc_in = json::array(), tc_eg = json::array();
            for (const auto& k : l) {
                if (k.type_name != "tcx" || k.ifindex != i.index) continue;
                // the same ifindex in another network namespace is another device
                const auto& here = k.attach == "ingress" ? hooks.tcx_ingress : hooks.tcx_egress;
                if (std::find(here.begin(), here.end(), k.prog_id) == here.end()) continue;
                link_ids_on_ifaces.insert(k.id);
                (k.attach == "ingress" ? tc_in : tc_eg)
                    .push_back({{"via", "tcx link " + std::to_string(k.id)}, {"prog", prog_name[k.prog_id]},
                                {"prog_id", k.prog_id}});
            }
            auto clsact = [&](std::uint32_t id) {
                return json{{"via", "clsact filter"},
                            {"prog", prog_name.contains(id) ? prog_name[id] : "id " + std::to_string(id)},
                            {"prog_id", id}};
            };
            if (hooks.clsact_ingress) tc_in.push_back(clsact(hooks.clsact_ingress));
            if (hooks.clsact_egress) tc_eg.push_back(clsact(hooks.clsact_egress));
            json xdp = nullptr;
            const std::uint32_t xid = hooks.xdp_driver ? hooks.xdp_driver : hooks.xdp_generic;
            if (xid && prog_name.contains(xid))
                xdp = {{"mode", hooks.xdp_driver ? "native" : "generic"}, {"prog", prog_name[xid]}, {"prog_id", xid}};
            for (const auto& k : l)
                if (k.type_name == "xdp" && k.ifindex == i.index && k.prog_id == xid) link_ids_on_ifaces.insert(k.id);
            if (tc_in.empty() && tc_eg.empty() && xdp.is_null()) continue;  // not monitored
            if (tc_in.size() > 1 || tc_eg.size() > 1)
                problems.push_back(i.name + ": more than one NetProbe program on a TC hook (two agents?)");
            if (tc_in.empty() || tc_eg.empty()) problems.push_back(i.name + ": TC ingress or egress program missing");
            ji.push_back({{"name", i.name}, {"ifindex", i.index}, {"up", i.up}, {"xdp", xdp}, {"tc_ingress", tc_in},
                          {"tc_egress", tc_eg}});
        }
    }
    report["interfaces"] = ji;
    json other = json::array();
    for (const auto& k : l) {
        if (link_ids_on_ifaces.contains(k.id)) continue;
        json e{{"id", k.id}, {"type", k.type_name}, {"prog", prog_name[k.prog_id]}};
        if (!k.attach.empty()) e["attach"] = k.attach;
        if (k.cgroup_id) e["cgroup_id"] = k.cgroup_id;
        if ((k.type_name == "tcx" || k.type_name == "xdp") && k.ifindex) {
            e["ifindex"] = k.ifindex;
            e["note"] = "on a device of another network namespace (no such program on this namespace's ifindex)";
        }
        other.push_back(e);
    }
    report["other_links"] = other;

    // Maps with their fill.
    json jm = json::array();
    if (auto maps = ebpf::listMaps(p)) {
        for (const auto& m : *maps) {
            json e{{"id", m.id}, {"name", m.name}, {"type", m.type_name}, {"max_entries", m.max_entries}};
            if (m.entries) {
                e["entries"] = *m.entries;
                const double fill = m.max_entries ? static_cast<double>(*m.entries) / m.max_entries : 0;
                e["fill_ratio"] = fill;
                if (fill > 0.9 && m.type_name.find("lru") == std::string::npos)
                    problems.push_back("map " + m.name + " is " + std::to_string(int(fill * 100)) + "% full");
            }
            jm.push_back(e);
        }
    }
    report["maps"] = jm;

    report["agent"] = agentHealth(o, problems);
    if (!p.empty() && !report["agent"]["reachable"].get<bool>())
        problems.push_back("NetProbe programs are loaded but no agent answers on port " + std::to_string(o.port));
    if (p.empty() && report["agent"]["reachable"].get<bool>())
        problems.push_back("an agent answers but no NetProbe program is loaded (another netns or no privileges?)");
    report["problems"] = problems;

    if (o.json) {
        std::puts(report.dump(2).c_str());
        return problems.empty() ? 0 : 1;
    }
    // Text.
    std::printf("Kernel %s (%s)\n", kernel.release.c_str(), kernel.machine.c_str());
    for (const auto& f : kernel.features)
        std::printf("  %-20s %-4s Linux %-5s %s\n", f.name.c_str(), yesno(f.available).c_str(), f.min_kernel.c_str(),
                    f.available ? f.used_for.c_str() : ("without: " + f.without).c_str());
    if (!missing.empty()) {
        std::string s;
        for (const auto& c : missing) s += " " + c;
        std::printf("Capabilities missing:%s\n", s.c_str());
    }
    std::printf("\nPrograms (%zu)\n", p.size());
    for (const auto& x : p)
        std::printf("  %-6u %-20s %-14s runs %llu\n", x.id, x.name.c_str(), x.type_name.c_str(),
                    static_cast<unsigned long long>(x.run_cnt));
    std::printf("\nInterfaces monitored (%zu)\n", ji.size());
    for (const auto& i : ji) {
        auto hook = [](const json& a) {
            std::string s;
            for (const auto& e : a) s += (s.empty() ? "" : ", ") + e["prog"].get<std::string>() + " (" + e["via"].get<std::string>() + ")";
            return s.empty() ? std::string("-") : s;
        };
        std::printf("  %s (ifindex %u)\n    xdp: %s\n    tc ingress: %s\n    tc egress: %s\n",
                    i["name"].get<std::string>().c_str(), i["ifindex"].get<unsigned>(),
                    i["xdp"].is_null() ? "-"
                                       : (i["xdp"]["prog"].get<std::string>() + " (" + i["xdp"]["mode"].get<std::string>() + ")").c_str(),
                    hook(i["tc_ingress"]).c_str(), hook(i["tc_egress"]).c_str());
    }
    std::printf("\nOther links (%zu)\n", other.size());
    for (const auto& e : other)
        std::printf("  %-6u %-12s %-22s %s\n", e["id"].get<unsigned>(), e["type"].get<std::string>().c_str(),
                    e["prog"].get<std::string>().c_str(), e.value("attach", std::string()).c_str());
    std::printf("\nMaps (%zu)\n", jm.size());
    for (const auto& m : jm) {
        std::string fill = m.contains("entries") ? std::to_string(m["entries"].get<std::uint64_t>()) + "/" +
                                                       std::to_string(m["max_entries"].get<unsigned>())
                                                 : "max " + std::to_string(m["max_entries"].get<unsigned>());
        std::printf("  %-6u %-16s %-16s %s\n", m["id"].get<unsigned>(), m["name"].get<std::string>().c_str(),
                    m["type"].get<std::string>().c_str(), fill.c_str());
    }
    const auto& a = report["agent"];
    std::printf("\nAgent: %s\n", a["reachable"].get<bool>() ? a["url"].get<std::string>().c_str()
                                                            : a.value("error", std::string("unreachable")).c_str());
    for (const auto& [k, v] : a.items())
        if (k != "url" && k != "reachable" && k != "error") std::printf("  %s: %s\n", k.c_str(), v.dump().c_str());
    std::printf("\n%s\n", problems.empty() ? "No problems found." : "Problems:");
    for (const auto& s : problems) std::printf("  - %s\n", s.c_str());
    return problems.empty() ? 0 : 1;
}

}  // namespace netprobe::agent
