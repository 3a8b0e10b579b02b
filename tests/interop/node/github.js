// GitHub's webhook signatures as GitHub's own library, @octokit/webhooks-methods, makes and
// judges them. Nothing here signs or compares by itself.
// stdin, one JSON line each:
//   {"op": "sign", "secret", "body"}                  -> {"signature": "sha256=..."}
//   {"op": "verify", "secret", "body", "signature"}   -> {"valid": true | false}
// One JSON line out per line in, in order. A `verify` the library throws on (a missing or
// malformed argument) is a refusal: {"valid": false, "error"}. A `sign` it throws on is
// {"error"}, which the test reports.
// The package is ESM only, so it is imported: from NODE_PATH (the test sets it to
// INTEROP_NODE_MODULES) when it is there, else from the node_modules beside this file.
const fs = require("fs");
const path = require("path");
const { pathToFileURL } = require("url");

const PACKAGE = "@octokit/webhooks-methods";

async function loadOctokit() {
  const dirs = (process.env.NODE_PATH || "").split(path.delimiter).filter(Boolean);
  for (const dir of dirs) {
    const root = path.join(dir, PACKAGE);
    const manifest = path.join(root, "package.json");
    if (!fs.existsSync(manifest)) {
      continue;
    }
    const { exports } = JSON.parse(fs.readFileSync(manifest, "utf8"));
    const entry = exports["."].node.import;
    return import(pathToFileURL(path.join(root, entry)).href);
  }
  return import(PACKAGE);
}

async function main() {
  const { sign, verify } = await loadOctokit();
  const lines = fs.readFileSync(0, "utf8").split("\n").filter((line) => line.trim() !== "");
  for (const line of lines) {
    const request = JSON.parse(line);
    let answer;
    switch (request.op) {
      case "sign":
        try {
          answer = { signature: await sign(request.secret, request.body) };
        } catch (error) {
          answer = { error: String(error.message) };
        }
        break;
      case "verify":
        try {
          answer = { valid: (await verify(request.secret, request.body, request.signature)) === true };
        } catch (error) {
          answer = { valid: false, error: String(error.message) };
        }
        break;
      default:
        throw new Error(`unknown op: ${JSON.stringify(request.op)}`);
    }
    console.log(JSON.stringify(answer));
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
