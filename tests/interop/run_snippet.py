"""Run the portal's Python verification snippet (the file given) on one delivery.

stdin: {"secret", "headers": {name: value}, "body"}; stdout: {"verified", "payload" | "error"}.
The snippet is the page's own file, so a snippet that stops working fails `make test`.
"""

import json
import os
import runpy
import sys

case = json.load(sys.stdin)
os.environ["WEBHOOK_SECRET"] = case["secret"]
snippet = runpy.run_path(sys.argv[1])
try:
    payload = snippet["verify"](case["body"].encode(), case["headers"])
    print(json.dumps({"verified": True, "payload": payload}))
except snippet["WebhookVerificationError"] as error:
    print(json.dumps({"verified": False, "error": str(error)}))
