"""Sign webhook requests with the providers' own libraries, for the interop tests.

Reads one JSON object per line on stdin: {"provider", "secret", "body", "id", "timestamp",
"url"}; writes one per line on stdout: {"provider", "headers": [[name, value], ...], "body"}.
Each signature comes from the provider's official package, never from this project's code:
stripe, svix, standardwebhooks, slack_sdk, twilio.
"""

import json
import sys
from datetime import datetime, timezone
from urllib.parse import parse_qsl


def sign(case):
    provider = case["provider"]
    secret = case["secret"]
    body = case["body"]
    ts = int(case["timestamp"])
    msg_id = case["id"]
    if provider == "stripe":
        import stripe

        header = stripe.WebhookSignature.generate_signature_header(body, secret, timestamp=ts)
        return [["stripe-signature", header]]
    if provider in ("svix", "clerk", "resend"):
        from svix.webhooks import Webhook

        when = datetime.fromtimestamp(ts, tz=timezone.utc)
        signature = Webhook(secret).sign(msg_id, when, body)
        return [["svix-id", msg_id], ["svix-timestamp", str(ts)], ["svix-signature", signature]]
    if provider == "standard-webhooks":
        from standardwebhooks.webhooks import Webhook

        when = datetime.fromtimestamp(ts, tz=timezone.utc)
        signature = Webhook(secret).sign(msg_id, when, body)
        return [
            ["webhook-id", msg_id],
            ["webhook-timestamp", str(ts)],
            ["webhook-signature", signature],
        ]
    if provider == "slack":
        from slack_sdk.signature import SignatureVerifier

        signature = SignatureVerifier(secret).generate_signature(timestamp=str(ts), body=body)
        return [["x-slack-request-timestamp", str(ts)], ["x-slack-signature", signature]]
    if provider == "twilio":
        from twilio.request_validator import RequestValidator

        params = dict(parse_qsl(body, keep_blank_values=True))
        signature = RequestValidator(secret).compute_signature(case["url"], params)
        return [["x-twilio-signature", signature]]
    raise ValueError(f"no official signer for {provider}")


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    case = json.loads(line)
    print(json.dumps({"provider": case["provider"], "headers": sign(case), "body": case["body"]}))
