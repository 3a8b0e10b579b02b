"""Verify outbound deliveries with the official libraries, for the interop tests.

Reads one JSON object per line on stdin: {"secret", "headers": [[name, value], ...], "body"};
writes one per line on stdout: {"standardwebhooks": "ok" | error, "svix": "ok" | error}. Each
verdict comes from the library a partner would use, never from this project's code.
"""

import json
import sys


def verdict(verify):
    try:
        verify()
        return "ok"
    except Exception as e:  # the libraries raise their own types; any is a refusal
        return f"{type(e).__name__}: {e}"


def check(case):
    headers = {name: value for name, value in case["headers"]}
    body = case["body"]
    secret = case["secret"]
    from standardwebhooks.webhooks import Webhook as StandardWebhook
    from svix.webhooks import Webhook as SvixWebhook

    return {
        "standardwebhooks": verdict(lambda: StandardWebhook(secret).verify(body, headers)),
        "svix": verdict(lambda: SvixWebhook(secret).verify(body, headers)),
    }


for line in sys.stdin:
    if line.strip():
        print(json.dumps(check(json.loads(line))), flush=True)
