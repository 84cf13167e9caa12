"""The LLM path through the WhatsApp webhook: the service built from settings naming
``openai:gpt-4o-mini`` (LangChain's init_chat_model) talks to the fake OpenAI-compatible server;
the model reads the opener, words the next question, and the list stays the script's; a
second message carries the conversation so far; a dead model leaves the rules in charge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.bot.whatsapp.conftest import MakeClient, post, replies, settle, text_body
from tests.support.fakes.extractions import extraction, fact
from tests.support.fakes.openai_server import FakeOpenAI

WA_ID = "15557654321"
PHONE = f"+{WA_ID}"
OPENER = "Hi! Our lead follow-up is a mess and we want it fixed"
WORDING = "Sounds painful, let's fix that. How many people work at your company today?"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI() as server:
        yield server


async def test_the_model_reads_words_and_sees_the_conversation(
    make_client: MakeClient, fake: FakeOpenAI
) -> None:
    client, _ = await make_client(
        llm_model="openai:gpt-4o-mini", openai_api_key="sk-test", openai_base_url=fake.base_url
    )
    fake.reply_json(
        {
            **extraction(fact("need", "lead follow-up is a mess", option_id="marketing")),
            "next_question": {"slot": "company_size", "text": WORDING},
        }
    )
    assert (await post(client, text_body(WA_ID, "wamid.llm1", OPENER))).status == 200
    await settle(client)
    (first,) = await replies(client, PHONE)
    assert first["kind"] == "list"
    assert first["text"].endswith(WORDING)  # after the greeting, the model's wording
    assert "How many people work at your company?" not in first["text"]
    assert fake.requests[0]["model"] == "gpt-4o-mini"

    fake.reply_status(500)  # the model is down: the rules read "65 people"
    assert (
        await post(client, text_body(WA_ID, "wamid.llm2", "65 people", ts=1700000100))
    ).status == 200
    await settle(client)
    user = fake.messages(1)[1]["content"]
    assert f"prospect: {OPENER}" in user and WORDING in user  # the conversation so far
    second = (await replies(client, PHONE))[-1]
    assert second["kind"] == "text"
    assert "budget" in second["text"].lower()  # size understood by the rules; budget next
