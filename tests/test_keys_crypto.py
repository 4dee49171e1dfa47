"""The key scheme: format, entropy, hashing and cheap rejection of malformed keys."""

from __future__ import annotations

import re

import pytest

from keys import crypto


def test_generated_keys_have_the_documented_format_and_at_least_160_bits_of_secret():
    plaintext, prefix, hashed = crypto.generate_key()
    assert re.fullmatch(r"mlk_[0-9a-f]{12}\.[A-Za-z0-9_-]{43}", plaintext)
    assert plaintext.startswith(f"mlk_{prefix}.")
    secret = plaintext.split(".", 1)[1]
    assert len(secret) * 6 >= 160  # base64url: 6 bits per character (256 bits here)
    assert secret not in hashed and len(hashed) == 64


def test_only_a_keyed_hash_of_the_secret_is_derived_and_it_verifies_in_constant_time():
    plaintext, _, hashed = crypto.generate_key()
    _, secret = crypto.parse_key(plaintext)
    assert crypto.verify_secret(secret, hashed)
    assert not crypto.verify_secret(secret[:-1] + ("A" if secret[-1] != "A" else "B"), hashed)


def test_two_generated_keys_never_share_prefix_or_secret():
    keys = {crypto.generate_key()[0] for _ in range(200)}
    assert len(keys) == 200
    assert len({k[4:16] for k in keys}) == 200


@pytest.mark.parametrize(
    "value",
    [
        "",
        "mlk_",
        "mlk_abc",
        "mlk_0123456789ab",
        "mlk_0123456789ab.",
        "mlk_0123456789ab.short",
        "mlk_0123456789AB." + "a" * 43,  # upper-case prefix
        "mlk_0123456789ab." + "a" * 42,  # truncated secret
        "mlk_0123456789ab." + "a" * 44,  # one character too many
        "mlk_0123456789ab." + "a" * 42 + "=",  # padding is not base64url without padding
        "MLK_0123456789ab." + "a" * 43,
        "Bearer mlk_0123456789ab." + "a" * 43,
        "mlk_0123456789ab:" + "a" * 43,
        "mlk_0123456789ab." + "a" * 42 + "\n",
        "x" * 10_000,
    ],
)
def test_malformed_keys_are_rejected_by_parse_without_lookup(value):
    with pytest.raises(crypto.MalformedKey):
        crypto.parse_key(value)
