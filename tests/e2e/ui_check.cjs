// Drives the web UI in Debian's Chromium (playwright-core from the build's ui/node_modules,
// NODE_PATH) for tests/e2e/test_topology.py:
//   node ui_check.cjs URL OUT_DIR '{"edges": [[client, server], ...], "new_edge": [client, server]}'
// Prints READY once the expected edges are in the page's data model (the test then makes
// the new connection), and at the end one JSON line of findings; exits non-zero on failure.
const { launch, waitFor } = require("./browser.cjs");

const [url, outDir, expectJson] = process.argv.slice(2);
const expect = JSON.parse(expectJson);

(async () => {
  const res = { console_errors: [], edges_found: false, rows: 0, new_edge_after_ms: -1, flows_listed: 0,
                keyboard_selects: false, updates: 0, heat_interfaces: 0, heat_cells: 0,
                event_highlighted: false };
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
    page.on("pageerror", (e) => res.console_errors.push(String(e)));
    page.on("requestfailed", (r) => res.console_errors.push(`request failed: ${r.url()} ${r.failure() && r.failure().errorText}`));
    await page.goto(url);
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
    const t0 = Date.now();
    await waitFor(() => hasEdges([expect.new_edge]), 30000, "the new connection's edge");
    res.new_edge_after_ms = Date.now() - t0;

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
    await page.waitForSelector("#edge-flows tbody tr", { timeout: 10000 });
    res.selected = await page.evaluate(() => window.netprobe.state.selected);
    if (res.selected !== pt.id) throw new Error(`the click selected ${res.selected}, not ${pt.id}`);
    res.flows_listed = await page.$$eval("#edge-flows tbody tr", (rs) => rs.length);
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
      await page.click(`#events li[data-id="${id}"]`);
      await waitFor(() => page.evaluate((src) => (window.netprobe.eventNodes || []).includes(src), expect.event_src),
                    5000, "the scanner's node highlighted");
      res.event_highlighted = true;
      await page.screenshot({ path: `${outDir}/events.png`, fullPage: true });
    }
    res.updates = await page.evaluate(() => window.netprobe.updates);
    res.stream = await page.evaluate(() => window.netprobe.stream);
    if (res.console_errors.length) throw new Error(`console errors: ${res.console_errors.join("; ")}`);
  } catch (err) {
    res.error = String(err && err.stack || err);
    process.stdout.write(JSON.stringify(res) + "\n");
    await browser.close();
    process.exit(1);
  }
  await browser.close();
  process.stdout.write(JSON.stringify(res) + "\n");
})();
