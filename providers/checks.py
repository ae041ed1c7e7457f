"""System checks of the provider call settings: misconfiguration is reported at start-up."""

from __future__ import annotations

import os

from django.conf import settings
from django.core.checks import Error, Warning, register

from .netguard import NETWORK_NAMES, parse_networks

NETWORK_SETTINGS = (
    "LLM_HOSTED_ALLOWED_NETWORKS",
    "LLM_SELF_HOSTED_ALLOWED_NETWORKS",
    "ALERT_WEBHOOK_ALLOWED_NETWORKS",
)


@register()
def check_network_settings(app_configs, **kwargs):
    problems = []
    for name in NETWORK_SETTINGS:
        try:
            parse_networks(tuple(getattr(settings, name)))
        except ValueError as exc:
            problems.append(
                Error(
                    f"{name}: {exc}.",
                    hint="A comma-separated list of CIDRs (10.20.0.0/16, fd00::/8) or the words "
                    f"{' and '.join(NETWORK_NAMES)}.",
                    id="ragllm.E030",
                )
            )
    if "LLM_ALLOWED_NETWORKS" in os.environ:
        problems.append(
            Warning(
                "LLM_ALLOWED_NETWORKS is no longer read.",
                hint="It was renamed LLM_HOSTED_ALLOWED_NETWORKS (hosted factories); the networks "
                "of self-hosted factories are LLM_SELF_HOSTED_ALLOWED_NETWORKS.",
                id="ragllm.W030",
            )
        )
    return problems
