<?php
// composer require standard-webhooks/standard-webhooks
require __DIR__ . '/vendor/autoload.php';

// The endpoint's signing secret (whsec_...), from the portal's "Reveal secret".
$webhook = new \StandardWebhooks\Webhook(getenv('WEBHOOK_SECRET'));

$rawBody = file_get_contents('php://input'); // exactly as received: the signature covers its bytes
$headers = [
    'webhook-id' => $_SERVER['HTTP_WEBHOOK_ID'] ?? '',
    'webhook-timestamp' => $_SERVER['HTTP_WEBHOOK_TIMESTAMP'] ?? '',
    'webhook-signature' => $_SERVER['HTTP_WEBHOOK_SIGNATURE'] ?? '',
];
try {
    $payload = $webhook->verify($rawBody, $headers);
} catch (\Exception $e) {
    http_response_code(400);
    exit('invalid signature');
}
// Verified: handle $payload (drop a repeated webhook-id), then answer 2xx quickly.
http_response_code(204);
