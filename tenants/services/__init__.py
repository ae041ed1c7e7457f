"""Writes for tenants, one module per subject.

- `tenants`: a user's tenant, its default model configurations and default models.
- `tokens`: our own API tokens and application keys (issued once, stored as a prefix and a
  hash; scopes, allowed models, expiry, limits), changed and revoked.
- `limits`: a tenant's quota, budget, RPM/TPM and alert webhook (URL checked, secret kept).
- `members`: a tenant's members and roles.
- `audit`: the audit log, written by the services above and below with each change.
- `credential_input`: the credential and base URL a caller gives, checked and shaped for storage.
- `key_requests`: set_api_key and add_llm: the input checked, then a validation requested.
- `key_validation`: live test calls that prove a key before it is stored (run by Celery tasks):
  requests superseding older ones, runs, deadlines, re-tests of stored configurations.
- `configs`: a tenant's model configurations (TenantLLM): edit, enable, delete, count usage.
"""
