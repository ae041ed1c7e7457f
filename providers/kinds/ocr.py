"""OCR models: a document in, its text (per page) out.

A family describes `ocr_request(document, mime_type=...)` and `parse_ocr(data)`.
"""

from __future__ import annotations

from typing import Any

from ..base import BaseAdapter
from ..http import Request
from ..results import OCRResult
from ..runner import Flow, run
from ..types import ModelType


class OCRModel(BaseAdapter):
    model_type = ModelType.OCR

    def ocr(self, document: bytes, *, mime_type: str = "application/pdf") -> OCRResult:
        return run(self.ocr_flow(document, mime_type=mime_type))

    def ocr_request(self, document: bytes, *, mime_type: str) -> Request:
        raise NotImplementedError

    def parse_ocr(self, data: Any) -> OCRResult:
        raise NotImplementedError

    def ocr_flow(self, document: bytes, *, mime_type: str) -> Flow[OCRResult]:
        response = yield from self.fetch(self.ocr_request(document, mime_type=mime_type))
        return self.parse_ocr(self.json_of(response))
