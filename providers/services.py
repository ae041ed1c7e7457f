"""Writes to the catalog: loading a RAGFlow-format `llm_factories.json`."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from django.db import transaction

from .models import LLM, LLMFactory, Status
from .signals import catalog_changed
from .types import normalize_model_type

logger = logging.getLogger(__name__)

DEFAULT_MAX_TOKENS = 8192


class CatalogError(Exception):
    """The catalog file cannot be loaded at all (missing, not JSON, wrong shape)."""


@dataclass
class CatalogLoadSummary:
    factories_in_file: int = 0
    models_in_file: int = 0
    factories_added: int = 0
    factories_updated: int = 0
    factories_retired: int = 0
    models_added: int = 0
    models_updated: int = 0
    models_retired: int = 0
    warnings: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            (
                self.factories_added,
                self.factories_updated,
                self.factories_retired,
                self.models_added,
                self.models_updated,
                self.models_retired,
            )
        )

    def as_line(self) -> str:
        return (
            f"{self.factories_in_file} factories / {self.models_in_file} models in file; "
            f"factories: {self.factories_added} added, {self.factories_updated} updated, "
            f"{self.factories_retired} retired; models: {self.models_added} added, "
            f"{self.models_updated} updated, {self.models_retired} retired"
            + (f"; {len(self.warnings)} warning(s)" if self.warnings else "")
        )


@dataclass
class _FactoryRow:
    name: str
    logo: str
    tags: str
    rank: int
    status: str
    url: str
    models: dict[str, dict[str, Any]]


def _as_int(value: Any, default: int) -> int:
    if value is None or value == "":
        return default
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _as_price(value: Any) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        return Decimal(str(value)).quantize(Decimal("0.000001"))
    except (InvalidOperation, ValueError):
        return None


def _as_status(value: Any) -> str:
    return Status.INVALID if str(value).strip() in {"0", "false", "False"} else Status.VALID


def _parse_model(factory: str, raw: dict[str, Any], warnings: list[str]) -> dict[str, Any] | None:
    name = str(raw.get("llm_name") or "").strip()
    if not name:
        warnings.append(f"{factory}: a model without llm_name was skipped")
        return None
    raw_types = raw.get("model_type")
    if isinstance(raw_types, str):
        raw_types = [raw_types]
    types: list[str] = []
    for raw_type in raw_types or []:
        try:
            model_type = normalize_model_type(raw_type).value
        except ValueError:
            warnings.append(f"{factory}: {name}: unknown model type {raw_type!r} ignored")
            continue
        if model_type not in types:
            types.append(model_type)
    if not types:
        warnings.append(f"{factory}: {name}: no known model type, skipped")
        return None
    return {
        "model_type": types[0],
        "model_types": types,
        "max_tokens": max(_as_int(raw.get("max_tokens"), DEFAULT_MAX_TOKENS), 0),
        "tags": str(raw.get("tags") or "")[:255],
        "is_tools": bool(raw.get("is_tools", False)),
        "status": _as_status(raw.get("status", "1")),
        "input_price": _as_price(raw.get("input_price")),
        "output_price": _as_price(raw.get("output_price")),
    }


def _parse_catalog(data: Any) -> tuple[list[_FactoryRow], list[str]]:
    if not isinstance(data, dict) or not isinstance(data.get("factory_llm_infos"), list):
        raise CatalogError('expected a JSON object with a "factory_llm_infos" list')
    warnings: list[str] = []
    rows: dict[str, _FactoryRow] = {}
    for raw in data["factory_llm_infos"]:
        name = str(raw.get("name") or "").strip()
        if not name:
            warnings.append("a factory without a name was skipped")
            continue
        if name in rows:
            warnings.append(f"factory {name} is listed twice; its lists were merged")
            row = rows[name]
        else:
            row = rows[name] = _FactoryRow(
                name=name,
                logo=str(raw.get("logo") or ""),
                tags=str(raw.get("tags") or "")[:255],
                rank=_as_int(raw.get("rank"), 0),
                status=_as_status(raw.get("status", "1")),
                url=str(raw.get("url") or "")[:512],
                models={},
            )
        for raw_model in raw.get("llm") or []:
            parsed = _parse_model(name, raw_model, warnings)
            if parsed is None:
                continue
            llm_name = str(raw_model["llm_name"]).strip()
            first = row.models.get(llm_name)
            if first is None:
                row.models[llm_name] = parsed
                continue
            # A model listed twice (RAGFlow's newer catalog has one): keep the first entry
            # and add the types the second one declares, so no capability is lost.
            merged = first["model_types"] + [
                t for t in parsed["model_types"] if t not in first["model_types"]
            ]
            first["model_types"] = merged
            warnings.append(
                f"{name}: model {llm_name} is listed twice; kept the first entry "
                f"with types {', '.join(merged)}"
            )
    return list(rows.values()), warnings


def _read_catalog(path: Path) -> Any:
    try:
        with path.open(encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError as exc:
        raise CatalogError(f"{path}: no such file") from exc
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{path}: not valid JSON ({exc})") from exc


_FACTORY_FIELDS = ("logo", "tags", "rank", "status", "url")
_MODEL_FIELDS = (
    "model_type",
    "model_types",
    "max_tokens",
    "tags",
    "is_tools",
    "status",
    "input_price",
    "output_price",
)


@transaction.atomic
def catalog_load(
    *,
    path: str | Path,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> CatalogLoadSummary:
    """Load a RAGFlow-format catalog file, idempotently.

    Adds new factories and models, updates changed ones, and marks the ones that vanished
    from the file invalid. Rows are never deleted: tenants may still reference them.
    """
    factory_rows, warnings = _parse_catalog(_read_catalog(Path(path)))
    summary = CatalogLoadSummary(
        factories_in_file=len(factory_rows),
        models_in_file=sum(len(row.models) for row in factory_rows),
        warnings=warnings,
    )
    existing = {factory.name: factory for factory in LLMFactory.objects.select_for_update()}
    existing_models: dict[tuple[int, str], LLM] = {
        (llm.factory_id, llm.llm_name): llm for llm in LLM.objects.select_for_update()
    }
    iterate = progress or (lambda items: items)

    new_models: list[LLM] = []
    changed_models: list[LLM] = []
    seen_models: set[tuple[int, str]] = set()
    for row in iterate(factory_rows):
        factory = existing.get(row.name)
        values = {name: getattr(row, name) for name in _FACTORY_FIELDS}
        if factory is None:
            factory = LLMFactory.objects.create(name=row.name, **values)
            summary.factories_added += 1
        elif any(getattr(factory, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(factory, key, value)
            factory.save()
            summary.factories_updated += 1
        for llm_name, model_values in row.models.items():
            key = (factory.pk, llm_name)
            seen_models.add(key)
            llm = existing_models.get(key)
            if llm is None:
                new_models.append(LLM(factory=factory, llm_name=llm_name, **model_values))
            elif any(getattr(llm, name) != model_values[name] for name in _MODEL_FIELDS):
                for name in _MODEL_FIELDS:
                    setattr(llm, name, model_values[name])
                changed_models.append(llm)

    LLM.objects.bulk_create(new_models, batch_size=500)
    LLM.objects.bulk_update(changed_models, _MODEL_FIELDS, batch_size=500)
    summary.models_added = len(new_models)
    summary.models_updated = len(changed_models)

    in_file = {row.name for row in factory_rows}
    summary.factories_retired = (
        LLMFactory.objects.exclude(name__in=in_file)
        .filter(status=Status.VALID)
        .update(status=Status.INVALID)
    )
    vanished = [
        llm.pk
        for key, llm in existing_models.items()
        if key not in seen_models and llm.status == Status.VALID
    ]
    summary.models_retired = LLM.objects.filter(pk__in=vanished).update(status=Status.INVALID)
    for warning in warnings:
        logger.warning("catalog %s: %s", path, warning)
    if summary.changed:
        transaction.on_commit(lambda: catalog_changed.send(sender=LLMFactory))
    return summary
