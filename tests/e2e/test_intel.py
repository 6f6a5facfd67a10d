"""Threat intelligence end to end: feed files with the address of a host in an
"outside" namespace; the agent runs in the "node" namespace on its veth. What the
datapath counts for each feed must equal what ping itself sent and received (ICMP:
no segmentation offload, so packets and wire bytes are exact); a block-action feed
with --mitigate=on must drop exactly the packets ping sent (ping: 0 received) while
an alert-action feed in the same agent passes; rewriting a feed file must take
effect on flows already in the kernel's table (a new trie swapped in and every cached
verdict made stale); matches must open threat_intel_match events that name the feed,
the indicator and the direction; malformed lines are counted with their line numbers
and a bad configuration stops the agent with the key and the reason."""

import os
import re
import signal
import subprocess
import unittest

from netprobe_e2e import AGENT, PID, E2ETestCase, log, require_tools, run, wait_for

ICMP_ECHO_WIRE = 14 + 20 + 8 + 56  # Ethernet + IPv4 + ICMP + ping's default payload
ICMP6_ECHO_WIRE = 14 + 40 + 8 + 56


class IntelCase(E2ETestCase):
    def topology(self):
        """outside netns <-veth-> node netns; the agent runs in node on v.peer. The outside
        end also holds a second address (extra) routed from node over the same link."""
        require_tools("ping", "nstat")
        outside = self.make_netns()
        node = self.make_netns()
        v = self.make_veth(ns=node, host_ns=outside)
        extra = f"198.18.{200 + PID % 50}.{7 + (PID // 50) % 200}"
        run(["ip", "addr", "add", f"{extra}/32", "dev", v.host], netns=outside)
        run(["ip", "route", "add", f"{extra}/32", "dev", v.peer], netns=node)
        # Permanent neighbours: no ARP, and above all no NDP exchange between the two
        # IPv6 addresses (a neighbour advertisement from the indicator is IP traffic
        # from it that ping does not count).
        for ns, dev, mac, addrs in ((node, v.peer, v.host_mac, (v.host_ip, v.host_ip6, extra)),
                                    (outside, v.host, v.peer_mac, (v.peer_ip, v.peer_ip6))):
            for a in addrs:
                run(["ip", "neigh", "replace", a, "lladdr", mac, "dev", dev, "nud", "permanent"], netns=ns)
        self.v, self.extra = v, extra
        return v

    def write(self, name: str, text: str) -> str:
        if not hasattr(self, "dir"):
            self.dir = self.tmpdir()
        path = os.path.join(self.dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)  # as a feed updater would: never a half-written file
        return path

    def agent(self, feeds_yaml: str, *extra: str):
        cfg = self.write("intel.yaml", feeds_yaml)
        return self.start_agent(f"--interface-filter={self.v.peer}", "--collect-interval=1s", f"--intel-config={cfg}",
                                *extra, netns=self.v.ns)

    def intel(self, agent) -> dict:
        return agent.get_json("/api/v1/intel")

    def feed(self, agent, name: str) -> dict:
        for f in self.intel(agent)["feeds"]:
            if f["name"] == name:
                return f
        raise KeyError(f"feed {name} not in /api/v1/intel yet")

    def wait_loaded(self, agent, generation: int = 1) -> dict:
        return wait_for(lambda: (d := self.intel(agent)).get("generation", 0) >= generation and
                        all(f["status"] == "ok" for f in d["feeds"]) and d, 20, f"feed generation {generation}")

    def ping(self, target: str, count: int, netns: str, source: str | None = None) -> tuple[int, int]:
        cmd = ["ping", "-n", "-q", "-c", str(count), "-i", "0.05", "-W", "1"]
        if source:
            cmd += ["-I", source]
        p = run(cmd + [target], netns=netns, check=False)
        sent = int(re.search(r"(\d+) packets transmitted", p.stdout).group(1))
        received = int(re.search(r"(\d+) received", p.stdout).group(1))
        return sent, received

    def echo_requests(self, netns: str) -> int:
        """The namespace kernel's ICMP echo requests sent (nstat, absolute, history untouched)."""
        out = run(["nstat", "-a", "-s", "-z", "IcmpOutEchos"], netns=netns).stdout
        return int(re.search(r"IcmpOutEchos\s+(\d+)", out).group(1))

    def settled(self, agent, feed: str) -> dict:
        """The feed's counters once they stop moving (two security ticks apart)."""
        agent.wait_stable([], key=lambda _: self.feed(agent, feed)["matched"], settle=2)
        return self.feed(agent, feed)["matched"]

    def events(self, agent) -> list[dict]:
        return agent.get_json("/api/v1/events?type=threat_intel_match")["events"]


class Counting(IntelCase):
    def test_counts_equal_pings_own_and_events_name_the_indicator(self):
        v = self.topology()
        feed = self.write("bad.txt", "# a plain list\n"
                          f"{v.host_ip}/32   # the outside host\n"
                          f"{v.host_ip6}/128\n"
                          "not-an-address\n"
                          "203.0.113.0/24\n"
                          "10.1.2.3/8 ; host bits set: masked\n"
                          "\n")
        agent = self.agent(f"feeds:\n  - name: bad\n    type: plain\n    path: {feed}\n    confidence: 85\n")
        d = self.wait_loaded(agent)
        f = self.feed(agent, "bad")
        log(f"feed: {f}")
        self.assertEqual((f["ips"], f["malformed_lines"]), (4, 1))
        self.assertEqual(f["first_errors"][0]["line"], 4)
        self.assertEqual(d["prefixes"], 4)

        # node -> outside (to the indicator) and back (from it), IPv4 and IPv6
        s4, r4 = self.ping(v.host_ip, 20, v.ns)
        s6, r6 = self.ping(v.host_ip6, 10, v.ns)
        self.assertEqual((r4, r6), (s4, s6))
        got = wait_for(lambda: (m := self.feed(agent, "bad")["matched"])["to"]["packets"] >= s4 + s6 and
                       m["from"]["packets"] >= r4 + r6 and m, 15, "the pings counted")
        got = self.settled(agent, "bad")
        log(f"ping sent {s4}+{s6}, received {r4}+{r6}; agent {got}")
        self.assertEqual(got["to"], {"packets": s4 + s6, "bytes": s4 * ICMP_ECHO_WIRE + s6 * ICMP6_ECHO_WIRE})
        self.assertEqual(got["from"], {"packets": r4 + r6, "bytes": r4 * ICMP_ECHO_WIRE + r6 * ICMP6_ECHO_WIRE})
        self.assertEqual(got["dropped"]["packets"], 0)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_intel_packets_total", feed="bad", direction="to"), s4 + s6)
        self.assertEqual(m.get("netprobe_intel_indicators", feed="bad", kind="ip"), 4)
        self.assertEqual(m.get("netprobe_intel_feed_malformed_lines", feed="bad"), 1)

        # the outside host pings the node: inbound
        so, ro = self.ping(v.peer_ip, 5, v.host_ns)
        self.assertEqual(ro, so)
        ev = wait_for(lambda: [e for e in self.events(agent) if e["evidence"]["direction"] == "inbound" and
                               e["src_ip"] == v.host_ip], 15, "an inbound threat_intel_match")[0]
        log(f"inbound event: {ev}")
        self.assertEqual((ev["src_ip"], ev["dst_ip"]), (v.host_ip, v.peer_ip))
        self.assertEqual((ev["evidence"]["feed"], ev["evidence"]["indicator"], ev["evidence"]["confidence"]),
                         ("bad", f"{v.host_ip}/32", 85))
        self.assertEqual(ev["severity"], "high")
        out = [e for e in self.events(agent) if e["evidence"]["direction"] == "outbound"]
        self.assertEqual({(e["src_ip"], e["dst_ip"]) for e in out},
                         {(v.peer_ip, v.host_ip), (v.peer_ip6.split("/")[0], v.host_ip6.split("/")[0])})
        # the command line shows the same figures
        cli = run([os.path.join(os.path.dirname(AGENT), "netprobe"), f"--server=http://127.0.0.1:{agent.port}",
                   "intel", "-o", "wide"], netns=v.ns).stdout
        log(f"netprobe intel:\n{cli}")
        row = next(line.split() for line in cli.splitlines() if line.startswith("bad "))
        self.assertEqual(row[:5], ["bad", "plain", "alert", "ok", "4"])
        # traffic to an address the feeds do not list is not counted
        before = self.settled(agent, "bad")
        s, r = self.ping(self.extra, 5, v.ns)
        self.assertEqual(r, s)
        agent.wait_collections(3)
        self.assertEqual(self.feed(agent, "bad")["matched"], before)


class Blocking(IntelCase):
    def test_block_feed_drops_alert_feed_passes_and_a_rewrite_takes_effect(self):
        v = self.topology()
        blocked = self.write("blocked.netset", f"# FireHOL-style netset\n{v.host_ip}\n")
        watched = self.write("watched.txt", f"{self.extra}/32\n")
        agent = self.agent("feeds:\n"
                           f"  - name: c2\n    type: netset\n    path: {blocked}\n    action: block\n"
                           f"  - name: watch\n    type: plain\n    path: {watched}\n",
                           "--mitigate=on")
        self.wait_loaded(agent)

        # to the block indicator: every echo request dropped at TC egress. ping retries a
        # send the device refused (ENOBUFS) without counting it as transmitted: the
        # oracle is the node kernel's count of echo requests sent (IcmpOutEchos,
        # counted before the packet reaches the device)
        echoes = self.echo_requests(v.ns)
        _, received = self.ping(v.host_ip, 10, v.ns)
        sent = self.echo_requests(v.ns) - echoes
        self.assertEqual(received, 0)
        # from it: dropped at TC ingress
        sent_in, received_in = self.ping(v.peer_ip, 5, v.host_ns)
        self.assertEqual(received_in, 0)
        # the alert feed's address passes
        s_ok, r_ok = self.ping(self.extra, 5, v.ns)
        self.assertEqual(r_ok, s_ok)
        c2 = wait_for(lambda: (m := self.feed(agent, "c2")["matched"])["dropped"]["packets"] >= sent + sent_in and m,
                      15, "the drops counted")
        c2 = self.settled(agent, "c2")
        watch = self.settled(agent, "watch")
        log(f"c2 feed: {self.feed(agent, 'c2')}")
        log(f"block: ping out {sent} sent/{received} received, in {sent_in}/{received_in}; c2 {c2}; watch {watch}")
        self.assertEqual(c2["dropped"], {"packets": sent + sent_in,
                                         "bytes": (sent + sent_in) * ICMP_ECHO_WIRE})
        self.assertEqual((c2["to"]["packets"], c2["from"]["packets"]), (sent, sent_in))
        self.assertEqual((watch["to"]["packets"], watch["from"]["packets"], watch["dropped"]["packets"]),
                         (s_ok, r_ok, 0))
        ev = wait_for(lambda: [e for e in self.events(agent) if e["evidence"]["feed"] == "c2"], 15, "a c2 event")
        self.assertEqual(ev[0]["evidence"]["action"], "block")

        # the indicator leaves the feed: the ping flow's entry is still in the kernel's
        # table with its cached verdict, which the new generation makes stale
        self.write("blocked.netset", "# emptied\n")
        self.wait_loaded(agent, generation=2)
        sent, received = self.ping(v.host_ip, 5, v.ns)
        log(f"after the rewrite: {sent} sent, {received} received")
        self.assertEqual(received, sent)
        self.assertEqual(self.feed(agent, "c2")["ips"], 0)
        self.assertEqual(agent.metrics().get("netprobe_intel_prefixes"), 1)


class UrlFeed(IntelCase):
    def test_https_feed_fetched_conditionally_and_reloaded_when_it_changes(self):
        """nginx serves the feed over HTTPS (a certificate for its address; the agent trusts
        it through ca_file). Later fetches are conditional: nginx's access log shows 304s and
        the set stays at its generation; a changed file is downloaded and installed. The
        same url without ca_file fails certificate verification and says so."""
        require_tools("nginx", "openssl", "curl")
        v = self.topology()
        url = f"https://{v.host_ip}:8443/feed.txt"

        def prepare(d: str):
            run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{d}/key.pem",
                 "-out", f"{d}/cert.pem", "-days", "2", "-subj", "/CN=feeds.test",
                 "-addext", f"subjectAltName=IP:{v.host_ip}"])
            os.makedirs(f"{d}/www")
            with open(f"{d}/www/feed.txt", "w") as f:
                f.write(f"# served\n{v.host_ip}\n")

        servers = ("server {{ listen " + v.host_ip + ":8443 ssl; ssl_certificate {d}/cert.pem; "
                   "ssl_certificate_key {d}/key.pem; location / {{ root {d}/www; }} }}")
        d = self.start_nginx(v.host_ns, servers, ["curl", "-sfk", "-o", "/dev/null", url], ready_netns=v.ns,
                             prepare=prepare)
        state = self.tmpdir()
        feeds = ("feeds:\n"
                 f"  - name: remote\n    type: plain\n    url: {url}\n    ca_file: {d}/cert.pem\n"
                 "    refresh: 10s\n"
                 f"  - name: untrusted\n    type: plain\n    url: {url}\n    refresh: 10s\n")
        agent = self.agent(feeds, f"--state-dir={state}")
        f = wait_for(lambda: (x := self.feed(agent, "remote"))["status"] == "ok" and x, 20, "the https feed")
        self.assertEqual(f["ips"], 1)
        bad = self.feed(agent, "untrusted")
        log(f"untrusted: {bad['status']}: {bad.get('error')}")
        self.assertEqual(bad["status"], "error")
        self.assertIn("ca_file", bad["error"])
        generation = self.intel(agent)["generation"]

        # the next fetch is conditional and changes nothing
        try:
            wait_for(lambda: self.feed(agent, "remote")["not_modified_total"] >= 1, 30, "a 304")
        finally:
            log(f"remote feed: {self.feed(agent, 'remote')}")
            with open(f"{d}/access.log") as log_file:
                log(f"nginx: {log_file.read()[-600:]}")
        self.assertEqual(self.intel(agent)["generation"], generation)
        with open(f"{d}/access.log") as log_file:
            codes = [line.split('"')[2].split()[0] for line in log_file if "/feed.txt" in line]
        log(f"nginx answered the feed requests with {codes}")
        self.assertIn("304", codes)

        # a changed file is downloaded and installed
        with open(f"{d}/www/feed.txt.tmp", "w") as out:
            out.write(f"# served\n{v.host_ip}\n{self.extra}/32\n")
        os.replace(f"{d}/www/feed.txt.tmp", f"{d}/www/feed.txt")
        f = wait_for(lambda: (x := self.feed(agent, "remote"))["ips"] == 2 and x, 30, "the changed feed")
        self.assertGreater(self.intel(agent)["generation"], generation)
        s, r = self.ping(self.extra, 3, v.ns)
        self.assertEqual(r, s)
        m = wait_for(lambda: (x := self.feed(agent, "remote")["matched"])["to"]["packets"] >= s and x, 15,
                     "the new indicator matched")
        log(f"remote feed matched: {m}")

        # a restart while the server is down starts from the copy under --state-dir
        agent.stop()
        with open(f"{d}/nginx.pid") as pid_file:
            os.kill(int(pid_file.read()), signal.SIGTERM)
        wait_for(lambda: run(["curl", "-sk", "-o", "/dev/null", url], netns=v.ns, check=False).returncode != 0, 10,
                 "nginx to stop")
        agent = self.agent(feeds, f"--state-dir={state}")
        f = wait_for(lambda: (x := self.feed(agent, "remote"))["ips"] == 2 and x, 20, "the cached feed")
        log(f"after a restart without the server: {f['status']}, from_cache={f['from_cache']}, {f.get('error')}")
        self.assertTrue(f["from_cache"])
        self.assertEqual(f["status"], "error")  # the fetch failed; the cached indicators stand
        s, r = self.ping(self.extra, 3, v.ns)
        wait_for(lambda: self.feed(agent, "remote")["matched"]["to"]["packets"] >= s, 15, "the cached indicator matched")


class DnsDomains(IntelCase):
    """Domain indicators on DNS (--l7=on): dnsmasq in the outside namespace answers names
    under a listed domain with the extra address; dig asks from the node. The address an
    answer gives becomes a block indicator for the record's TTL: the node's pings to it
    are dropped (exactly the echo requests its kernel sent) until the TTL runs out, and
    pass before and after."""

    TTL = 8

    def test_resolved_address_is_an_indicator_for_its_ttl(self):
        require_tools("dnsmasq", "dig")
        v = self.topology()
        d = self.tmpdir()
        self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
                    f"--listen-address={v.host_ip}", "--bind-interfaces", "--port=53", "--user=root",
                    f"--pid-file={d}/dnsmasq.pid", "--log-facility=-", "--local=/np.test/",
                    f"--host-record=www.evil.np.test,{self.extra}", "--cname=innocent.np.test,www.evil.np.test",
                    f"--host-record=good.np.test,{v.host_ip}", f"--local-ttl={self.TTL}"],
                   netns=v.host_ns, name="dnsmasq", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        domains = self.write("domains.txt", "# a domain list\nevil.np.test\n")
        agent = self.agent(f"feeds:\n  - name: doms\n    type: domains\n    path: {domains}\n    action: block\n"
                           "resolved:\n  min_ttl: 1s\n", "--mitigate=on", "--l7=on", "--socket-netns=own")
        self.wait_loaded(agent)
        agent.wait_collections(2)

        def dig(name: str) -> list[str]:
            out = run(["dig", f"@{v.host_ip}", "+time=2", "+tries=1", "+short", name, "A"], netns=v.ns).stdout
            return out.split()

        # before any answer: the address is nobody's indicator
        s0, r0 = self.ping(self.extra, 5, v.ns)
        self.assertEqual(r0, s0)
        self.assertEqual(dig("good.np.test"), [v.host_ip])
        self.assertEqual(dig("www.evil.np.test"), [self.extra])
        self.assertEqual(dig("innocent.np.test")[-1], self.extra)  # CNAME www.evil.np.test, then A
        dns = wait_for(lambda: (x := self.intel(agent).get("dns", {})) and
                       any(r["address"] == self.extra for r in x["resolved"]) and x, 15, "the resolved address")
        log(f"dns: {dns}")
        r = [r for r in dns["resolved"] if r["address"] == self.extra][0]
        self.assertEqual((r["indicator"], r["feed"], r["action"]), ("evil.np.test", "doms", "block"))
        matches = {m["query"]: m for m in dns["recent_matches"]}
        self.assertEqual(set(matches), {"www.evil.np.test", "innocent.np.test"})  # good.np.test is not covered
        self.assertEqual(matches["innocent.np.test"]["matched_name"], "www.evil.np.test")
        self.assertEqual(matches["www.evil.np.test"]["addresses"], [self.extra])
        agent.wait_collections(1)  # the sink writes the kernel's map right after the view is published

        # while it is an indicator: every echo request dropped at TC egress, counted for the feed
        before = self.feed(agent, "doms")["matched"]
        echoes = self.echo_requests(v.ns)
        _, received = self.ping(self.extra, 10, v.ns)
        sent = self.echo_requests(v.ns) - echoes
        self.assertEqual(received, 0)
        got = self.settled(agent, "doms")
        log(f"blocked: {sent} echo requests sent, 0 received; feed doms {got} (before {before})")
        self.assertEqual(got["dropped"]["packets"] - before["dropped"]["packets"], sent)
        self.assertEqual(got["to"]["packets"] - before["to"]["packets"], sent)
        self.assertEqual(got["dropped"]["bytes"] - before["dropped"]["bytes"], sent * ICMP_ECHO_WIRE)
        m = agent.metrics()
        self.assertEqual(m.get("netprobe_intel_dns_matches_total", feed="doms"), 2)
        self.assertGreaterEqual(m.get("netprobe_intel_dns_checked_total"), 3)
        ev = wait_for(lambda: [e for e in self.events(agent) if e["evidence"]["indicator"] == "evil.np.test" and
                               e["evidence"].get("flows", 0) >= 1], 15, "the domain's event with the ping flow")[0]
        log(f"event: {ev}")
        self.assertEqual((ev["src_ip"], ev["evidence"]["direction"], ev["evidence"]["feed"]), (v.peer_ip, "outbound", "doms"))
        self.assertEqual(ev["evidence"]["dns_queries"], 2)
        self.assertEqual(ev["evidence"]["resolved_addresses"], [self.extra])

        # the TTL runs out: the address leaves the kernel's map and the pings pass again
        wait_for(lambda: not any(r["address"] == self.extra for r in self.intel(agent)["dns"]["resolved"]),
                 self.TTL + 10, "the resolved address to expire")
        agent.wait_collections(1)
        s2, r2 = self.ping(self.extra, 5, v.ns)
        self.assertEqual(r2, s2)
        after = self.settled(agent, "doms")
        self.assertEqual(after, got, "nothing counted for the feed once the address expired")
        self.assertEqual(agent.metrics().get("netprobe_intel_resolved_expired_total"), 1)


class TcNames(IntelCase):
    """Domain indicators without the L7 capture: the names come from DNS answers and TLS
    ClientHellos captured at TC. A DNS answer holds its address (for at least min_ttl);
    so does the server a ClientHello names. While held, the node's pings to the address
    are dropped (exactly the echo requests its kernel sent) and a second TLS connection
    does not get through."""

    HOLD = 10  # resolved.min_ttl: the answers' TTL (8 s) is raised to it

    def test_dns_answers_and_tls_server_names_at_tc(self):
        require_tools("dnsmasq", "dig", "openssl", "curl")
        v = self.topology()
        d = self.tmpdir()
        self.spawn(["dnsmasq", "--keep-in-foreground", "--no-resolv", "--no-hosts", "--no-poll",
                    f"--listen-address={v.host_ip}", "--bind-interfaces", "--port=53", "--user=root",
                    f"--pid-file={d}/dnsmasq.pid", "--log-facility=-", "--local=/np.test/",
                    f"--host-record=www.evil.np.test,{self.extra}", "--local-ttl=8"],
                   netns=v.host_ns, name="dnsmasq", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        domains = self.write("domains.txt", "evil.np.test\n")
        agent = self.agent(f"feeds:\n  - name: doms\n    type: domains\n    path: {domains}\n    action: block\n"
                           f"resolved:\n  min_ttl: {self.HOLD}s\n", "--mitigate=on")
        self.assertIn("name capture on", agent.output())
        self.wait_loaded(agent)
        agent.wait_collections(2)

        def held() -> list[dict]:
            return [r for r in self.intel(agent).get("dns", {}).get("resolved", []) if r["address"] == self.extra]

        # 1. DNS over UDP, seen at TC: the answer's address is held
        out = run(["dig", f"@{v.host_ip}", "+time=2", "+tries=1", "+short", "www.evil.np.test", "A"], netns=v.ns).stdout
        self.assertEqual(out.split(), [self.extra])
        r = wait_for(held, 15, "the DNS answer's address held")[0]
        dns = self.intel(agent)["dns"]
        log(f"dns (tc): {dns}")
        self.assertEqual((r["indicator"], r["name"], r["action"]), ("evil.np.test", "www.evil.np.test", "block"))
        m = dns["recent_matches"][0]
        self.assertEqual((m["kind"], m["via"], m["query"], m["rcode"], m["addresses"]),
                         ("dns", "tc", "www.evil.np.test", "NOERROR", [self.extra]))
        agent.wait_collections(1)  # the sink writes the kernel's map right after the view is published
        echoes = self.echo_requests(v.ns)
        _, received = self.ping(self.extra, 5, v.ns)
        sent = self.echo_requests(v.ns) - echoes
        self.assertEqual(received, 0)
        got = self.settled(agent, "doms")
        log(f"dns hold: {sent} echo requests sent, none answered; feed {got}")
        self.assertEqual((got["to"]["packets"], got["dropped"]["packets"]), (sent, sent))
        met = agent.metrics()
        self.assertEqual(met.get("netprobe_intel_dns_matches_total", feed="doms"), 1)
        self.assertGreaterEqual(met.get("netprobe_name_capture_records_total"), 1)
        self.assertEqual(met.get("netprobe_map_update_errors_total", map="name_events"), 0)
        wait_for(lambda: not held(), self.HOLD + 10, "the address released")
        agent.wait_collections(1)

        # 2. TLS: a server on the same address; curl names it in its ClientHello
        run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=shop.evil.np.test",
             "-keyout", f"{d}/key.pem", "-out", f"{d}/cert.pem", "-days", "1"], check=True)
        self.spawn(["openssl", "s_server", "-accept", f"{self.extra}:8443", "-cert", f"{d}/cert.pem", "-key",
                    f"{d}/key.pem", "-www", "-quiet"], netns=v.host_ns, name="s_server",
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        url = "https://shop.evil.np.test:8443/"
        curl = ["curl", "-sk", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
                "--resolve", f"shop.evil.np.test:8443:{self.extra}", url]
        wait_for(lambda: run(["ss", "-Hltn", "sport = :8443"], netns=v.host_ns).stdout.strip(), 10, "s_server")
        first = run(curl, netns=v.ns, check=False)
        self.assertEqual(first.stdout, "200", first.stderr)  # the first connection completes before the hold
        r = wait_for(held, 15, "the server named in the ClientHello held")[0]
        self.assertEqual((r["name"], r["indicator"]), ("shop.evil.np.test", "evil.np.test"))
        m = [m for m in self.intel(agent)["dns"]["recent_matches"] if m["kind"] == "tls_sni"]
        self.assertEqual([(x["query"], x["server"], x["via"]) for x in m], [("shop.evil.np.test", f"{self.extra}:8443", "tc")])
        agent.wait_collections(1)
        second = run(curl, netns=v.ns, check=False)
        log(f"second connection while held: rc {second.returncode}, code {second.stdout!r}")
        self.assertNotEqual(second.stdout, "200")
        ev = wait_for(lambda: [e for e in self.events(agent) if e["evidence"]["indicator"] == "evil.np.test" and
                               any("SNI" in q for q in e["evidence"].get("dns_query_samples", []))], 15,
                      "the event with the SNI")[0]
        log(f"event: {ev['evidence']}")
        self.assertIn(f"shop.evil.np.test SNI to {self.extra}:8443", ev["evidence"]["dns_query_samples"])


class Config(IntelCase):
    def test_bad_configuration_names_the_key_and_exits(self):
        cfg = self.write("intel.yaml", "feeds:\n  - name: x\n    type: pdf\n    path: /nonexistent\n")
        p = subprocess.run([AGENT, f"--intel-config={cfg}", "--metrics-port=1"], capture_output=True, text=True,
                           timeout=20)
        log(f"exit {p.returncode}: {p.stderr.strip()[-300:]}")
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("feeds[0].type", p.stderr + p.stdout)
        self.assertIn("pdf", p.stderr + p.stdout)

    def test_missing_feed_file_is_reported_and_the_agent_runs(self):
        self.topology()
        agent = self.agent(f"feeds:\n  - name: gone\n    type: plain\n    path: {self.tmpdir()}/nope.txt\n")
        f = wait_for(lambda: (x := self.feed(agent, "gone"))["status"] == "error" and x, 20, "the feed error")
        self.assertIn("nope.txt", f["error"])
        self.assertEqual(agent.metrics().get("netprobe_intel_feed_loads_total", feed="gone", result="error") >= 1, True)


if __name__ == "__main__":
    unittest.main()
