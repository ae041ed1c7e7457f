"""A fresh install gets the catalog without any extra step."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db.models.signals import post_migrate
from django.dispatch import receiver

from .models import LLMFactory
from .services import CatalogError, catalog_load

logger = logging.getLogger(__name__)


@receiver(post_migrate, dispatch_uid="providers.load_catalog_on_first_migrate")
def load_catalog_on_first_migrate(sender, plan=None, using="default", **kwargs) -> None:
    # `flush` (used by transactional tests) also sends post_migrate, but without a plan:
    # only a real `migrate` seeds the catalog, and only into an empty table.
    if sender.name != "providers" or plan is None:
        return
    if LLMFactory.objects.using(using).exists() or using != "default":
        return
    try:
        summary = catalog_load(path=settings.LLM_FACTORIES_FILE)
    except CatalogError as exc:
        logger.error("catalog not loaded: %s", exc)
        return
    logger.info("catalog loaded: %s", summary.as_line())
