"""Model kinds: what callers can do with a model of each type, and what a family describes.

Each kind (chat and vision, embedding and rerank, speech, OCR) turns its calls into flows built
from a family's description (build the request, parse the answer, read the stream) and runs
them with providers.runner, sync or async.
"""
