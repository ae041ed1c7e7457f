"""Mistral OCR.

- POST {base}/ocr with `Authorization: Bearer <key>` and {"model", "document"}: a PDF (or
  another document) as {"type": "document_url", "document_url": "data:<mime>;base64,..."}, an
  image as {"type": "image_url", "image_url": "data:image/...;base64,..."} -> {"pages":
  [{"index", "markdown", ...}], "usage_info": {"pages_processed", "doc_size_bytes"}}.
- The text is the pages' markdown in page order, joined by blank lines.
- Mistral bills OCR by page, not by token: usage is the text counted with tiktoken, estimated.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any

from ..http import Request
from ..kinds.ocr import OCRModel
from ..results import OCRResult, Usage


class MistralOCR(OCRModel, factories=("Mistral",)):
    default_base_url = "https://api.mistral.ai/v1"

    def document(self, document: bytes, mime_type: str) -> dict[str, str]:
        url = f"data:{mime_type};base64,{base64.b64encode(document).decode('ascii')}"
        if mime_type.startswith("image/"):
            return {"type": "image_url", "image_url": url}
        return {"type": "document_url", "document_url": url}

    def ocr_request(self, document: bytes, *, mime_type: str) -> Request:
        body = {"model": self.wire_model_name, "document": self.document(document, mime_type)}
        return self.post("ocr", json=body)

    def parse_ocr(self, data: Any) -> OCRResult:
        pages = self.parse_pages(data)
        text = "\n\n".join(pages)
        return OCRResult(
            text, Usage(completion_tokens=self.count_tokens(text), estimated=True), pages
        )

    def parse_pages(self, data: Any) -> list[str]:
        pages = data.get("pages") if isinstance(data, Mapping) else None
        if not isinstance(pages, list) or not all(isinstance(page, Mapping) for page in pages):
            raise self.malformed("the OCR answer has no pages list")
        ordered = sorted(pages, key=lambda page: page.get("index", 0))
        if not all(isinstance(page.get("markdown"), str) for page in ordered):
            raise self.malformed("an OCR page has no markdown")
        return [page["markdown"] for page in ordered]
