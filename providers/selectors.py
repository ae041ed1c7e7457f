"""Reads of the catalog."""

from __future__ import annotations

from .models import LLM, LLMFactory, Status
from .registry import get_adapter_class
from .types import ModelType, types_from_tags


def catalog_pairs() -> dict[str, set[str]]:
    """Every (factory, model type) pair our catalog declares: its models' types, and for a
    factory with no models (users add them), the types its tags declare."""
    pairs: dict[str, set[str]] = {}
    for factory in LLMFactory.objects.filter(status=Status.VALID):
        pairs[factory.name] = {t.value for t in types_from_tags(factory.tags)}
    for factory_name, model_types in LLM.objects.filter(
        status=Status.VALID, factory__status=Status.VALID
    ).values_list("factory__name", "model_types"):
        pairs.setdefault(factory_name, set()).update(model_types or [])
    return pairs


def coverage_table() -> str:
    """The README's coverage table: catalog pairs, each with the adapter class serving it."""
    types = list(ModelType.values)
    lines = [
        "| Factory | " + " | ".join(types) + " |",
        "|---|" + "---|" * len(types),
    ]
    for factory, declared in sorted(catalog_pairs().items()):
        cells = []
        for model_type in types:
            if model_type not in declared:
                cells.append("")
                continue
            try:
                cls = get_adapter_class(model_type, factory)
                cells.append(f"`{cls.__module__.rsplit('.', 1)[-1]}`")
            except Exception:
                cells.append("**missing**")
        lines.append(f"| {factory} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
