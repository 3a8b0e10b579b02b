// Maven: com.standardwebhooks:standardwebhooks
import com.standardwebhooks.Webhook;
import com.standardwebhooks.exceptions.EmptyWebhookSecretException;
import com.standardwebhooks.exceptions.WebhookVerificationException;
import java.net.http.HttpHeaders;

public final class Verify {
    /**
     * Whether the delivery is genuine. Pass the body exactly as received: the signature covers it.
     * The secret (whsec_...) is the endpoint's, from the portal's "Reveal secret".
     */
    public static boolean verify(String rawBody, HttpHeaders headers) {
        try {
            new Webhook(System.getenv("WEBHOOK_SECRET")).verify(rawBody, headers);
            return true; // handle it (drop a repeated webhook-id), then answer 2xx quickly
        } catch (WebhookVerificationException | EmptyWebhookSecretException e) {
            return false; // answer 400
        }
    }
}
