# pip install standardwebhooks
import os

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

# The endpoint's signing secret (whsec_...), from the portal's "Reveal secret".
webhook = Webhook(os.environ["WEBHOOK_SECRET"])


def verify(raw_body: bytes, headers: dict) -> dict:
    """The delivery's payload; raises WebhookVerificationError if it is forged, altered or stale.

    Pass the body exactly as received, before any JSON parsing: the signature covers its bytes.
    Answer 2xx quickly, and use the `webhook-id` header to drop a delivery you already handled.
    """
    return webhook.verify(raw_body, headers)


__all__ = ["verify", "WebhookVerificationError"]
