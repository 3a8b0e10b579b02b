"""Sign and verify Google OIDC tokens with Google's own library (google-auth), for the interop tests.

Reads one JSON object per line on stdin and writes one per line on stdout:

- {"private_key_pem", "kid", "claims"}: signs the claims as a Google service account would,
  with google.auth.crypt.RSASigner and google.auth.jwt.encode; answers {"token"}.
- {"token", "certs": {kid: PEM certificate or public key, or a JWK}, "audience",
  "service_account"?}: google-auth's verdict. google.oauth2.id_token.verify_oauth2_token fetches
  Google's certificates over HTTP, so its checks are made here offline in the same order:
  google.auth.jwt.decode (signature by the header's kid, iat and exp against the real clock with
  no skew, audience), then the issuer check verify_oauth2_token adds; with "service_account",
  also the email and email_verified checks an application makes on top. Answers
  {"valid": true, "claims"} or {"valid": false, "error"}.

Nothing here comes from this project's code.
"""

import json
import sys

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt
from google.auth import _helpers

# What google.oauth2.id_token.verify_oauth2_token accepts as the issuer.
GOOGLE_ISSUERS = ["accounts.google.com", "https://accounts.google.com"]


def sign(case):
    signer = crypt.RSASigner.from_string(case["private_key_pem"], key_id=case["kid"])
    return {"token": jwt.encode(signer, case["claims"]).decode("ascii")}


def pem(cert):
    """A PEM certificate or public key as given, or a JWK's RSA public key as PEM."""
    if isinstance(cert, str):
        return cert
    number = lambda name: int.from_bytes(_helpers.padded_urlsafe_b64decode(cert[name]), "big")
    key = rsa.RSAPublicNumbers(number("e"), number("n")).public_key()
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def verdict(case):
    certs = {kid: pem(cert) for kid, cert in case["certs"].items()}
    try:
        claims = jwt.decode(case["token"], certs=certs, audience=case["audience"])
        if claims.get("iss") not in GOOGLE_ISSUERS:
            raise ValueError("Wrong issuer")
        account = case.get("service_account")
        if account is not None:
            if claims.get("email") != account:
                raise ValueError("Wrong service account")
            if claims.get("email_verified") not in (True, "true"):
                raise ValueError("Email not verified")
    except Exception as error:  # every refusal, whatever google-auth raises
        return {"valid": False, "error": f"{type(error).__name__}: {error}"}
    return {"valid": True, "claims": claims}


for line in sys.stdin:
    line = line.strip()
    if not line:
        continue
    case = json.loads(line)
    print(json.dumps(verdict(case) if "token" in case else sign(case)), flush=True)
