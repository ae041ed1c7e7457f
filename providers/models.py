"""The catalog: which LLM factories exist and which models each offers. Knows no tenants."""

from __future__ import annotations

from django.core.validators import MaxValueValidator
from django.db import models

from .types import ModelType


class Status(models.TextChoices):
    # RAGFlow keeps status as the strings "1" and "0"; we keep its values for compatibility.
    VALID = "1", "Valid"
    INVALID = "0", "Invalid"


class CatalogRow(models.Model):
    """What every catalog row has: RAGFlow's status, and when it was loaded and changed."""

    status = models.CharField(max_length=1, choices=Status.choices, default=Status.VALID)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        abstract = True


class LLMFactory(CatalogRow):
    name = models.CharField(max_length=128, unique=True)
    logo = models.TextField(blank=True, default="")
    tags = models.CharField(
        max_length=255, blank=True, default="", help_text="e.g. LLM,TEXT EMBEDDING,TTS"
    )
    rank = models.IntegerField(default=0, help_text="Higher ranks are listed first.")
    url = models.CharField(
        "URL", max_length=512, blank=True, default="", help_text="Default API base URL, if any."
    )

    class Meta:
        ordering = ["-rank", "name"]
        indexes = [
            # GET /llm/factories: valid factories in the order above.
            models.Index(fields=["status", "-rank"], name="llmfactory_status_rank_idx"),
        ]
        verbose_name = "LLM factory"
        verbose_name_plural = "LLM factories"

    def __str__(self) -> str:
        return self.name


# The largest token count an integer column holds on every database we run on (PostgreSQL's
# integer is 32 bits): max_tokens above it is refused as input, never sent to the database.
MAX_TOKENS_LIMIT = 2**31 - 1


def max_tokens_field(**kwargs) -> models.IntegerField:
    return models.IntegerField(validators=[MaxValueValidator(MAX_TOKENS_LIMIT)], **kwargs)


def _price(help_text: str) -> models.DecimalField:
    # Six decimals: the cheapest models cost fractions of a cent per million tokens.
    return models.DecimalField(
        max_digits=12, decimal_places=6, null=True, blank=True, help_text=help_text
    )


class LLM(CatalogRow):
    factory = models.ForeignKey(LLMFactory, on_delete=models.CASCADE, related_name="llms")
    llm_name = models.CharField("LLM name", max_length=128)
    # The first type the catalog gives; `model_types` holds all of them (newer RAGFlow
    # catalogs give a list such as ["chat", "image2text"]).
    model_type = models.CharField(max_length=32, choices=ModelType.choices)
    model_types = models.JSONField(default=list)
    max_tokens = max_tokens_field(default=8192)
    tags = models.CharField(max_length=255, blank=True, default="")
    is_tools = models.BooleanField("supports tools", default=False)
    input_price = _price("USD per million input tokens.")
    output_price = _price("USD per million output tokens.")

    class Meta:
        ordering = ["factory__name", "llm_name"]
        verbose_name = "LLM"
        verbose_name_plural = "LLMs"
        constraints = [
            models.UniqueConstraint(fields=["factory", "llm_name"], name="llm_unique_factory_name"),
            models.CheckConstraint(
                condition=models.Q(max_tokens__gte=0), name="llm_max_tokens_non_negative"
            ),
        ]
        indexes = [
            # GET /llm/list?model_type=...: valid models of one type.
            models.Index(fields=["model_type", "status"], name="llm_type_status_idx"),
            # Resolving a bare model name across factories.
            models.Index(fields=["llm_name"], name="llm_name_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.llm_name}@{self.factory.name}"

    def serves(self, model_type: str) -> bool:
        return model_type == self.model_type or model_type in (self.model_types or [])
