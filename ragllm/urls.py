from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from tenants.urls import key_patterns, llm_patterns, tenant_patterns

urlpatterns = [
    path("admin/", admin.site.urls),
    path("", include("tenants.ragflow")),  # RAGFlow's own paths: /v1/llm/..., /v1/user/...
    path("api/v1/llm/", include(llm_patterns)),
    path("api/v1/tenant/", include(tenant_patterns)),
    path("api/v1/", include("usage.urls")),
    path("api/v1/", include(key_patterns)),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="swagger-ui"),
]
