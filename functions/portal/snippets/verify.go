// go get github.com/standard-webhooks/standard-webhooks/libraries/go
package webhooks

import (
	"io"
	"net/http"
	"os"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
)

func Handle(w http.ResponseWriter, r *http.Request) {
	// The endpoint's signing secret (whsec_...), from the portal's "Reveal secret".
	wh, err := standardwebhooks.NewWebhook(os.Getenv("WEBHOOK_SECRET"))
	if err != nil {
		http.Error(w, "misconfigured", http.StatusInternalServerError)
		return
	}
	// The body exactly as received: the signature covers its bytes.
	body, err := io.ReadAll(r.Body)
	if err != nil || wh.Verify(body, r.Header) != nil {
		http.Error(w, "invalid signature", http.StatusBadRequest)
		return
	}
	// Verified: handle body (drop a repeated webhook-id), then answer 2xx quickly.
	w.WriteHeader(http.StatusNoContent)
}
