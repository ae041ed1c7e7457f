from providers.factories import split_full_name, strip_name_suffix


def test_it_strips_ragflows_name_suffixes():
    assert strip_name_suffix("qwen2.5-7b___VLLM") == "qwen2.5-7b"
    assert strip_name_suffix("bge-m3___OpenAI-API") == "bge-m3"
    assert strip_name_suffix("gpt-4o") == "gpt-4o"


def test_it_splits_a_name_at_its_factory():
    assert split_full_name("gpt-4o@OpenAI") == ("gpt-4o", "OpenAI")
    assert split_full_name("qwen2___VLLM@VLLM") == ("qwen2", "VLLM")
    assert split_full_name("gpt-4o") == ("gpt-4o", "")


def test_it_splits_only_at_a_known_factory_when_given_them():
    known = {"OpenAI"}
    assert split_full_name("gpt-4o@OpenAI", known) == ("gpt-4o", "OpenAI")
    assert split_full_name("user@example.com", known) == ("user@example.com", "")
