// npm install standardwebhooks
const { Webhook } = require("standardwebhooks");

// The endpoint's signing secret (whsec_...), from the portal's "Reveal secret".
const webhook = new Webhook(process.env.WEBHOOK_SECRET);

// The delivery's payload; throws if it is forged, altered or stale. Pass the body exactly as
// received (a string or Buffer, before any JSON parsing): the signature covers its bytes.
// Answer 2xx quickly, and use the `webhook-id` header to drop a delivery you already handled.
function verify(rawBody, headers) {
  return webhook.verify(rawBody, headers);
}

module.exports = { verify };
