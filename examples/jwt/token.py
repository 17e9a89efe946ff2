#!/usr/bin/env python3
"""Prints a JWT for the jwt example: HS256, signed with the demo key of jwt_authn.yaml, with the
issuer and audience Envoy expects.

    python3 examples/jwt/token.py ada                        # valid for an hour
    python3 examples/jwt/token.py ada --ttl -600             # expired ten minutes ago
    python3 examples/jwt/token.py ada --secret another-key   # signed with a key Envoy does not know
"""

import argparse
import base64
import hashlib
import hmac
import json
import time

# The shared secret whose base64url form is the `k` of the demo key in jwt_authn.yaml. A demo
# key, published here: never use it, or HS256 with a shared secret, for real tokens.
DEMO_SECRET = "semaphore-jwt-example-demo-key-do-not-use-in-production"
ISSUER = "https://auth.example.com"
AUDIENCE = "semaphore-jwt-example"


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def compact_json(value: dict) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description="Print a JWT for the jwt example.")
    parser.add_argument("subject", help="the token's `sub` claim: the profile GET /me answers")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires (default 3600)")
    parser.add_argument("--secret", default=DEMO_SECRET, help="sign with this secret instead of the demo key's")
    args = parser.parse_args()

    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT", "kid": "demo"}
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": args.subject, "iat": now, "exp": now + args.ttl}
    signing_input = f"{base64url(compact_json(header))}.{base64url(compact_json(claims))}"
    signature = hmac.new(args.secret.encode("utf-8"), signing_input.encode("ascii"), hashlib.sha256).digest()
    print(f"{signing_input}.{base64url(signature)}")


if __name__ == "__main__":
    main()
