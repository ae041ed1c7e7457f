from django.urls import path

from . import api

# Included under "api/v1/": /api/v1/usage and /api/v1/usage/quota, no trailing slash.
urlpatterns = [
    path("usage", api.UsageView.as_view(), name="usage"),
    path("usage/quota", api.QuotaView.as_view(), name="usage-quota"),
]
