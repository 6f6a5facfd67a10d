// The L7 endpoints of an edge in the web UI's details pane, for tests/e2e/test_l7_http.py:
//   node ui_l7.cjs URL EDGE_ID OUT_DIR
// Opens the page (Debian's Chromium, playwright-core from NODE_PATH), chooses the edge
// EDGE_ID from the edge table (its row, Enter), waits for the pane's "L7 endpoints" table
// and prints one JSON line: its rows and the console errors; exits non-zero on failure.
const { launch, waitFor, finish } = require("./browser.cjs");

const [url, edgeId, outDir] = process.argv.slice(2);

(async () => {
  const res = { console_errors: [], rows: [] };
  const browser = await launch();
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    page.on("console", (m) => { if (m.type() === "error") res.console_errors.push(m.text()); });
    page.on("pageerror", (e) => res.console_errors.push(String(e)));
    await page.goto(url);
    const row = `#edges tbody tr[data-id="${edgeId}"]`;
    await waitFor(() => page.$(row), 20000, `the edge ${edgeId} in the table`);
    await page.focus(row);
    await page.keyboard.press("Enter");
    await waitFor(() => page.evaluate(() => [...document.querySelectorAll("#details h3")]
      .some((h) => h.textContent.startsWith("L7 endpoints"))), 10000, "the L7 endpoints of the edge");
    res.rows = await page.evaluate(() => {
      const h = [...document.querySelectorAll("#details h3")].find((x) => x.textContent.startsWith("L7 endpoints"));
      const t = h.nextElementSibling;
      return [...t.querySelectorAll("tbody tr")].map((r) => [...r.children].map((c) => c.textContent));
    });
    await page.screenshot({ path: `${outDir}/l7-edge.png` });
    if (res.console_errors.length) throw new Error(`console errors: ${res.console_errors.join("; ")}`);
  } catch (err) {
    await finish(browser, res, err);
  }
  await finish(browser, res, null);
})();
