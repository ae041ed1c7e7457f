from django.contrib import admin
from django.db.models import Count

from .models import LLM, LLMFactory


@admin.register(LLMFactory)
class LLMFactoryAdmin(admin.ModelAdmin):
    list_display = ("name", "rank", "status", "tags", "url", "model_count", "updated_at")
    list_filter = ("status",)
    search_fields = ("name", "tags")
    ordering = ("-rank", "name")

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(_model_count=Count("llms"))

    @admin.display(description="models", ordering="_model_count")
    def model_count(self, obj: LLMFactory) -> int:
        return obj._model_count


@admin.register(LLM)
class LLMAdmin(admin.ModelAdmin):
    list_display = (
        "llm_name",
        "factory",
        "model_type",
        "types",
        "max_tokens",
        "is_tools",
        "status",
        "input_price",
        "output_price",
    )
    list_filter = ("model_type", "status", "is_tools", "factory")
    search_fields = ("llm_name", "factory__name", "tags")
    list_select_related = ("factory",)
    autocomplete_fields = ("factory",)

    @admin.display(description="all types")
    def types(self, obj: LLM) -> str:
        return ", ".join(obj.model_types or [])
