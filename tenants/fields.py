"""Encrypted storage for provider credentials.

django-cryptography's `encrypt()` derives its AES key from CRYPTOGRAPHY_KEY (we set it to
CREDENTIALS_ENCRYPTION_KEY) but signs every token with an HMAC keyed by SECRET_KEY, so rotating
SECRET_KEY would make every stored provider key unreadable. Our fields sign with a key derived
from CREDENTIALS_ENCRYPTION_KEY instead: SECRET_KEY plays no part in stored credentials.
"""

from __future__ import annotations

import hashlib
import hmac

from django.conf import settings
from django.db import models
from django_cryptography.core.signing import FernetSigner
from django_cryptography.fields import encrypt
from django_cryptography.utils.crypto import FernetBytes


def _signing_key() -> bytes:
    return hmac.new(
        settings.CREDENTIALS_ENCRYPTION_KEY.encode(), b"ragllm credentials signing", hashlib.sha256
    ).digest()


class CredentialsFernet(FernetBytes):
    """FernetBytes whose keys are read from settings at use, never from SECRET_KEY."""

    def __init__(self) -> None:  # keys are properties, not captured at import time
        pass

    @property
    def key(self) -> bytes:  # type: ignore[override]
        # django-cryptography's AppConf derives this from CRYPTOGRAPHY_KEY with PBKDF2.
        return settings.CRYPTOGRAPHY_KEY

    @property
    def signer(self) -> FernetSigner:  # type: ignore[override]
        return FernetSigner(_signing_key())


def encrypted_text_field(**kwargs) -> models.TextField:
    field = encrypt(models.TextField(**kwargs))
    field._fernet = CredentialsFernet()
    return field
