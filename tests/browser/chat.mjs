// Two Chromium pages chat through the demo page served at URL.
//
//   node tests/browser/chat.mjs URL SCREENSHOT_PATH [TOKEN [recover]]
//
// With `recover` (a server keeping history, the token's user disconnectable
// through the API): the pages' sessions are cut, two messages are published
// while they are away, and page B must show both once it is back, marked
// as recovered.
//
// With TOKEN, every socket shows it as the page does: a `bearer.` subprotocol
// entry beside "chat" (the server must answer "chat", or Chromium fails the
// handshake).
//
// Both pages join one fresh room under different names; A sends (Enter), B
// answers (the Send button); each message must show on both pages, the
// sender's included. A message with markup must appear as text, and a
// non-JSON message as raw text. Prints OK and exits 0, or prints what failed
// and exits 1. Every wait is bounded, and so is the whole run.

import { chromium } from "playwright-core";

const WAIT_MS = 10_000;
const RUN_MS = 60_000;
const CHROMIUM = "/usr/bin/chromium";

const [url, screenshotPath, token, mode] = process.argv.slice(2);
if (!url || !screenshotPath) {
  console.log("usage: node chat.mjs URL SCREENSHOT_PATH [TOKEN]");
  process.exit(2);
}

setTimeout(() => {
  console.log(`FAILED: the run did not finish within ${RUN_MS / 1000} s`);
  process.exit(1); // playwright kills the browser it launched on exit
}, RUN_MS);

let step = "launch Chromium";
const pageLogs = [];
let browser;

try {
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    timeout: WAIT_MS,
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-quic",
      "--no-first-run",
      "--disable-component-update",
      "--disable-sync",
    ],
  });

  const room = `browser-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
  const openPage = async (label, name) => {
    step = `${label}: open ${url}`;
    const context = await browser.newContext({ viewport: { width: 900, height: 620 } });
    context.setDefaultTimeout(WAIT_MS);
    const page = await context.newPage();
    page.on("console", (m) => pageLogs.push(`${label} console.${m.type()}: ${m.text()}`));
    page.on("pageerror", (e) => pageLogs.push(`${label} page error: ${e.message}`));
    const response = await page.goto(url, { timeout: WAIT_MS });
    if (!response || response.status() !== 200) {
      throw new Error(`GET ${url} answered ${response ? response.status() : "nothing"}`);
    }
    const title = await page.title();
    if (title !== "ferrows chat") throw new Error(`unexpected page title ${JSON.stringify(title)}`);

    step = `${label}: join room ${room} as ${name}`;
    await page.fill("#name", name);
    await page.fill("#room", room);
    if (token) await page.fill("#token", token);
    await page.click("#join");
    return page;
  };

  const waitConnected = async (label, page) => {
    step = `${label}: wait for #status to show connected`;
    await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("connected"), null, {
      timeout: WAIT_MS,
    });
  };

  // Resolves once the page's #messages has an li whose text is exactly `line`.
  const waitForLine = async (label, page, line) => {
    step = `${label}: wait for ${JSON.stringify(line)} in #messages`;
    try {
      await page.waitForFunction(
        (expected) => [...document.querySelectorAll("#messages li")].some((li) => li.textContent === expected),
        line,
        { timeout: WAIT_MS },
      );
    } catch (e) {
      const shown = await page.$$eval("#messages li", (items) => items.map((li) => li.textContent)).catch(() => []);
      throw new Error(`${e.message}\n#messages holds: ${JSON.stringify(shown)}`);
    }
  };

  const a = await openPage("page A", "alice");
  const b = await openPage("page B", "bob");
  await waitConnected("page A", a);
  await waitConnected("page B", b);

  // Markup in a message is text, never HTML.
  const fromA = "hello from A <i>not italic</i> & <img src=x>";
  step = "page A: type a message and press Enter";
  await a.fill("#text", fromA);
  await a.press("#text", "Enter");
  await waitForLine("page B", b, `alice: ${fromA}`);
  await waitForLine("page A", a, `alice: ${fromA}`);
  for (const [label, page] of [["page A", a], ["page B", b]]) {
    step = `${label}: check that the message's markup was not parsed`;
    const parsed = await page.$$eval("#messages i, #messages img", (nodes) => nodes.length);
    if (parsed !== 0) throw new Error(`${parsed} element(s) were created from a message's text`);
  }

  const fromB = "hi alice, bob here ✓";
  step = "page B: type a message and click Send";
  await b.fill("#text", fromB);
  await b.click("#send");
  await waitForLine("page A", a, `bob: ${fromB}`);
  await waitForLine("page B", b, `bob: ${fromB}`);

  // A peer that does not speak JSON: its text shows as it is.
  step = "page A: send a non-JSON message from a third socket";
  await a.evaluate(
    ([roomName, text, bearer]) =>
      new Promise((resolve, reject) => {
        const address = `ws://${location.host}/rooms/${encodeURIComponent(roomName)}`;
        const ws = bearer ? new WebSocket(address, ["chat", "bearer." + bearer]) : new WebSocket(address);
        ws.onopen = () => {
          if (bearer && ws.protocol !== "chat") reject(new Error(`the server answered ${JSON.stringify(ws.protocol)}`));
          ws.send(text);
          ws.close(1000);
          resolve();
        };
        ws.onerror = () => reject(new Error("the third socket failed to open"));
      }),
    [room, "plain text, not JSON", token || ""],
  );
  await waitForLine("page B", b, "plain text, not JSON");

  if (mode === "recover") {
    step = "recover: cut the pages' sessions (POST /api/disconnect) and publish while they are away";
    const post = async (path, body) => {
      const response = await fetch(new URL(path, url), { method: "POST", body: JSON.stringify(body) });
      if (!response.ok) throw new Error(`POST ${path} answered ${response.status}: ${await response.text()}`);
    };
    await post("api/disconnect", { user: "browser" });
    for (const text of ["missed one", "missed two"]) {
      await post(`publish/${encodeURIComponent(room)}`, { name: "server", text });
    }
    for (const text of ["missed one", "missed two"]) {
      step = `page B: wait for ${JSON.stringify(text)} shown as recovered`;
      await b.waitForFunction(
        (expected) =>
          [...document.querySelectorAll("#messages li.recovered")].some((li) => li.textContent === expected),
        `server: ${text}`,
        { timeout: WAIT_MS },
      );
    }
    await waitConnected("page B", b);
  }

  step = `page B: screenshot to ${screenshotPath}`;
  await b.screenshot({ path: screenshotPath, timeout: WAIT_MS });

  step = "close Chromium";
  await browser.close();
  console.log("OK");
  process.exit(0);
} catch (e) {
  console.log(`FAILED at step "${step}": ${e && e.message ? e.message : e}`);
  for (const line of pageLogs) console.log(line);
  await Promise.race([browser?.close(), new Promise((resolve) => setTimeout(resolve, 5000))]).catch(() => {});
  process.exit(1);
}
