// The web UI's packet path view in Debian's Chromium (playwright-core from the build's
// ui/node_modules, NODE_PATH), for tests/e2e/test_trace.py:
//   node ui_trace.cjs URL OUT_DIR '{"src": ..., "dst": ..., "proto": "udp", "dport": 7777, "seconds": 4}'
// Fills the page's trace form (by keyboard: Tab order and typing, then Enter), prints
// RUNNING once the page's trace is running (the test then sends the traffic), waits until
// the page shows it finished and prints one JSON line of what the page drew: the stages of
// each direction in order with their counts, the drops with stage, reason and count, and
// console errors. Exits non-zero on failure. A screenshot goes to OUT_DIR.
const { launch, waitFor } = require("./browser.cjs");
const path = require("path");

const [url, outDir, specJson] = process.argv.slice(2);
const spec = JSON.parse(specJson);

(async () => {
  const res = { console_errors: [], state: "", paths: {}, drops: [], status: "" };
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 1100 } });
    page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
    page.on("pageerror", (e) => res.console_errors.push(String(e)));
    await page.goto(url);
    await waitFor(() => page.evaluate(() => !!(window.netprobe && window.netprobe.trace)), 10000, "the page's trace model");
    // the form by keyboard: focus the protocol, then Tab through the fields in order
    await page.focus("#trace-proto");
    await page.selectOption("#trace-proto", spec.proto || "");
    for (const [k, v] of [["src", spec.src], ["sport", spec.sport], ["dst", spec.dst], ["dport", spec.dport],
                          ["seconds", spec.seconds]]) {
      await page.keyboard.press("Tab");
      const focused = await page.evaluate(() => document.activeElement && document.activeElement.id);
      if (focused !== `trace-${k}`) throw new Error(`Tab reached ${focused}, not trace-${k}`);
      await page.keyboard.press("Control+A");
      await page.keyboard.type(v === undefined || v === null ? "" : String(v));
    }
    await page.keyboard.press("Enter");
    await waitFor(() => page.evaluate(() => window.netprobe.trace.state === "running"), 15000, "the trace to run");
    process.stdout.write("RUNNING\n");
    await waitFor(() => page.evaluate(() => ["finished", "failed"].includes(window.netprobe.trace.state)),
                  (Number(spec.seconds) + 20) * 1000, "the trace to finish");
    Object.assign(res, await page.evaluate(() => {
      const paths = {};
      for (const ol of document.querySelectorAll("#trace-result ol.path")) {
        paths[ol.dataset.direction] = [...ol.querySelectorAll("li:not(.drop)")].map((li) => [li.dataset.stage, Number(li.dataset.packets)]);
      }
      const drops = [...document.querySelectorAll("#trace-result li.drop")].map((li) =>
        [li.dataset.stage, li.dataset.reason, Number(li.dataset.packets)]);
      return { state: window.netprobe.trace.state, paths, drops, status: document.getElementById("trace-status").textContent };
    }));
    await page.locator("#trace-pane").screenshot({ path: path.join(outDir, "ui-trace.png") });
  } finally {
    await browser.close();
  }
  process.stdout.write(JSON.stringify(res) + "\n");
})().catch((err) => {
  process.stderr.write(`ui_trace: ${err.stack || err}\n`);
  process.exit(1);
});
