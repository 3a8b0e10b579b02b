//! Ingress: `POST /webhooks/{tenant}/{provider}` behind API Gateway. Arrives with the ingress issue.

fn main() {}
