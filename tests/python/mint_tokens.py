"""Mints JWTs with PyJWT and `cryptography`, an implementation independent of
ferrows, for tests/auth_tokens.rs.

    python3 mint_tokens.py OUT_DIR NOW

Generates RSA-2048, EC P-256, EC P-384 and Ed25519 keys, writes their public
halves as PEM under OUT_DIR (the private halves never leave this process) and
prints one JSON object per line:

    {"name", "alg", "token", "pem_path" and/or "secret", "audience"?, "issuer"?,
     "expect": "ok" or the verifier's error as Rust's Debug writes it,
     "sub"?, "allows"?, "denies"?}

NOW is the Unix time the verifier will be given.
"""

import base64
import hashlib
import hmac
import json
import os
import sys

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

out_dir, now = sys.argv[1], int(sys.argv[2])
SECRET = "a-shared-secret-of-sixty-four-bytes-for-hs512-0123456789abcdefgh"
assert len(SECRET) == 64
AUDIENCE, ISSUER = "ferrows", "https://id.example"


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def public_pem(key, name, fmt=serialization.PublicFormat.SubjectPublicKeyInfo):
    path = os.path.join(out_dir, name)
    with open(path, "wb") as f:
        f.write(key.public_key().public_bytes(serialization.Encoding.PEM, fmt))
    return path


keys = {
    "rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
    "p256": ec.generate_private_key(ec.SECP256R1()),
    "p384": ec.generate_private_key(ec.SECP384R1()),
    "ed25519": ed25519.Ed25519PrivateKey.generate(),
}
pems = {name: public_pem(key, name + ".pem") for name, key in keys.items()}
pems["rsa_pkcs1"] = public_pem(keys["rsa"], "rsa_pkcs1.pem", serialization.PublicFormat.PKCS1)

ASYMMETRIC = [
    ("RS256", "rsa"), ("RS384", "rsa"), ("RS512", "rsa"),
    ("PS256", "rsa"), ("PS384", "rsa"), ("PS512", "rsa"),
    ("ES256", "p256"), ("ES384", "p384"), ("EdDSA", "ed25519"),
]


def claims(**extra):
    base = {"sub": "user-42", "exp": now + 600, "iat": now}
    base.update(extra)
    return {k: v for k, v in base.items() if v is not None}


def emit(name, alg, token, expect, pem=None, secret=None, **extra):
    case = {"name": name, "alg": alg, "token": token, "expect": expect}
    if pem is not None:
        case["pem_path"] = pems[pem]
    if secret is not None:
        case["secret"] = secret
    case.update(extra)
    print(json.dumps(case))


def replace_part(token, index, part):
    parts = token.split(".")
    parts[index] = part
    return ".".join(parts)


def flip_signature(token):
    signature = bytearray(base64.urlsafe_b64decode(token.split(".")[2] + "=="))
    signature[len(signature) // 2] ^= 0x01
    return replace_part(token, 2, b64(bytes(signature)))


def hs256_by_hand(secret, payload):
    """HS256 keyed with any bytes: PyJWT refuses a PEM as an HMAC secret."""
    signed = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()) + "." + b64(json.dumps(payload).encode())
    return signed + "." + b64(hmac.new(secret, signed.encode(), hashlib.sha256).digest())


# Accepted: every algorithm, with grants.
grants = {"topics": ["chat:*", "news"], "publish": ["chat:lobby"]}
ok_extra = {"sub": "user-42", "allows": ["chat:x", "news"], "denies": ["newsroom", "chat"]}
for alg in ["HS256", "HS384", "HS512"]:
    emit(f"{alg} accepted", alg, jwt.encode(claims(**grants), SECRET, algorithm=alg), "ok", secret=SECRET, **ok_extra)
for alg, key in ASYMMETRIC:
    token = jwt.encode(claims(**grants), keys[key], algorithm=alg)
    emit(f"{alg} accepted", alg, token, "ok", pem=key, **ok_extra)
    # Refusals that depend on the signature.
    forged = replace_part(token, 1, b64(json.dumps(claims(sub="root", topics=["*"])).encode()))
    emit(f"{alg} tampered payload", alg, forged, "Signature", pem=key)
    emit(f"{alg} tampered signature", alg, flip_signature(token), "Signature", pem=key)
    emit(f"{alg} expired", alg, jwt.encode(claims(exp=now - 3600), keys[key], algorithm=alg), "Expired", pem=key)
emit("RS256 with a PKCS#1 PEM", "RS256", jwt.encode(claims(), keys["rsa"], algorithm="RS256"), "ok", pem="rsa_pkcs1", sub="user-42")

# Time, audience, issuer.
for alg, key, secret in [("HS256", None, SECRET), ("ES256", "p256", None)]:
    signer = SECRET if secret else keys[key]
    mint = lambda **c: jwt.encode(claims(**c), signer, algorithm=alg)  # noqa: E731
    scoped = {"audience": AUDIENCE, "issuer": ISSUER}
    emit(f"{alg} nbf ahead", alg, mint(nbf=now + 3600), "NotYetValid", pem=key, secret=secret)
    emit(f"{alg} fractional exp", alg, mint(exp=now + 0.5), "ok", pem=key, secret=secret, sub="user-42")
    emit(f"{alg} aud and iss", alg, mint(aud=AUDIENCE, iss=ISSUER), "ok", pem=key, secret=secret, sub="user-42", **scoped)
    emit(f"{alg} aud in a list", alg, mint(aud=["x", AUDIENCE], iss=ISSUER), "ok", pem=key, secret=secret, **scoped)
    emit(f"{alg} wrong aud", alg, mint(aud="other", iss=ISSUER), "Audience", pem=key, secret=secret, **scoped)
    emit(f"{alg} no aud", alg, mint(iss=ISSUER), "Audience", pem=key, secret=secret, **scoped)
    emit(f"{alg} wrong iss", alg, mint(aud=AUDIENCE, iss="https://evil.example"), "Issuer", pem=key, secret=secret, **scoped)
    emit(f"{alg} no sub", alg, mint(sub=None), 'MissingClaim("sub")', pem=key, secret=secret)
    emit(f"{alg} no exp", alg, mint(exp=None), 'MissingClaim("exp")', pem=key, secret=secret)

# Wrong secret; alg none; an alg of another key type.
emit("HS256 other secret", "HS256", jwt.encode(claims(), SECRET[::-1], algorithm="HS256"), "Signature", secret=SECRET)
unsigned = jwt.encode(claims(), None, algorithm="none")
emit("alg none with a secret", "none", unsigned, "Algorithm", secret=SECRET)
emit("alg none with a public key", "none", unsigned, "Algorithm", pem="rsa")
emit("RS256 against an EC key", "RS256", jwt.encode(claims(), keys["rsa"], algorithm="RS256"), "Algorithm", pem="p256")
emit("ES256 against a P-384 key", "ES256", jwt.encode(claims(), keys["p256"], algorithm="ES256"), "Algorithm", pem="p384")
emit("EdDSA against an RSA key", "EdDSA", jwt.encode(claims(), keys["ed25519"], algorithm="EdDSA"), "Algorithm", pem="rsa")

# Algorithm confusion: HS256 keyed with the public key's own PEM text.
for key in ["rsa", "rsa_pkcs1", "p256", "ed25519"]:
    with open(pems[key], "rb") as f:
        pem_text = f.read()
    token = hs256_by_hand(pem_text, claims())
    emit(f"HS256 keyed with the {key} PEM", "HS256", token, "Algorithm", pem=key)
    emit(f"HS256 keyed with the {key} PEM, beside a secret", "HS256", token, "Signature", pem=key, secret=SECRET)
