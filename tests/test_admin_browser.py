"""The operator console in a real browser (Debian's chromium driven by Playwright) at 1400 px:
every list fits the page without scrolling sideways, with readable labels and numbers.

The data is made long on purpose (long tenant names, long model names, long error messages),
as an operator's console holds. Skipped only when /usr/bin/chromium is missing (`make chromium`
installs it; CI does). Playwright never downloads a browser here.
"""

from __future__ import annotations

import os
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from providers.models import LLM, LLMFactory
from tenants.models import KeyValidation, TenantLLM
from tenants.selectors import tenant_owned_by
from tenants.services.tokens import api_token_create
from usage.records import UsageRecord
from usage.services.ledger import apply_records

CHROMIUM = Path("/usr/bin/chromium")
WIDTH = 1400
PASSWORD = "pw-console-operator-123"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(),
        reason="needs Debian's chromium at /usr/bin/chromium (make chromium, or apt-get install "
        "chromium); Playwright's own browser downloads are not used",
    ),
]

# What the page scrolls sideways by, and each scrolling box inside it (Django's change lists
# scroll their table inside `.results` rather than the page).
OVERFLOW = """() => {
  const page = document.documentElement;
  const boxes = [...document.querySelectorAll('#changelist .results, .inline-group, .module')];
  return {
    page: page.scrollWidth - page.clientWidth,
    boxes: boxes.filter(box => box.scrollWidth > box.clientWidth + 1)
      .map(box => `${box.id || box.className}: ${box.scrollWidth} > ${box.clientWidth}`),
  };
}"""


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    # Playwright's sync API keeps an event loop running in this thread, so Django takes every
    # ORM call of the tests (and of their fixtures) for a call from async code; they are not.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield chromium
        chromium.close()
    if previous is None:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def console_data(catalog):
    """A console as operators have it: long names, big numbers, failed and finished checks."""
    user_model = get_user_model()
    user_model.objects.create_superuser("operator", "operator@example.com", PASSWORD)
    email = "a.very-long-address.of.the-owner@subsidiary.example-corporation.com"
    tenant = tenant_owned_by(user=user_model.objects.create_user(email, email, "pw-x-12345"))
    openai = LLMFactory.objects.get(name="OpenAI")
    configs = [
        TenantLLM.objects.create(
            tenant=tenant,
            factory=openai,
            llm_name=name,
            model_type="chat",
            api_key="sk-proj-abcdefghijklmnopqrstuvwxyz0123456789",
            api_base="https://gateway.internal.example-corporation.com/openai/compatible/v1",
            used_tokens=123_456_789,
            token_quota=5_000_000,
        )
        for name in ("gpt-4o", "gpt-4o-mini-2024-07-18-long-deployment-name-for-europe-west")
    ]
    LLM.objects.filter(factory=openai, llm_name="gpt-4o").update(
        input_price=Decimal("2.5"), output_price=Decimal("10")
    )
    KeyValidation.objects.create(
        tenant=tenant,
        kind="set_api_key",
        factory=openai,
        state="failed",
        message="Fail to access chat model(gpt-4o) using this api key: the provider rejected the "
        "credentials (key problem). [AUTH_ERROR] OpenAI: Incorrect API key provided: sk-proj-"
        "****6789. You can find your API key at https://platform.openai.com/account/api-keys."
        "\nFail to access embedding model(text-embedding-3-small) using this api key: the "
        "provider rejected the credentials (key problem).",
    )
    KeyValidation.objects.create(
        tenant=tenant,
        kind="add_llm",
        factory=LLMFactory.objects.get(name="Ollama"),
        llm_name="llama3.3:70b-instruct-q4_K_M-with-a-custom-suffix",
        model_type="chat",
        state="succeeded",
    )
    # An application key with long settings, and the audit entries its making wrote.
    api_token_create(
        user=tenant.members.get().user,
        tenant=tenant,
        name="nightly-batch-summarizer-for-the-europe-west-support-knowledge-base",
        scopes=["invoke"],
        models=["gpt-4o-mini-2024-07-18-long-deployment-name-for-europe-west@OpenAI"],
        rpm=1_000_000,
        budget=Decimal("12345.67"),
    )
    apply_records(
        [
            UsageRecord(
                tenant_id=str(tenant.pk),
                factory="OpenAI",
                llm_name=configs[1].llm_name,
                model_type="chat",
                prompt_tokens=1_234_567,
                completion_tokens=7_654_321,
                total_tokens=8_888_888,
                cost="0.0012",
                latency_ms=12_345,
                outcome="error",
                error_code="RATE_LIMIT_EXCEEDED",
                tenant_llm_id=configs[1].pk,
            )
        ]
    )
    return tenant


@pytest.fixture
def page(browser, live_server, console_data):
    context = browser.new_context(viewport={"width": WIDTH, "height": 900})
    tab = context.new_page()
    tab.goto(f"{live_server.url}/admin/login/")
    tab.fill("#id_username", "operator")
    tab.fill("#id_password", PASSWORD)
    tab.click("input[type=submit]")
    tab.wait_for_url(f"{live_server.url}/admin/")
    yield tab
    context.close()


def open_page(page, live_server, path: str) -> dict:
    """Open `path` at 1400 px; what scrolls sideways, if anything (a screenshot then in /tmp)."""
    response = page.goto(f"{live_server.url}{path}")
    assert response.status == 200, path
    page.wait_for_load_state("load")
    overflow = page.evaluate(OVERFLOW)
    if overflow != {"page": 0, "boxes": []}:
        shot = f"/tmp/ragllm-console-{path.strip('/').replace('/', '-').replace('?', '-')}.png"
        page.screenshot(path=shot, full_page=True)
        overflow["screenshot"] = shot
    return overflow


def assert_fits(page, live_server, path: str) -> None:
    overflow = open_page(page, live_server, path)
    assert overflow == {"page": 0, "boxes": []}, f"{path} scrolls sideways: {overflow}"


def cell_texts(page, column: str) -> list[str]:
    return page.locator(f"#result_list td.field-{column}").all_inner_texts()


LISTS = [  # the console's lists, with the long values of console_data
    "providers/llmfactory",
    "providers/llm",
    "tenants/tenantllm",
    "tenants/keyvalidation",
    "tenants/tenant",
    "tenants/apitoken",
    "tenants/auditentry",
    "usage/usageevent",
    "usage/usagehourly",
    "usage/usagedaily",
]


def test_every_list_fits_1400_px_without_scrolling_sideways(page, live_server):
    overflowing = {
        changelist: overflow
        for changelist in LISTS
        if (overflow := open_page(page, live_server, f"/admin/{changelist}/"))
        != {"page": 0, "boxes": []}
    }
    assert overflowing == {}


def test_the_site_is_named_and_view_site_leads_to_the_api_docs(page, live_server):
    assert_fits(page, live_server, "/admin/")
    assert page.title().endswith("ragllm administration")
    assert page.locator("#site-name").inner_text() == "ragllm administration"
    assert page.get_by_role("link", name="View site").get_attribute("href") == "/api/docs/"


def test_model_configs_show_labels_numbers_and_short_tenants(page, live_server, console_data):
    assert_fits(page, live_server, "/admin/tenants/tenantllm/")
    headers = page.locator("#result_list thead th").all_inner_texts()
    assert "LLM NAME" in [h.strip() for h in headers]
    # The second config's 8,888,888 tokens of usage were added to its counter.
    assert cell_texts(page, "used") == ["123,456,789", "132,345,677"]
    assert cell_texts(page, "quota") == ["5,000,000 a month"] * 2
    assert cell_texts(page, "masked_key") == ["sk-...6789"] * 2
    tenant = cell_texts(page, "tenant_short")[0]
    assert str(console_data.pk)[:8] in tenant and str(console_data.pk) not in tenant
    # The form says API key, API base and LLM name, never "Api key" or "Llm name".
    page.click("#result_list tbody th a >> nth=0")
    page.wait_for_url("**/change/")
    labels = page.locator("form label").all_inner_texts()
    for label in ("LLM name:", "API key:", "API base:"):
        assert label in labels
    body = page.locator("#content").inner_text()
    assert "Api " not in body and "Llm " not in body


def test_the_catalog_shows_thousands_and_prices_as_money(page, live_server):
    openai = LLMFactory.objects.get(name="OpenAI")
    assert_fits(page, live_server, f"/admin/providers/llm/?factory__id__exact={openai.pk}")
    row = page.locator("#result_list tr", has=page.get_by_role("link", name="gpt-4o", exact=True))
    assert row.locator("td.field-price").inner_text() == "$2.50 / $10.00"
    assert row.locator("td.field-context").inner_text() == "128,000"
    assert_fits(page, live_server, "/admin/providers/llmfactory/")
    assert page.locator("#result_list th", has_text="URL").count() == 1


def test_key_validations_show_state_time_and_a_one_line_outcome(page, live_server):
    assert_fits(page, live_server, "/admin/tenants/keyvalidation/")
    headers = [h.strip() for h in page.locator("#result_list thead th").all_inner_texts()]
    assert headers[-3:] == ["STATE", "CREATED", "OUTCOME"]
    outcomes = cell_texts(page, "outcome")
    assert outcomes == [
        "Validated and saved.",
        "gpt-4o: the provider rejected the credentials (key problem).",
    ]
    assert all("\n" not in outcome for outcome in outcomes)
    assert all(len(created) == 19 for created in cell_texts(page, "created"))  # Y-m-d H:M:S


def test_usage_events_show_money_and_thousands(page, live_server):
    assert_fits(page, live_server, "/admin/usage/usageevent/")
    assert cell_texts(page, "cost") == ["$0.0012"]
    assert cell_texts(page, "total_tokens") == ["8,888,888"]
    assert cell_texts(page, "latency") == ["12,345\u00a0ms"]


def test_the_tenant_page_lists_its_model_configs_compactly_with_links(
    page, live_server, console_data
):
    assert_fits(page, live_server, reverse("admin:tenants_tenant_change", args=[console_data.pk]))
    inline = page.locator("#llms-group")
    links = inline.locator("td.field-model_link a")
    assert links.count() == 2
    editable = "input:not([type=hidden]), select, textarea"
    assert inline.locator(editable).count() == 0  # read-only
    links.first.click()
    page.wait_for_url("**/admin/tenants/tenantllm/*/change/")
