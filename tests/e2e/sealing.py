"""Sealed tenant secrets as CONTRACT.md defines them, written with
python3-cryptography (an independent implementation of the format):

    enc:v1: + base64(nonce12 | ciphertext | tag16)   AES-256-GCM, no AAD
    enc:v2: + the same with AAD = place + NUL + field, where place is the
             hash key without "P:" ("tenant:acme", "tenant:acme:route:b").
"""
import base64
import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def aad(place, field):
    return place.encode() + b"\0" + field.encode()


def seal_v1(key, plaintext):
    nonce = os.urandom(12)
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    return "enc:v1:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, data, None)).decode()


def seal_v2(key, place, field, plaintext):
    nonce = os.urandom(12)
    data = plaintext.encode() if isinstance(plaintext, str) else plaintext
    return "enc:v2:" + base64.b64encode(nonce + AESGCM(key).encrypt(nonce, data, aad(place, field))).decode()


def open_sealed(key, value, place=None, field=None):
    """Opens v1 (no AAD) or v2 (needs place and field); raises on a bad tag."""
    if value.startswith("enc:v1:"):
        blob = base64.b64decode(value[7:])
        return AESGCM(key).decrypt(blob[:12], blob[12:], None).decode()
    assert value.startswith("enc:v2:"), value[:12]
    assert place and field, "an enc:v2: value opens only with its place and field"
    blob = base64.b64decode(value[7:])
    return AESGCM(key).decrypt(blob[:12], blob[12:], aad(place, field)).decode()
