"""Braintree's own library, for the interop tests: official sample notifications and verdicts.

Reads one JSON object per line on stdin and writes one per line on stdout:
- {"op": "sample", "public_key", "private_key", "kind", "id"} -> {"bt_signature", "bt_payload"},
  from braintree's WebhookTesting.sample_notification (signed by the library);
- {"op": "parse", "public_key", "private_key", "bt_signature", "bt_payload"} -> {"valid"};
- {"op": "challenge", "public_key", "private_key", "challenge"} -> {"answer"}.
"""

import json
import sys

import braintree


def gateway(case):
    return braintree.BraintreeGateway(
        braintree.Configuration(
            braintree.Environment.Sandbox,
            merchant_id="interop_merchant",
            public_key=case["public_key"],
            private_key=case["private_key"],
        )
    )


def run(case):
    g = gateway(case)
    if case["op"] == "sample":
        sample = g.webhook_testing.sample_notification(case["kind"], case["id"])
        payload = sample["bt_payload"]
        if isinstance(payload, bytes):
            payload = payload.decode("ascii")
        return {"bt_signature": sample["bt_signature"], "bt_payload": payload}
    if case["op"] == "parse":
        try:
            g.webhook_notification.parse(case["bt_signature"], case["bt_payload"])
            return {"valid": True}
        except Exception:  # the library raises InvalidSignatureError and friends
            return {"valid": False}
    if case["op"] == "challenge":
        return {"answer": g.webhook_notification.verify(case["challenge"])}
    raise ValueError(f"unknown op {case['op']}")


for line in sys.stdin:
    line = line.strip()
    if line:
        print(json.dumps(run(json.loads(line))), flush=True)
