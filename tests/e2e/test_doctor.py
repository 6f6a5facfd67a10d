"""netprobe-agent --doctor against the kernel's own answers (bpftool, tc, the tests'
BPF_PROG_QUERY of tcx hooks): programs and links per interface in tcx and clsact
mode, maps, the agent's health, and the problems it reports."""

import json
import signal

from netprobe_e2e import AGENT, E2ETestCase, attachments, free_port, log, prog_names, run, wait_for


class DoctorTest(E2ETestCase):
    def setUp(self):
        self.veth = self.make_veth()

    def doctor(self, *args: str, check_rc: int | None = None) -> tuple[int, dict]:
        p = run([AGENT, "--doctor", "--output=json", *args], check=False, timeout=60)
        self.assertIn(p.returncode, (0, 1), p.stderr)
        if check_rc is not None:
            self.assertEqual(p.returncode, check_rc, p.stdout)
        return p.returncode, json.loads(p.stdout)

    def check_mode(self, tc_mode: str, xdp_mode: str = "auto"):
        """xdp_mode auto: no XDP on a veth (TC alone)."""
        a = self.start_agent(f"--interface-filter={self.veth.host}", f"--tc-mode={tc_mode}", f"--xdp-mode={xdp_mode}",
                             "--collect-interval=500ms")
        a.wait_collections(2)
        rc, d = self.doctor(f"--metrics-port={a.port}", check_rc=0)
        self.assertEqual(d["problems"], [])
        # interfaces: exactly ours, the programs the kernel reports on each hook
        names = {i["name"]: i for i in d["interfaces"]}
        self.assertEqual(set(names), {self.veth.host}, d["interfaces"])
        i = names[self.veth.host]
        kernel = attachments(self.veth.host)
        log(f"doctor ({tc_mode}): {i}; kernel: {kernel}")
        key = "tcx" if tc_mode == "tcx" else "clsact"
        for d_key in ("ingress", "egress"):
            self.assertEqual([(e["prog_id"], e["prog"]) for e in i[f"tc_{d_key}"]],
                             [(pid, n.split(":")[0]) for pid, n in kernel[f"{key}_{d_key}"]])
        self.assertTrue(all(e["via"].startswith("tcx link" if tc_mode == "tcx" else "clsact") for e in i["tc_ingress"]))
        if xdp_mode == "auto":
            self.assertFalse(i["xdp"], i)
            self.assertEqual(kernel["xdp"], [])
        else:
            self.assertEqual((i["xdp"]["prog_id"], i["xdp"]["prog"]), kernel["xdp"][0])
            self.assertEqual(i["xdp"]["mode"], {"generic": "generic", "driver": "native"}[kernel["xdp_modes"][0][1]])
        # programs: the set bpftool lists with our prefix
        ours = {pid: n for pid, n in prog_names().items() if n.startswith("netprobe")}
        self.assertEqual({p["id"]: p["name"] for p in d["programs"]}, ours)
        # maps: the flow table with its entries counted
        maps = {m["name"]: m for m in d["maps"]}
        self.assertIn("flow_stats", maps)
        self.assertLessEqual(maps["flow_stats"]["entries"], maps["flow_stats"]["max_entries"])
        # the agent's health
        self.assertTrue(d["agent"]["reachable"])
        self.assertTrue(d["agent"]["ready"])
        self.assertGreaterEqual(d["agent"]["netprobe_collections_total"], 2)
        # text output says the same
        p = run([AGENT, "--doctor", f"--metrics-port={a.port}"], check=False)
        self.assertEqual(p.returncode, 0)
        self.assertIn(f"{self.veth.host} (ifindex", p.stdout)
        self.assertIn("No problems found.", p.stdout)
        return a

    def test_tcx_mode(self):
        a = self.check_mode("tcx")
        # other links: netfilter hooks, cgroup and tracepoints, as the kernel lists them
        _, d = self.doctor(f"--metrics-port={a.port}")
        ids = {l["id"] for l in d["other_links"]}
        bpftool = {l["id"] for l in json.loads(run(["bpftool", "-j", "link", "show"]).stdout or "[]")
                   if l.get("prog_id") in {p["id"] for p in d["programs"]}}
        tcx_and_xdp = {int(e["via"].split()[-1]) for i in d["interfaces"] for e in i["tc_ingress"] + i["tc_egress"]
                       if e["via"].startswith("tcx link")}
        # every link of our programs bpftool lists is in the report; what is not listed
        # as an interface's tcx link or another link is the interface's XDP link
        self.assertTrue(ids | tcx_and_xdp <= bpftool, f"doctor links {ids | tcx_and_xdp} vs bpftool's {bpftool}")
        self.assertEqual(len(bpftool - ids - tcx_and_xdp), len([i for i in d["interfaces"] if i["xdp"]]),
                         f"bpftool {bpftool}, doctor {ids | tcx_and_xdp}")
        kinds = {l["type"] for l in d["other_links"]}
        log(f"other links: {sorted(kinds)}")
        self.assertIn("netfilter", kinds)
        self.assertIn("cgroup", kinds)
        progs, _ = a.bpf_ids()
        a.stop()
        # gone: none of its programs, nothing on the veth, nothing answers (other agents on
        # this machine, e.g. in other namespaces, may still have programs loaded)
        # the kernel frees a closed link's program after a grace period (tracing links:
        # deferred work), so an ID may stay listed for a moment after the agent exited
        def released():
            _, d = self.doctor(f"--metrics-port={a.port}")
            left = progs & {p["id"] for p in d["programs"]}
            return None if left else d
        d = wait_for(released, 10, "the agent's programs to be released by the kernel", interval=0.2)
        self.assertNotIn(self.veth.host, {i["name"] for i in d["interfaces"]})
        self.assertFalse(d["agent"]["reachable"])

    def test_clsact_mode(self):
        self.check_mode("clsact", "generic")

    def test_problems_are_reported(self):
        a = self.start_agent(f"--interface-filter={self.veth.host}")
        # programs loaded but nothing answers on the port asked: a problem, exit 1
        rc, d = self.doctor(f"--metrics-port={free_port()}", check_rc=1)
        self.assertTrue(any("no agent answers" in p for p in d["problems"]), d["problems"])
        p = run([AGENT, "--doctor", "--output=yaml"], check=False)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--output", p.stderr)
        progs, _ = a.bpf_ids()
        a.stop(signal.SIGKILL)
        # links die with the process: nothing of it left for the doctor to find
        wait_for(lambda: not (progs & {p["id"] for p in self.doctor()[1]["programs"]}), 10,
                 "programs gone after SIGKILL")
