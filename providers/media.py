"""Images in chat messages: data URLs, their MIME types, and the default vision prompt."""

from __future__ import annotations

import base64
from collections.abc import Mapping

DEFAULT_DESCRIBE_PROMPT = (
    "Describe this image in detail: what it shows, who and what is in it, where and when it "
    "seems to be, and any text or numbers it contains."
)
# RAGFlow passes images as bare base64 JPEGs.
DEFAULT_IMAGE_TYPE = "image/jpeg"

_IMAGE_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"BM", "image/bmp"),
)


def image_mime_type(image: bytes) -> str:
    if image[:4] == b"RIFF" and image[8:12] == b"WEBP":
        return "image/webp"
    for signature, mime in _IMAGE_SIGNATURES:
        if image.startswith(signature):
            return mime
    return DEFAULT_IMAGE_TYPE


def image_data_url(image: bytes | str) -> str:
    """A data URL for image bytes; URLs and data URLs given as text pass through."""
    if isinstance(image, str):
        if image.startswith(("data:", "http://", "https://")):
            return image
        return f"data:{DEFAULT_IMAGE_TYPE};base64,{image}"
    encoded = base64.b64encode(image).decode("ascii")
    return f"data:{image_mime_type(image)};base64,{encoded}"


def split_data_url(url: str) -> tuple[str, str]:
    """The MIME type and the base64 data of a data URL; bare base64 is taken for a JPEG."""
    if not url.startswith("data:"):
        return DEFAULT_IMAGE_TYPE, url
    header, _, data = url.partition(",")
    return header[5:].split(";", 1)[0] or DEFAULT_IMAGE_TYPE, data


def image_url_of(part: object) -> str:
    """The URL of an OpenAI `image_url` content part ({"image_url": {"url"}} or a string)."""
    image = part.get("image_url") if isinstance(part, Mapping) else None
    url = image.get("url") if isinstance(image, Mapping) else image
    return str(url or "")
