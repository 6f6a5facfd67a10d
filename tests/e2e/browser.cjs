// Shared by the browser tests (ui_check.cjs, ui_trace.cjs, ui_l7.cjs): Debian's Chromium through
// playwright-core (NODE_PATH: the build's ui/node_modules), and polling with a deadline.
const { chromium } = require("playwright-core");

// Headless Chromium ($CHROMIUM, else /usr/bin/chromium), nothing fetched from elsewhere.
function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync"],
  });
}

// Calls fn every 100 ms until it is truthy; throws naming `what` after timeoutMs.
async function waitFor(fn, timeoutMs, what) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// Ends a browser test: closes the browser and prints res as one JSON line (with the error,
// if any, and exit status 1).
async function finish(browser, res, err) {
  if (err) res.error = String(err && err.stack || err);
  process.stdout.write(JSON.stringify(res) + "\n");
  await browser.close();
  process.exit(err ? 1 : 0);
}

module.exports = { launch, waitFor, finish };
