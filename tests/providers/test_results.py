import pytest

from providers.results import Usage


def test_it_fills_a_missing_total():
    assert Usage(3, 4).total_tokens == 7


def test_it_keeps_a_reported_total():
    # Gemini's total includes thinking tokens that are in neither part.
    assert Usage(3, 4, 10).total_tokens == 10


def test_it_adds_usages_and_keeps_the_estimated_flag():
    total = Usage(1, 2) + Usage(3, 4, estimated=True)
    assert total == Usage(4, 6, 10, estimated=True)
    assert Usage.zero() + Usage(1, 1) == Usage(1, 1, 2)


def test_it_rejects_negative_or_non_integer_counts():
    with pytest.raises(ValueError):
        Usage(-1, 0)
    with pytest.raises(ValueError):
        Usage(1.5, 0)


def test_it_is_immutable():
    with pytest.raises(AttributeError):
        Usage(1, 1).prompt_tokens = 5
