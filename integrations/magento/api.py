"""The credentials a Magento / Adobe Commerce connection holds: the store's base URL and
integration token (GraphQL ``cart`` reads, see ``adapter.MagentoGraphQL``) and the public key
that verifies signed webhooks."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..platform import Credential


def rsa_public_key_pem(text: str) -> str:
    """``text`` if it is a PEM RSA public key (Adobe Commerce signs with RSA), else
    ValueError."""
    try:
        key = serialization.load_pem_public_key(text.encode())
    except ValueError as exc:
        raise ValueError(f"not a readable PEM public key: {exc}") from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("Adobe Commerce signs with RSA: give an RSA public key")
    return text


CREDENTIALS = (
    Credential("base_url", "Magento store base URL (GraphQL at <base-url>/graphql).", kind="url"),
    Credential("integration_token", "Magento integration access token."),
    Credential(
        "webhook_public_key_pem",
        "Magento: PEM public key that verifies webhook signatures.",
        check=rsa_public_key_pem,
        from_file=True,
    ),
)
