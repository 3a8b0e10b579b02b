"""Sign and verify webhook requests of the declared providers with their official libraries, for
the interop tests.

Reads one JSON object per line on stdin and writes one per line on stdout, in order:

- {"op": "sign", "provider", "body", "timestamp", "secret"?, "url"?} ->
  {"provider", "secret", "headers": [[name, value], ...], "body"}. Where the provider signs with
  a key pair (Discord, SendGrid) a fresh key pair is made and "secret" is what the tenant would
  configure: Discord's application public key (hex), SendGrid's verification key (base64 DER).
- {"op": "verify", "provider", "secret", "headers", "body", "url"?} ->
  {"provider", "valid": bool, "error"?}: the official library's verdict on that request.

The libraries (PyPI): PyNaCl (Discord documents its verification with it), sendgrid
(EventWebhook), squareup (square.utils.webhooks_helper), paddle-python-sdk
(paddle_billing.Notifications). Where a library cannot sign, the signature is computed as the
provider documents it and the script refuses to emit it unless the library verifies it.
"""

import base64
import hashlib
import hmac
import json
import sys


def header(headers, name):
    """The value of `name` (any case) among [name, value] pairs; None when absent."""
    for key, value in headers:
        if key.lower() == name.lower():
            return value
    return None


def sign(case):
    provider = case["provider"]
    body = case["body"]
    ts = str(case["timestamp"])
    if provider == "discord":
        from nacl.signing import SigningKey

        key = SigningKey.generate()
        signature = key.sign((ts + body).encode("utf-8")).signature.hex()
        public_key = key.verify_key.encode().hex()
        return public_key, [["X-Signature-Ed25519", signature], ["X-Signature-Timestamp", ts]]
    if provider == "sendgrid":
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        key = ec.generate_private_key(ec.SECP256R1())
        signature = base64.b64encode(
            key.sign((ts + body).encode("utf-8"), ec.ECDSA(hashes.SHA256()))
        ).decode()
        public_key = base64.b64encode(
            key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        ).decode()
        headers = [
            ["X-Twilio-Email-Event-Webhook-Signature", signature],
            ["X-Twilio-Email-Event-Webhook-Timestamp", ts],
        ]
        if verify_with_library("sendgrid", public_key, headers, body, None) is not True:
            raise AssertionError("sendgrid's EventWebhook refused a signature cryptography made")
        return public_key, headers
    if provider == "square":
        # squareup only verifies; sign as Square documents (base64 HMAC-SHA256 over the
        # notification URL then the body) and let the library confirm.
        secret = case["secret"]
        digest = hmac.new(
            secret.encode("utf-8"), (case["url"] + body).encode("utf-8"), hashlib.sha256
        ).digest()
        headers = [["x-square-hmacsha256-signature", base64.b64encode(digest).decode()]]
        if verify_with_library("square", secret, headers, body, case["url"]) is not True:
            raise AssertionError("squareup refused a signature made as Square documents")
        return secret, headers
    if provider == "paddle":
        from paddle_billing.Notifications import PaddleSignature

        secret = case["secret"]
        h1 = PaddleSignature.calculate_hmac(secret, f"{ts}:{body}".encode("utf-8")).hexdigest()
        return secret, [["Paddle-Signature", f"ts={ts};h1={h1}"]]
    raise ValueError(f"no official signer for {provider}")


class PaddleRequest:
    """The request shape paddle_billing's Verifier reads: `headers.get` and a bytes `body`."""

    def __init__(self, headers, body):
        self.headers = {name: value for name, value in headers}
        self.headers["Paddle-Signature"] = header(headers, "Paddle-Signature")
        self.body = body.encode("utf-8")


def verify_with_library(provider, secret, headers, body, url):
    if provider == "discord":
        from nacl.exceptions import BadSignatureError
        from nacl.signing import VerifyKey

        signature = header(headers, "X-Signature-Ed25519") or ""
        ts = header(headers, "X-Signature-Timestamp") or ""
        try:
            VerifyKey(bytes.fromhex(secret)).verify(
                f"{ts}{body}".encode("utf-8"), bytes.fromhex(signature)
            )
            return True
        except (BadSignatureError, ValueError):
            return False
    if provider == "sendgrid":
        from sendgrid import EventWebhook

        return EventWebhook(secret).verify_signature(
            body,
            header(headers, "X-Twilio-Email-Event-Webhook-Signature"),
            header(headers, "X-Twilio-Email-Event-Webhook-Timestamp"),
        )
    if provider == "square":
        from square.utils.webhooks_helper import verify_signature

        return verify_signature(
            request_body=body,
            signature_header=header(headers, "x-square-hmacsha256-signature"),
            signature_key=secret,
            notification_url=url,
        )
    if provider == "paddle":
        from paddle_billing.Notifications import Secret, Verifier

        # The library checks the signed time against this machine's clock. Its default drift of
        # 5 seconds would make a verdict depend on how fast two interpreters start on a loaded
        # machine, so it is given our verifier's default window (300 s); an hour is still stale.
        return (
            Verifier(maximum_variance=300).verify(PaddleRequest(headers, body), Secret(secret))
            is True
        )
    raise ValueError(f"no official verifier for {provider}")


def handle(case):
    if case["op"] == "sign":
        secret, headers = sign(case)
        return {"provider": case["provider"], "secret": secret, "headers": headers, "body": case["body"]}
    if case["op"] == "verify":
        try:
            valid = verify_with_library(
                case["provider"], case["secret"], case["headers"], case["body"], case.get("url")
            )
            return {"provider": case["provider"], "valid": bool(valid)}
        except Exception as error:  # a library that throws on a bad request refuses it
            return {"provider": case["provider"], "valid": False, "error": f"{type(error).__name__}: {error}"}
    raise ValueError(f"unknown op {case['op']!r}")


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    print(json.dumps(handle(json.loads(line))), flush=True)
