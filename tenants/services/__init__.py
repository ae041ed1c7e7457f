"""Writes for tenants, one module per subject.

- `tenants`: a user's tenant, its default model configurations and default models.
- `tokens`: our own API tokens (issued once, stored as a prefix and a hash).
- `credential_input`: the credential and base URL a caller gives, checked and shaped for storage.
- `key_validation`: live test calls that prove a key before it is stored (run by Celery tasks).
- `configs`: a tenant's model configurations (TenantLLM): enable, delete, save, count usage.
"""
