import json
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import call_command

from providers.models import LLM, LLMFactory, Status
from providers.services import CatalogError, catalog_load

# RAGFlow's own catalogs, shipped with the tests (source and licence: tests/data/README.md).
REFERENCE = Path(__file__).resolve().parent / "data"


def ragflow_catalog(commit: str) -> Path:
    path = REFERENCE / f"ragflow-llm_factories-{commit}.json"
    assert path.is_file(), f"RAGFlow reference catalog missing: {path}"
    return path


def valid_counts(path: Path) -> tuple[int, int]:
    names = [f["name"] for f in json.loads(path.read_text())["factory_llm_infos"]]
    factories = LLMFactory.objects.filter(name__in=names, status=Status.VALID).count()
    models = LLM.objects.filter(factory__name__in=names, status=Status.VALID).count()
    return factories, models


@pytest.mark.django_db
def test_it_loads_the_older_ragflow_catalog_and_reloads_it_as_a_no_op():
    path = ragflow_catalog("80a16e71")
    first = catalog_load(path=path)
    assert (first.factories_in_file, first.models_in_file) == (55, 783)
    assert valid_counts(path) == (55, 783)
    # "reranker" spelled the old way is stored as rerank.
    assert LLM.objects.filter(model_type="reranker").count() == 0
    assert LLM.objects.filter(factory__name__in=["Jina", "Cohere"], model_type="rerank").exists()

    second = catalog_load(path=path)
    assert not second.changed, second.as_line()
    assert valid_counts(path) == (55, 783)


@pytest.mark.django_db
def test_it_loads_the_newer_ragflow_catalog_with_its_duplicate_model():
    path = ragflow_catalog("b1b8cd62")
    first = catalog_load(path=path)
    assert (first.factories_in_file, first.models_in_file) == (71, 1004)
    assert valid_counts(path) == (71, 1004)
    assert any("gpt-4o is listed twice" in w for w in first.warnings)
    duplicate = LLM.objects.get(factory__name="FuturMix", llm_name="gpt-4o")
    assert set(duplicate.model_types) == {"chat", "image2text"}
    # List model types and the "vision" spelling are normalised.
    assert not LLM.objects.filter(model_type="vision").exists()
    # String ranks become integers.
    assert LLMFactory.objects.get(name="OpenAI").rank == 999

    second = catalog_load(path=path)
    assert not second.changed, second.as_line()


@pytest.mark.django_db
def test_it_retires_vanished_models_and_revives_them_without_deleting(tmp_path, tenant):
    newer = ragflow_catalog("b1b8cd62")
    catalog_load(path=newer)
    older = ragflow_catalog("80a16e71")
    summary = catalog_load(path=older)
    assert summary.factories_retired > 0 and summary.models_retired > 0
    # Factories only the newer file has are kept, marked invalid.
    greenpt = LLMFactory.objects.get(name="GreenPT")
    assert greenpt.status == Status.INVALID
    assert greenpt.llms.exists()
    assert valid_counts(older) == (55, 783)

    again = catalog_load(path=newer)
    assert again.factories_updated >= 1  # GreenPT and friends are valid again
    assert LLMFactory.objects.get(name="GreenPT").status == Status.VALID


@pytest.mark.django_db
def test_it_updates_a_changed_model_and_adds_a_new_one(tmp_path):
    data = {
        "factory_llm_infos": [
            {
                "name": "Acme",
                "logo": "",
                "tags": "LLM",
                "status": "1",
                "rank": "5",
                "llm": [
                    {"llm_name": "acme-1", "tags": "LLM", "max_tokens": 1000, "model_type": "chat"}
                ],
            }
        ]
    }
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    assert catalog_load(path=path).models_added == 1
    data["factory_llm_infos"][0]["llm"][0]["max_tokens"] = 2000
    data["factory_llm_infos"][0]["llm"].append(
        {"llm_name": "acme-2", "tags": "LLM", "model_type": ["chat", "vision"], "input_price": 1.5}
    )
    path.write_text(json.dumps(data))
    summary = catalog_load(path=path)
    assert (summary.models_added, summary.models_updated) == (1, 1)
    assert LLM.objects.get(llm_name="acme-1").max_tokens == 2000
    acme2 = LLM.objects.get(llm_name="acme-2")
    assert acme2.model_types == ["chat", "image2text"]
    assert str(acme2.input_price) == "1.500000"
    assert acme2.max_tokens == 8192  # the default when the catalog gives none


def test_it_refuses_a_file_that_is_not_a_catalog(tmp_path, db):
    path = tmp_path / "bad.json"
    path.write_text('{"something": []}')
    with pytest.raises(CatalogError, match="factory_llm_infos"):
        catalog_load(path=path)
    path.write_text("{not json")
    with pytest.raises(CatalogError, match="not valid JSON"):
        catalog_load(path=path)


@pytest.mark.django_db
def test_the_command_prints_a_summary_and_warnings(capsys):
    call_command("load_llm_factories", str(ragflow_catalog("b1b8cd62")))
    out, err = capsys.readouterr()
    assert "71 factories / 1004 models in file" in out
    assert "listed twice" in err


@pytest.mark.django_db
def test_our_fixture_is_loaded_on_a_fresh_install_and_is_stable():
    # The test database was created by `migrate`, which seeds the catalog from our fixture.
    ours = json.loads(Path(settings.LLM_FACTORIES_FILE).read_text())["factory_llm_infos"]
    assert LLMFactory.objects.filter(status=Status.VALID).count() == len(ours)
    again = catalog_load(path=settings.LLM_FACTORIES_FILE)
    assert not again.changed, again.as_line()
    for name in ("Ollama", "LocalAI", "VLLM", "Xinference", "LM-Studio", "GPUStack"):
        assert LLMFactory.objects.filter(name=name).exists(), name
    assert LLMFactory.objects.get(name="OpenAI-API-Compatible").llms.count() == 0
    assert LLMFactory.objects.get(name="HuggingFace").llms.count() == 0


def test_the_suite_reads_only_the_projects_own_files():
    """`make test` passes in a clone placed anywhere: no test reaches outside the repository."""
    here = Path(__file__).resolve().parent
    # No test names a path that climbs out of the tests (the data they need is in tests/data).
    climbing = ('"../', "'../")
    offenders = [
        str(path.relative_to(here))
        for path in here.rglob("*.py")
        if path != Path(__file__).resolve()
        and any(pattern in path.read_text() for pattern in climbing)
    ]
    assert offenders == []
    assert ragflow_catalog("80a16e71").is_relative_to(here)
