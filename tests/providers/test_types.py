import pytest

from providers.types import TAG_TO_TYPE, ModelType, normalize_model_type, types_from_tags


def test_it_accepts_every_model_type_value():
    for value in ModelType.values:
        assert normalize_model_type(value) == ModelType(value)


def test_it_accepts_ragflow_spellings_in_any_case():
    assert normalize_model_type("reranker") is ModelType.RERANK
    assert normalize_model_type("Vision") is ModelType.IMAGE2TEXT
    assert normalize_model_type(" CHAT ") is ModelType.CHAT
    assert normalize_model_type(ModelType.TTS) is ModelType.TTS


def test_it_rejects_unknown_types():
    with pytest.raises(ValueError, match="unknown model type 'moderation'"):
        normalize_model_type("moderation")
    with pytest.raises(ValueError):
        normalize_model_type(None)


def test_it_maps_factory_tags_to_types():
    assert types_from_tags("LLM,TEXT EMBEDDING,TEXT RE-RANK,TTS") == {
        ModelType.CHAT,
        ModelType.EMBEDDING,
        ModelType.RERANK,
        ModelType.TTS,
    }
    assert types_from_tags(" image2text , SPEECH2TEXT,OCR") == {
        ModelType.IMAGE2TEXT,
        ModelType.SPEECH2TEXT,
        ModelType.OCR,
    }


def test_it_ignores_tags_without_a_model_type():
    assert types_from_tags("MODERATION") == set()
    assert types_from_tags("") == set()
    assert set(TAG_TO_TYPE.values()) == set(ModelType)
