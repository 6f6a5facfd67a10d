// Drives the web UI in Debian's Chromium (playwright-core from the build's ui/node_modules,
// NODE_PATH) for tests/e2e/test_topology.py:
//   node ui_check.cjs URL OUT_DIR '{"edges": [[client, server], ...], "new_edge": [client, server]}'
// Prints READY once the expected edges are in the page's data model (the test then makes
// the new connection), and at the end one JSON line of findings; exits non-zero on failure.
const { launch, waitFor, finish } = require("./browser.cjs");

const [url, outDir, expectJson] = process.argv.slice(2);
const expect = JSON.parse(expectJson);

// One line from the test (stdin).
let stdinBuf = "";
const lineWaiters = [];
process.stdin.setEncoding("utf8");
process.stdin.on("data", (d) => {
  stdinBuf += d;
  let i;
  while ((i = stdinBuf.indexOf("\n")) >= 0 && lineWaiters.length) {
    const line = stdinBuf.slice(0, i);
    stdinBuf = stdinBuf.slice(i + 1);
    lineWaiters.shift()(line);
  }
});
function readLine() {
  return new Promise((resolve) => {
    const i = stdinBuf.indexOf("\n");
    if (i >= 0) { const line = stdinBuf.slice(0, i); stdinBuf = stdinBuf.slice(i + 1); resolve(line); return; }
    lineWaiters.push(resolve);
  });
}

(async () => {
  const res = { console_errors: [], edges_found: false, rows: 0, new_edge_after_ms: -1, flows_listed: 0,
                keyboard_selects: false, updates: 0, heat_interfaces: 0, heat_cells: 0,
                event_highlighted: false };
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
    page.on("pageerror", (e) => res.console_errors.push(String(e)));
    page.on("requestfailed", (r) => {
      const why = r.failure() && r.failure().errorText;
      // the page closes its event stream when a filter changes (and opens the new one)
      if (why === "net::ERR_ABORTED" && r.url().includes("/api/v1/topology/stream?")) return;
      res.console_errors.push(`request failed: ${r.url()} ${why}`);
    });
    await page.goto(url);
    const apiGet = (path) => page.evaluate(async (p) => (await fetch(`../api/v1/${p}`)).json(), path);
    const detailRows = (table) => page.$$eval(`${table} tbody tr`, (rs) => rs.map((r) => ({
      src: r.dataset.src, dst: r.dataset.dst, sport: Number(r.dataset.sport), dport: Number(r.dataset.dport),
      cookie: r.dataset.cookie })));
    // The details pane of a selected edge (port: the server's) or node (port null): every flow and
    // connection listed has the element's ends (and port), the connections are exactly those the
    // API answers for them, and the events and anomalies exactly those of the API that involve them.
    const checkDetails = async (ends1, ends2, port) => {
      const out = {};
      const side = (ip, p, ips, port) => ips.includes(ip) && (port === null || p === port);
      const belongs = (r) => port === null
        ? ends1.includes(r.src) || ends1.includes(r.dst)
        : (side(r.src, r.sport, ends2, port) && ends1.includes(r.dst)) || (side(r.dst, r.dport, ends2, port) && ends1.includes(r.src));
      const flows = await detailRows("#details-flows");
      const bad = flows.filter((r) => !belongs(r));
      if (!flows.length || bad.length) throw new Error(`flows listed ${JSON.stringify(flows)}; not of the selection: ${JSON.stringify(bad)}`);
      out.flows = flows.length;
      // the API's own answer (more than the page asks for, filtered here) against the rows, until they agree
      let last = "";
      await waitFor(async () => {
        const ips = port === null ? ends1 : ends2;
        const docs = await Promise.all(ips.map((ip) => apiGet(`connections?state=all&ip=${ip}${port === null ? "" : `&port=${port}`}&limit=10000`)));
        const want = [...new Set(docs.flatMap((d) => d.connections).filter((c) => belongs({ src: c.src_ip, dst: c.dst_ip, sport: c.src_port, dport: c.dst_port }))
                                  .map((c) => String(c.cookie)))].sort();
        const got = (await detailRows("#details-connections")).map((r) => r.cookie).sort();
        last = `page ${JSON.stringify(got)}, API ${JSON.stringify(want)}`;
        out.connections = got.length;
        return got.length > 0 && JSON.stringify(got) === JSON.stringify(want);
      }, 10000, "the connections listed to be the API's for the selection").catch((e) => { throw new Error(`${e.message}: ${last}`); });
      await waitFor(async () => {
        const since = Math.floor(Date.now() / 1000) - 300;
        const ips = [...ends1, ...ends2];
        const ev = (await apiGet(`events?since=${since}&limit=200`)).events
          .filter((e) => [e.src_ip, e.dst_ip, ...(e.targets || [])].some((ip) => ips.includes(ip))).map((e) => `event:${e.id}`);
        const an = (await apiGet("anomalies?limit=200")).events.filter((a) => (a.open || a.last_unix >= since) &&
          (a.scope === "entity" ? ips.includes(a.subject)
                                : ips.some((ip) => a.subject.startsWith(`edge/${ip}->`) || a.subject.includes(`->${ip}:`) ||
                                                   a.subject.startsWith(`service/${ip}:`)))).map((a) => `anomaly:${a.id}`);
        const want = [...ev, ...an].sort();
        const got = await page.$$eval("#details-events li", (ls) => ls.map((l) => `${l.dataset.kind}:${l.dataset.id}`));
        got.sort();
        last = `page ${JSON.stringify(got)}, API ${JSON.stringify(want)}`;
        out.events = got;
        return JSON.stringify(got) === JSON.stringify(want);
      }, 10000, "the events listed to be the API's for the selection").catch((e) => { throw new Error(`${e.message}: ${last}`); });
      return out;
    };
    const hasEdges = (pairs) => page.evaluate((pairs) => {
      const d = window.netprobe && window.netprobe.data;
      return !!d && pairs.every(([a, b]) => d.edges.some((e) => e.source === a && e.target === b));
    }, pairs);
    await waitFor(() => hasEdges(expect.edges), 20000, "the expected edges in the page's data model");
    res.edges_found = true;
    // the graph and the table show what the model holds
    res.rows = await page.$$eval("#edges tbody tr", (rs) => rs.length);
    const shown = await page.evaluate(() => ({ edges: window.netprobe.cy.edges().length, model: window.netprobe.data.edges.length }));
    if (shown.edges !== shown.model || res.rows !== Math.min(shown.model, 200))
      throw new Error(`graph ${shown.edges} / table ${res.rows} / model ${shown.model} edges`);
    process.stdout.write("READY\n");
    // The test now makes a new connection and prints the wall-clock time (ms) just before its
    // first packet (the client's connect()); the page itself notes when it first drew the edge.
    const sentAt = Number((await readLine()).trim());
    await waitFor(() => hasEdges([expect.new_edge]), 30000, "the new connection's edge");
    const seen = await page.evaluate(([a, b]) => {
      const d = window.netprobe.data.edges.find((e) => e.source === a && e.target === b);
      return window.netprobe.firstSeen[d.id];
    }, expect.new_edge);
    res.new_edge_after_ms = seen.at - sentAt;
    res.new_edge_via = seen.via;

    // click the first expected edge where the graph draws it
    const pt = await page.evaluate(([a, b]) => {
      const cy = window.netprobe.cy;
      cy.fit(undefined, 40);
      const e = cy.edges().filter((x) => x.data("source") === a && x.data("target") === b)[0];
      const m = e.renderedMidpoint();
      const r = cy.container().getBoundingClientRect();
      return { x: r.left + m.x, y: r.top + m.y, id: e.id() };
    }, expect.edges[0]);
    await page.mouse.click(pt.x, pt.y);
    await page.waitForSelector("#details-flows tbody tr", { timeout: 10000 });
    await page.waitForSelector("#details-connections tbody tr", { timeout: 10000 });
    res.selected = await page.evaluate(() => window.netprobe.state.selected);
    if (res.selected !== pt.id) throw new Error(`the click selected ${res.selected}, not ${pt.id}`);
    const edge = await page.evaluate((id) => window.netprobe.data.edges.find((e) => e.id === id), pt.id);
    res.edge_details = await checkDetails([edge.source], [edge.target], edge.port);
    res.flows_listed = res.edge_details.flows;
    // the iperf3 client's own data connection (its local port, from iperf3's report) is listed
    const rows = await detailRows("#details-connections");
    for (const port of expect.edge_client_ports)
      if (!rows.some((r) => (r.src === edge.source && r.sport === port) || (r.dst === edge.source && r.dport === port)))
        throw new Error(`iperf3's connection from port ${port} not among the edge's connections ${JSON.stringify(rows)}`);
    await page.screenshot({ path: `${outDir}/topology.png` });

    // keyboard: the edge table's rows are focusable; Down then Enter selects the second
    await page.focus("#edges tbody tr");
    await page.keyboard.press("ArrowDown");
    const want = await page.evaluate(() => document.activeElement.dataset.id);
    await page.keyboard.press("Enter");
    await waitFor(() => page.evaluate((w) => window.netprobe.state.selected === w &&
                                       document.querySelector("#details h2").textContent.includes("\u2192"), want),
                  5000, "the row chosen with the keyboard to be shown");
    res.keyboard_selects = true;
    await page.screenshot({ path: `${outDir}/topology-keyboard.png` });
    // keyboard only: Tab until the node list has the focus, arrow keys to the expected node,
    // Enter: its details (flows, connections, events) open
    if (expect.keyboard_node) {
      let presses = 0;
      while (!(await page.evaluate(() => !!document.activeElement.closest("#nodes tbody")))) {
        if (++presses > 150) throw new Error("Tab never reached the node list");
        await page.keyboard.press("Tab");
      }
      res.node_list_tabs = presses;
      let moves = 0;
      for (;;) {
        const { order, at } = await page.evaluate(() => ({
          order: [...document.querySelectorAll("#nodes tbody tr")].map((r) => r.dataset.id), at: document.activeElement.dataset.id }));
        if (at === expect.keyboard_node) break;
        if (!order.includes(expect.keyboard_node) || ++moves > 3 * order.length)
          throw new Error(`${expect.keyboard_node} not reached in the node list ${JSON.stringify(order)} (at ${at})`);
        await page.keyboard.press(order.indexOf(expect.keyboard_node) > order.indexOf(at) ? "ArrowDown" : "ArrowUp");
      }
      res.node_list_moves = moves;
      await page.keyboard.press("Enter");
      await waitFor(() => page.evaluate((w) => window.netprobe.state.selected === w &&
                                         document.querySelector("#details h2").textContent === w &&
                                         !!document.querySelector("#details-connections tbody tr"), expect.keyboard_node),
                    10000, "the node chosen with the keyboard to be shown");
      // a new selection's details start at the top of the pane (its name in view)
      res.details_scroll_top = await page.evaluate(() => document.querySelector("#details").scrollTop);
      if (res.details_scroll_top !== 0) throw new Error(`the details pane is scrolled to ${res.details_scroll_top}`);
      res.node_details = await checkDetails([expect.keyboard_node], [], null);
      res.keyboard_node_selects = true;
      await page.screenshot({ path: `${outDir}/topology-node.png` });
    }
    // anomalies: the one the API reports for the expected subject is on the timeline, in the
    // list, and badges its node
    if (expect.anomaly_subject) {
      const a = (await apiGet("anomalies?limit=200")).events.find((x) => x.scope === "entity" && x.subject === expect.anomaly_subject);
      if (!a) throw new Error(`no anomaly of ${expect.anomaly_subject} in the API`);
      await waitFor(() => page.evaluate(([id, node]) => {
        const t = (window.netprobe.timeline || []).find((e) => e.kind === "anomaly" && e.id === id);
        return !!t && t.nodes.includes(node) && window.netprobe.cy.getElementById(node).hasClass("anomaly") &&
          !!document.querySelector(`#timeline .mark.anomaly[data-id="${id}"]`) &&
          !!document.querySelector(`#events li[data-kind="anomaly"][data-id="${id}"]`);
      }, [a.id, expect.anomaly_subject]), 10000, `anomaly ${a.id} of ${expect.anomaly_subject} on the page`);
      res.anomaly = { id: a.id, summary: a.summary };
      res.anomaly_badged = await page.evaluate(() => window.netprobe.badges.anomaly);
    }
    // the heatmaps: a cell for every expected client x server pair, the interfaces' history
    await waitFor(() => page.evaluate((pairs) => pairs.every(([a, b]) =>
      window.netprobe.heat.matrix.some(([r, c, v]) => r === a && c === b && v > 0)), expect.edges), 5000,
      "the expected pairs in the client x server heatmap");
    res.heat_interfaces = await page.evaluate(() => window.netprobe.heat.interfaces.size);
    res.heat_cells = await page.$$eval("#heat-matrix td.cell[title]", (cs) => cs.length);
    await page.screenshot({ path: `${outDir}/heatmaps.png`, fullPage: true });
    // the events: the scan the test made is listed; choosing it highlights the scanner's node
    if (expect.event_src) {
      // (the security event: the topology's new_boundary_edge events have the same source)
      await waitFor(() => page.evaluate((src) => window.netprobe.events.some((e) => e.src_ip === src &&
                                          e.type !== "new_boundary_edge"), expect.event_src),
                    15000, "the scan in the page's events");
      const id = await page.evaluate((src) => window.netprobe.events.find((e) => e.src_ip === src &&
                                       e.type !== "new_boundary_edge").id, expect.event_src);
      await page.click(`#events li[data-kind="event"][data-id="${id}"]`);
      await waitFor(() => page.evaluate((src) => (window.netprobe.eventNodes || []).includes(src), expect.event_src),
                    5000, "the scanner's node highlighted");
      res.event_highlighted = true;
      await page.screenshot({ path: `${outDir}/events.png`, fullPage: true });
    }
    // The filters: after each change the page's graph, table and model hold what the API
    // answers for the same query (window, grouping, namespace, protocol), and the graph draws
    // every edge of the model.
    if (expect.filters) {
      res.filters = {};
      const control = async (id, value) => {
        if (id === "namespace") {
          await page.fill("#namespace", value);
          await page.dispatchEvent("#namespace", "change");
        } else {
          await page.selectOption(`#${id}`, value);
        }
      };
      const edgeKeys = (edges) => edges.map((e) => `${e.source}>${e.target}:${e.port}/${e.transport}`).sort();
      for (const step of expect.filters) {
        for (const [id, value] of Object.entries(step.set)) await control(id, value);
        const q = await page.evaluate(() => {
          const v = (id) => document.getElementById(id).value.trim();
          const q = new URLSearchParams({ window: v("window"), group_by: v("group_by") });
          if (v("namespace")) q.set("namespace", v("namespace"));
          if (v("protocol")) q.set("protocol", v("protocol"));
          return q.toString();
        });
        let last = "";
        await waitFor(async () => {
          const api = await apiGet(`topology?${q}`);
          const got = await page.evaluate(() => ({ edges: window.netprobe.data.edges, nodes: window.netprobe.data.nodes,
                                                   drawn: window.netprobe.cy.edges().length,
                                                   rows: document.querySelectorAll("#edges tbody tr").length }));
          const a = edgeKeys(api.edges), b = edgeKeys(got.edges);
          last = `page ${JSON.stringify(b)}, API ${JSON.stringify(a)}, drawn ${got.drawn}, rows ${got.rows}`;
          res.filters[step.name] = { query: q, edges: b, node_kinds: [...new Set(got.nodes.map((n) => n.kind))].sort(),
                                     rows: got.rows };
          return JSON.stringify(a) === JSON.stringify(b) && got.drawn === b.length && got.rows === Math.min(b.length, 200);
        }, 15000, `the page to show the API's topology for ${step.name}`).catch((e) => { throw new Error(`${e.message}: ${last}`); });
        await page.screenshot({ path: `${outDir}/filter-${step.name}.png` });
      }
    }
    res.updates = await page.evaluate(() => window.netprobe.updates);
    res.stream = await page.evaluate(() => window.netprobe.stream);
    if (res.console_errors.length) throw new Error(`console errors: ${res.console_errors.join("; ")}`);
  } catch (err) {
    await finish(browser, res, err);
  }
  await finish(browser, res, null);
})();
