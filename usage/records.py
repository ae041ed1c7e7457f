"""The usage record: what one call used, in the shape it travels through the buffer."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from decimal import Decimal


@dataclass(frozen=True, slots=True)
class UsageRecord:
    tenant_id: str
    factory: str
    llm_name: str
    model_type: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    estimated: bool = False
    tenant_llm_id: int | None = None
    cost: str = "0"
    latency_ms: int = 0
    outcome: str = "ok"
    error_code: str = ""
    created_at: float = field(default_factory=time.time)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, raw: str | bytes) -> UsageRecord:
        return cls(**json.loads(raw))

    @property
    def cost_decimal(self) -> Decimal:
        return Decimal(self.cost)
