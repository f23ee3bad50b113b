// Preloaded (NODE_OPTIONS=--import) into the MCP Inspector CLI for the `/mcp` tests:
// it adds `Authorization: Bearer $R1_MCP_TOKEN` to every fetch to $R1_MCP_URL. The
// Inspector versions that run on Node 20 (0.15.0 and older; later ones need Node 22)
// have no CLI flag for request headers, and r1's perimeter rightly refuses `/mcp`
// without the token. Nothing else about the request changes.

const url = process.env.R1_MCP_URL;
const token = process.env.R1_MCP_TOKEN;
if (url && token) {
  const inner = globalThis.fetch;
  globalThis.fetch = (input, init = {}) => {
    const target = input instanceof Request ? input.url : String(input);
    if (!target.startsWith(url)) return inner(input, init);
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    headers.set("Authorization", `Bearer ${token}`);
    return inner(input, { ...init, headers });
  };
}
