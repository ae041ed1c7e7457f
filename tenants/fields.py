"""Encrypted storage for provider credentials.

django-cryptography's `encrypt()` derives its AES key from CRYPTOGRAPHY_KEY (we set it to
CREDENTIALS_ENCRYPTION_KEY) but signs every token with an HMAC keyed by SECRET_KEY, so rotating
SECRET_KEY would make every stored provider key unreadable. Our fields sign with a key derived
from CREDENTIALS_ENCRYPTION_KEY instead: SECRET_KEY plays no part in stored credentials.

A value that the current key cannot decrypt (the key was changed or lost) does not break the
loading of its row: lists, counts and masked displays keep working, the ciphertext is kept as it
is on save, and reading the credential raises `CredentialsUnreadable`, which names the setting
and the row, instead of a signing module's BadSignature.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import pickle

from django.conf import settings
from django.db import models
from django.db.models.query_utils import DeferredAttribute
from django_cryptography.core.signing import BadSignature, FernetSigner
from django_cryptography.fields import EncryptedMixin, encrypt
from django_cryptography.utils.crypto import FernetBytes, InvalidToken

from ragllm.errors import ServerMisconfigured

logger = logging.getLogger(__name__)


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


class CredentialsUnreadable(ServerMisconfigured):
    """A stored credential that the current CREDENTIALS_ENCRYPTION_KEY cannot decrypt."""

    def __init__(self, row: str) -> None:
        super().__init__(
            f"The stored API key of {row} cannot be decrypted with the current "
            "CREDENTIALS_ENCRYPTION_KEY: it was saved under another key. Restore the "
            "CREDENTIALS_ENCRYPTION_KEY it was saved with, or set the API key again."
        )
        self.row = row


class Unreadable:
    """What an undecryptable column loads as: the ciphertext, kept to be written back as is."""

    __slots__ = ("ciphertext",)

    def __init__(self, ciphertext: bytes) -> None:
        self.ciphertext = ciphertext

    def __repr__(self) -> str:
        return "<unreadable credential>"


def describe_row(instance: models.Model) -> str:
    """`model config 12 (tenant ..., factory 3, gpt-4o)`, from loaded columns only."""
    values = instance.__dict__
    parts = [
        f"{label} {values[attr]}"
        for attr, label in (("tenant_id", "tenant"), ("factory_id", "factory"))
        if values.get(attr) is not None
    ]
    if values.get("llm_name"):
        parts.append(str(values["llm_name"]))
    detail = f" ({', '.join(parts)})" if parts else ""
    return f"{instance._meta.verbose_name} {instance.pk}{detail}"


class CredentialAttribute(DeferredAttribute):
    """Raises CredentialsUnreadable when an undecryptable value is read."""

    def __get__(self, instance, cls=None):
        value = super().__get__(instance, cls)
        if isinstance(value, Unreadable):
            row = describe_row(instance)
            logger.error("credentials of %s cannot be decrypted (CREDENTIALS_ENCRYPTION_KEY)", row)
            raise CredentialsUnreadable(row)
        return value

    def __set__(self, instance, value) -> None:
        instance.__dict__[self.field.attname] = value


def _unreadable_aware(field_class: type[models.Field]) -> type[models.Field]:
    class CredentialField(field_class):  # type: ignore[misc, valid-type]
        descriptor_class = CredentialAttribute

        def _load(self, value: bytes):
            try:
                return super()._load(value)
            except (BadSignature, InvalidToken, pickle.UnpicklingError):
                return Unreadable(value)

        def pre_save(self, model_instance, add):
            # Read past the descriptor: saving a row must not need its credential decrypted.
            if self.attname in model_instance.__dict__:
                return model_instance.__dict__[self.attname]
            return super().pre_save(model_instance, add)

        def get_db_prep_value(self, value, connection, prepared=False):
            if isinstance(value, Unreadable):
                return connection.Database.Binary(value.ciphertext)
            return super().get_db_prep_value(value, connection, prepared)

        def value_from_object(self, obj):
            # Forms and serialisers get nothing rather than an exception for such a row.
            if isinstance(obj.__dict__.get(self.attname), Unreadable):
                return None
            return super().value_from_object(obj)

        # Migrations see exactly what django-cryptography's encrypt() gives: no migration.
        def deconstruct(self):
            name, _path, args, kwargs = super(EncryptedMixin, self).deconstruct()
            return (
                name,
                "django_cryptography.fields.encrypt",
                [self.base_class(*args, **kwargs)],
                {},
            )

        def clone(self):
            _name, _path, args, _kwargs = self.deconstruct()
            return credential_field(args[0])

    CredentialField.__name__ = CredentialField.__qualname__ = field_class.__name__
    return CredentialField


_CLASSES: dict[type, type] = {}


def credential_field(base: models.Field) -> models.Field:
    """`base` encrypted with CREDENTIALS_ENCRYPTION_KEY, unreadable values handled (above)."""
    field = encrypt(base)
    encrypted_class = type(field)
    if encrypted_class not in _CLASSES:
        _CLASSES[encrypted_class] = _unreadable_aware(encrypted_class)
    field.__class__ = _CLASSES[encrypted_class]
    field._fernet = CredentialsFernet()
    return field


def encrypted_text_field(**kwargs) -> models.TextField:
    return credential_field(models.TextField(**kwargs))
