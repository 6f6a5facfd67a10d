// The MCP SDK's own client against `netprobe mcp` (tests/e2e/test_mcp.py drives it).
//
//   node client.mjs PLAN.json
//
// PLAN: {"transport": "stdio", "command": "...", "args": [...]}
//    or {"transport": "http", "url": "http://127.0.0.1:PORT/mcp"},
//   plus "api": the agent's base URL (each call's "api" path is fetched right before and
//   right after the tool call, for the test to compare), "calls": [{"tool", "arguments",
//   "api"?}], and for http "terminate": true (end the session, then call once more).
// Prints one JSON object on stdout: the server's info, the tool list, each call's result
// ({isError, content}) or protocol error ({code, message}), the API's documents.
import { readFileSync } from 'node:fs';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const plan = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const watchdog = setTimeout(() => {
  console.error('client.mjs: gave up after 150 s');
  process.exit(3);
}, 150_000);

async function api(path) {
  const r = await fetch(plan.api + path);
  return { status: r.status, text: await r.text() };
}

function errorOf(e) {
  return { code: e?.code ?? null, message: String(e?.message ?? e) };
}

const transport = plan.transport === 'stdio'
  ? new StdioClientTransport({ command: plan.command, args: plan.args, stderr: 'inherit' })
  : new StreamableHTTPClientTransport(new URL(plan.url));
const client = new Client({ name: 'netprobe-e2e', version: '1.0.0' });
const out = { calls: [] };
transport.onerror = (e) => { (out.transport_errors ??= []).push(String(e?.message ?? e)); };

try {
  await client.connect(transport);
  out.server = client.getServerVersion();
  out.capabilities = client.getServerCapabilities();
  out.instructions = client.getInstructions();
  out.protocol_version = transport.protocolVersion ?? null;
  out.session_id = transport.sessionId ?? null;
  out.tools = (await client.listTools()).tools;
  await client.ping();
  for (const c of plan.calls) {
    const rec = { tool: c.tool, arguments: c.arguments };
    if (c.api) rec.before = await api(c.api);
    try {
      rec.result = await client.callTool({ name: c.tool, arguments: c.arguments });
    } catch (e) {
      rec.error = errorOf(e);
    }
    if (c.api) rec.after = await api(c.api);
    out.calls.push(rec);
  }
  if (plan.terminate) {
    await transport.terminateSession();
    out.terminated_session = transport.sessionId ?? null;
    try {
      // The session is gone: the server answers 404 (the SDK reports an error).
      const t2 = new StreamableHTTPClientTransport(new URL(plan.url), { sessionId: out.session_id });
      await t2.start();
      await t2.send({ jsonrpc: '2.0', id: 99, method: 'tools/list' });
      await t2.close();
      out.after_terminate = { ok: true };
    } catch (e) {
      out.after_terminate = errorOf(e);
    }
  }
} catch (e) {
  out.fatal = errorOf(e);
} finally {
  try {
    await client.close();
  } catch (e) {
    out.close_error = String(e);
  }
  clearTimeout(watchdog);
}
// (a pipe is written asynchronously: exit once the whole line is out)
process.stdout.write(JSON.stringify(out) + '\n', () => process.exit(out.fatal ? 2 : 0));
