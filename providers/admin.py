from django.contrib import admin
from django.db.models import Count

from ragllm.admin import EMPTY, number, usd

from .models import LLM, LLMFactory


class CatalogAdmin(admin.ModelAdmin):
    """Catalog rows are edited, never deleted: as the loader does, a factory or model that is
    gone is marked invalid (status), which keeps tenants' configurations, their validations
    and usage reports pointing at something (a deleted factory would take its validations with
    it, and the next load would bring the row back anyway)."""

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(LLMFactory)
class LLMFactoryAdmin(CatalogAdmin):
    list_display = ("name", "rank", "status", "model_types", "models", "url")
    list_filter = ("status",)
    search_fields = ("name", "tags")
    ordering = ("-rank", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_model_count=Count("llms"))

    @admin.display(description="models", ordering="_model_count")
    def models(self, obj: LLMFactory) -> str:
        return number(obj._model_count)

    @admin.display(description="tags", ordering="tags")
    def model_types(self, obj: LLMFactory) -> str:
        # "LLM,TEXT EMBEDDING,TTS" with spaces, so that the cell wraps.
        return ", ".join(tag.strip() for tag in obj.tags.split(",") if tag.strip()) or EMPTY


@admin.register(LLM)
class LLMAdmin(CatalogAdmin):
    list_display = ("llm_name", "factory", "types", "context", "is_tools", "status", "price")
    list_filter = ("model_type", "status", "is_tools", "factory")
    search_fields = ("llm_name", "factory__name", "tags")
    list_select_related = ("factory",)
    autocomplete_fields = ("factory",)

    @admin.display(description="types", ordering="model_type")
    def types(self, obj: LLM) -> str:
        return ", ".join(obj.model_types or [obj.model_type])

    @admin.display(description="max tokens", ordering="max_tokens")
    def context(self, obj: LLM) -> str:
        return number(obj.max_tokens)

    @admin.display(description="price in / out (1M tokens)", ordering="input_price")
    def price(self, obj: LLM) -> str:
        if obj.input_price is None and obj.output_price is None:
            return EMPTY
        return f"{usd(obj.input_price)} / {usd(obj.output_price)}"
