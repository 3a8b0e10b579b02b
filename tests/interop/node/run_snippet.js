// Run the portal's Node verification snippet (the file given) on one delivery.
// stdin: {"secret", "headers": {name: value}, "body"}; stdout: {"verified", "payload" | "error"}.
// The snippet is the page's own file, so a snippet that stops working fails `make test`.
const fs = require("fs");

const delivery = JSON.parse(fs.readFileSync(0, "utf8"));
process.env.WEBHOOK_SECRET = delivery.secret;
const { verify } = require(process.argv[2]);
try {
  const payload = verify(delivery.body, delivery.headers);
  console.log(JSON.stringify({ verified: true, payload }));
} catch (error) {
  console.log(JSON.stringify({ verified: false, error: String(error.message) }));
}
