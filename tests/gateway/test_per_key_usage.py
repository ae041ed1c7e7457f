"""The gateway records the API key that made each call (issue 11, usage per key)."""


def test_the_gateway_records_the_calling_key(client, cast):
    from tenants.models import APIToken

    client.chat.completions.create(
        model="gpt-4o-mini@OpenAI", messages=[{"role": "user", "content": "Hi"}]
    )
    (event,) = cast.events(1)
    owner_token = APIToken.objects.get(user=cast.owner)
    assert event.token_id == owner_token.pk
