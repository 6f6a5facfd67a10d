// The web UI's first render and update cost at scale (bench/ui_render.sh), in Debian's
// Chromium driven by playwright-core (NODE_PATH: the build's ui/node_modules):
//   node ui_render.cjs URL NODES EDGES ROUNDS
// Each round opens a fresh browser context, navigates to URL and waits (polling on
// animation frames) until the page's own data model and graph hold NODES nodes and EDGES
// edges, laid out, with the edge table filled; the time is the page's performance.now()
// then (ms since navigation start). After the last round the page keeps running: from 2 s
// after its first render, 10 s of live updates while a PerformanceObserver sums the main
// thread's long tasks; then 5 edges chosen with the keyboard (row focus, Enter) timed until
// the details pane names each, and a screenshot (env SCREENSHOT, when set).
// Prints one JSON line; exits non-zero when a round does not reach the counts.
const { chromium } = require("playwright-core");

const [url, nodesArg, edgesArg, roundsArg] = process.argv.slice(2);
const nodes = Number(nodesArg), edges = Number(edgesArg), rounds = Number(roundsArg || 5);
const STEADY_S = 10;

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

(async () => {
  const res = { nodes, edges, first_render_ms: [], first_render_ms_median: 0, longtask_ms_per_second: 0,
                updates: 0, steady_seconds: STEADY_S, console_errors: [] };
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
  let page = null;
  try {
    for (let r = 0; r < rounds; r++) {
      if (page) await page.context().close();
      const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 } });
      page = await ctx.newPage();
      page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
      page.on("pageerror", (e) => res.console_errors.push(String(e)));
      await page.goto(url);
      const h = await page.waitForFunction(([n, e]) => {
        const m = window.netprobe;
        if (!m || !m.cy || !m.data || m.layouts < 1) return false;
        if (m.cy.nodes().length < n || m.cy.edges().length < e) return false;
        if (document.querySelectorAll("#edges tbody tr").length === 0) return false;
        return performance.now();
      }, [nodes, edges], { polling: "raf", timeout: 60000 });
      res.first_render_ms.push(Math.round(await h.jsonValue()));
    }
    res.first_render_ms_median = median(res.first_render_ms);
    // steady state: the live updates of the last page, from 2 s after its first render
    await new Promise((ok) => setTimeout(ok, 2000));
    const steady = await page.evaluate(async (secs) => {
      let busy = 0;
      const obs = new PerformanceObserver((list) => { for (const e of list.getEntries()) busy += e.duration; });
      obs.observe({ type: "longtask" });
      const u0 = window.netprobe.updates;
      await new Promise((ok) => setTimeout(ok, secs * 1000));
      obs.disconnect();
      return { busy, updates: window.netprobe.updates - u0 };
    }, STEADY_S);
    res.longtask_ms_per_second = Math.round(steady.busy / STEADY_S);
    res.updates = steady.updates;
    // usable at that size: the keyboard's way to an edge (focus a row of the edge table,
    // Enter) until its details pane names it, 5 times on different rows (the median)
    res.select_ms = [];
    for (let i = 0; i < 5; i++) {
      const rowSel = `#edges tbody tr:nth-child(${1 + i * 7})`;
      await page.focus(rowSel);
      const id = await page.$eval(rowSel, (r) => r.dataset.id);
      const t0 = await page.evaluate(() => performance.now());
      await page.keyboard.press("Enter");
      const h = await page.waitForFunction((want) => window.netprobe.state.selected === want &&
        document.querySelector("#details h2") && document.querySelector("#details h2").textContent.includes("\u2192") &&
        performance.now(), id, { polling: "raf", timeout: 10000 });
      res.select_ms.push(Math.round(await h.jsonValue() - t0));
    }
    res.select_ms_median = median(res.select_ms);
    // readable at that size? The page as it is, for docs/images (SCREENSHOT)
    if (process.env.SCREENSHOT) {
      // the graph (the keyboard scrolled the page to the table), the last edge still selected
      await page.evaluate(() => { window.scrollTo(0, 0); window.netprobe.cy.fit(undefined, 20); });
      await page.waitForTimeout(300);
      await page.screenshot({ path: process.env.SCREENSHOT });
    }
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(res) + "\n");
  if (res.first_render_ms.length !== rounds) process.exit(1);
})().catch((err) => {
  process.stderr.write(`ui_render: ${err.stack || err}\n`);
  process.exit(1);
});
