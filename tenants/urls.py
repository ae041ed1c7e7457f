from django.urls import path

from . import api, tenant_api, token_api

llm_patterns = [
    path("factories", api.FactoriesView.as_view(), name="llm-factories"),
    path("set_api_key", api.SetApiKeyView.as_view(), name="llm-set-api-key"),
    path("add_llm", api.AddLLMView.as_view(), name="llm-add-llm"),
    path("delete_llm", api.DeleteLLMView.as_view(), name="llm-delete-llm"),
    path("enable_llm", api.EnableLLMView.as_view(), name="llm-enable-llm"),
    path("delete_factory", api.DeleteFactoryView.as_view(), name="llm-delete-factory"),
    path("my_llms", api.MyLLMsView.as_view(), name="llm-my-llms"),
    path("list", api.ListView.as_view(), name="llm-list"),
    path("tasks/<str:task_id>", api.TaskView.as_view(), name="llm-task"),
]

tenant_patterns = [
    path("default_models", tenant_api.DefaultModelsView.as_view(), name="tenant-default-models"),
    path("tenant_info", tenant_api.TenantInfoView.as_view(), name="tenant-info"),
    path("set_tenant_info", tenant_api.SetTenantInfoView.as_view(), name="tenant-set-info"),
    path("limits", tenant_api.TenantLimitsView.as_view(), name="tenant-limits"),
]

# Included under "api/v1/": application keys and the audit log.
key_patterns = [
    path("tokens", token_api.TokensView.as_view(), name="tokens"),
    path("tokens/<str:token_id>", token_api.TokenView.as_view(), name="token"),
    path("audit", token_api.AuditView.as_view(), name="audit"),
]
