# gem install standardwebhooks
require 'standardwebhooks'

# The endpoint's signing secret (whsec_...), from the portal's "Reveal secret".
webhook = StandardWebhooks::Webhook.new(ENV.fetch('WEBHOOK_SECRET'))

post '/webhooks' do # Sinatra; in Rails, use request.raw_post and request.headers
  request.body.rewind
  raw_body = request.body.read # exactly as received: the signature covers its bytes
  payload = webhook.verify(raw_body, {
    'webhook-id' => request.env.fetch('HTTP_WEBHOOK_ID'),
    'webhook-timestamp' => request.env.fetch('HTTP_WEBHOOK_TIMESTAMP'),
    'webhook-signature' => request.env.fetch('HTTP_WEBHOOK_SIGNATURE'),
  })
  # Verified: handle payload (drop a repeated webhook-id), then answer 2xx quickly.
  status 204
rescue StandardWebhooks::WebhookVerificationError
  halt 400, 'invalid signature'
end
