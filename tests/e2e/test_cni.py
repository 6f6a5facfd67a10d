"""CNI detection: a "node" namespace gets the links a CNI plugin creates on a real node
(names and kinds as the plugins document them: Calico's cali* pod veths and its
vxlan.calico device; Cilium's cilium_host/cilium_net pair, cilium_vxlan and lxc* pod
veths). The agent in that namespace must name the plugin and its overlay in
/api/v1/interfaces and netprobe_cni_info, with the links as evidence; iproute2's own
listing (ip -d -j link) is the oracle for the kinds the test created."""

import json

from netprobe_e2e import E2ETestCase, log, run, wait_for


class CniTest(E2ETestCase):
    def kinds(self, ns: str) -> dict:
        out = json.loads(run(["ip", "-d", "-j", "link", "show"], netns=ns).stdout)
        return {l["ifname"]: l.get("linkinfo", {}).get("info_kind", "") for l in out}

    def pod_veth(self, node: str, name: str) -> None:
        pod = self.make_netns()
        run(["ip", "link", "add", name, "type", "veth", "peer", "name", "eth0", "netns", pod], netns=node)
        run(["ip", "link", "set", name, "up"], netns=node)

    def cni(self, node: str, iface: str) -> tuple[dict, float]:
        agent = self.start_agent(f"--interface-filter={iface}", "--collect-interval=500ms", "--xdp-mode=off",
                                 "--socket-monitor=off", netns=node)
        doc = wait_for(lambda: (d := agent.get_json("/api/v1/interfaces")).get("cni") and d, 15, "cni in the API")
        m = agent.metrics()
        info = [s for s in m.samples if s.name == "netprobe_cni_info"]
        log(f"cni: {doc['cni']}; metric {[(s.labels, s.value) for s in info]}")
        self.assertEqual(len(info), 1)
        self.assertIn("CNI: ", agent.output())
        return doc["cni"], info[0]

    def test_calico_vxlan(self):
        node = self.make_netns()
        run(["ip", "link", "add", "vxlan.calico", "type", "vxlan", "id", "4096", "dstport", "4789"], netns=node)
        self.pod_veth(node, "cali0a1b2c3d4e5")
        self.pod_veth(node, "cali9f8e7d6c5b4")
        k = self.kinds(node)
        self.assertEqual((k["vxlan.calico"], k["cali0a1b2c3d4e5"]), ("vxlan", "veth"))
        c, metric = self.cni(node, "cali0a1b2c3d4e5")
        self.assertEqual((c["name"], c["overlay"], c["pod_interfaces"]), ("calico", "vxlan", 2))
        self.assertEqual(set(c["evidence"]), {"vxlan.calico", "cali0a1b2c3d4e5", "cali9f8e7d6c5b4"})
        self.assertEqual((metric.labels, metric.value), ({"cni": "calico", "overlay": "vxlan"}, 1))

    def test_cilium_vxlan(self):
        node = self.make_netns()
        run(["ip", "link", "add", "cilium_host", "type", "veth", "peer", "name", "cilium_net"], netns=node)
        run(["ip", "link", "add", "cilium_vxlan", "type", "vxlan", "external"], netns=node, check=False)
        if "cilium_vxlan" not in self.kinds(node):  # an iproute2 without "external": a plain vxlan
            run(["ip", "link", "add", "cilium_vxlan", "type", "vxlan", "id", "2", "dstport", "8472"], netns=node)
        self.pod_veth(node, "lxc1a2b3c4d5e6f")
        c, metric = self.cni(node, "lxc1a2b3c4d5e6f")
        self.assertEqual((c["name"], c["overlay"], c["pod_interfaces"]), ("cilium", "vxlan", 1))
        self.assertTrue({"cilium_host", "cilium_net", "cilium_vxlan", "lxc1a2b3c4d5e6f"} <= set(c["evidence"]), c)
        self.assertEqual(metric.labels, {"cni": "cilium", "overlay": "vxlan"})

    def test_no_cni(self):
        node = self.make_netns()
        v = self.make_veth(host_ns=node)
        c, metric = self.cni(node, v.host)
        self.assertEqual((c["name"], c["overlay"], c["evidence"]), ("none", "none", []))
        self.assertEqual(metric.labels, {"cni": "none", "overlay": "none"})


if __name__ == "__main__":
    import unittest
    unittest.main()
