"""Scripts, for admins (issue 14, item 7): versions and their status, validating and
publishing edited YAML, diffs, the try-it chat, campaign links and their QR codes."""

from __future__ import annotations

import html
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.app import create_app
from bot.console.campaign_links import campaign_link, number_problem
from bot.script_catalog import CATALOG
from bot.whatsapp.attribution import ref_code
from scheduler.pipeline.leads import LeadIn, intake
from scheduler.store import script_versions
from scheduler.store.models import utcnow
from tests.bot.support import make_settings
from tests.console.support import ADMIN, ConsoleClient

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = "b2b_default"
EDIT = f"/console/scripts/{SCRIPT}/edit"
NUMBER = "+1 415 555 0100"
FILE_TEXT = (ROOT / "dialogs" / "scripts" / f"{SCRIPT}.yaml").read_text("utf-8")
FIRST_QUESTION = "What are you looking for help with?"
SECOND_QUESTION = "How many people work at your company?"

MakeClient = Callable[..., Awaitable[TestClient[Any, Any]]]


@pytest.fixture
def dialogs_dir(tmp_path: Path) -> Path:
    """A copy of the shipped scripts the test may add files to."""
    folder = tmp_path / "scripts"
    shutil.copytree(ROOT / "dialogs" / "scripts", folder)
    return folder


@pytest.fixture
async def console_client(
    engine: AsyncEngine, aiohttp_client: MakeClient, dialogs_dir: Path
) -> TestClient[Any, Any]:
    """The service with its scripts in ``dialogs_dir`` and a WhatsApp number for links."""
    settings = make_settings(
        first_touch=False,
        dialogs_dir=dialogs_dir,
        whatsapp_number=NUMBER,
        calendly_url="https://calendly.com/acme/intro",
    )
    return await aiohttp_client(create_app(settings, engine=engine, run_scheduler=False))


def edited(text: str = FILE_TEXT, *, version: str | None = None, **replace: str) -> str:
    """A script's text (the shipped default's) with a new version, and lines replaced:
    ``prompt_interpret="prompt: other"`` replaces ``prompt: interpret``."""
    for key, new in replace.items():
        old = key.replace("_", ": ", 1)
        assert old in text, old
        text = text.replace(old, new)
    if version is not None:
        text = re.sub(r"^version: .*$", f'version: "{version}"', text, count=1, flags=re.M)
    return text


def v2(version: str = "2027-01") -> str:
    return edited(version=version).replace(SECOND_QUESTION, "How big is your team?")


async def page(response: Any) -> str:
    return html.unescape(str(await response.text()))


# -- who may -------------------------------------------------------------------------------


async def test_a_rep_gets_403_on_every_scripts_page(rep: ConsoleClient) -> None:
    for path in [
        "/console/scripts",
        EDIT,
        f"/console/scripts/{SCRIPT}/diff",
        "/console/scripts/campaigns",
        "/console/campaigns/spring/qr.svg",
        "/console/campaigns/spring/qr.png",
    ]:
        response = await rep.get(path)
        assert response.status == 403, path
    for action in ("validate", "publish", "try"):
        path = f"/console/scripts/{SCRIPT}/{action}"
        response = await rep.post(path, {"source": v2(), "version": "", "message": "hi"})
        assert response.status == 403, path
    assert "Scripts</a>" not in await (await rep.get("/console/")).text()  # not in the nav


# -- the list ------------------------------------------------------------------------------


async def test_the_list_shows_every_version_with_its_status_and_the_current_one(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession], dialogs_dir: Path
) -> None:
    response = await admin.post(f"/console/scripts/{SCRIPT}/publish", {"source": v2()})
    assert response.status == 200 and response.url.path == "/console/scripts"
    assert "Published b2b_default version 2027-01" in await page(response)
    async with sessions.begin() as db:  # a version stored that no longer passes the checks
        await script_versions.add_version(
            db,
            script_id="b2b_es",
            version="bad-1",
            source=edited(
                (dialogs_dir / "b2b_es.yaml").read_text("utf-8"),
                version="bad-1",
                prompt_interpret="prompt: nowhere",
            ),
            published_by="someone@team.example",
            now=utcnow(),
        )
    # A file broken after the service started (it would refuse to start with it).
    (dialogs_dir / "zz_broken.yaml").write_text("id: zz_broken\nversion: 1\ngreeting: [\n")

    text = await page(await admin.get("/console/scripts"))

    b2b = _section(text, SCRIPT)
    assert "current: 2027-01 (published)" in re.sub(r"<[^>]+>", "", b2b)
    assert "2026-12" in b2b and f"file <code>{dialogs_dir / 'b2b_default.yaml'}" in b2b
    assert f"published by {ADMIN}" in b2b
    assert b2b.count('class="badge good">current') == 1
    es = _section(text, "b2b_es")
    assert "bad-1" in es and "1 problem(s)" in es and "no prompt file nowhere.yaml" in es
    assert "current: " in re.sub(r"<[^>]+>", "", es)  # the file stays current: bad-1 is skipped
    assert "zz_broken.yaml" in text and "line 4: invalid YAML" in text
    assert "Cadences" in text and "default.yaml" in text and "in use" in text


def _section(text: str, script_id: str) -> str:
    start = text.index(f'id="script-{script_id}"')
    return text[start : text.index("</section>", start)]


# -- validate and publish ----------------------------------------------------------------------


async def test_the_editor_shows_the_current_version(admin: ConsoleClient) -> None:
    text = await page(await admin.get(EDIT))
    assert FILE_TEXT in text
    assert 'name="version" value="2026-12.1"' in text  # the file's version is taken


async def test_validate_shows_each_problem_with_its_line_and_reason(
    admin: ConsoleClient,
) -> None:
    broken = FILE_TEXT.replace("title: Build something", "title: " + "B" * 30)
    line = broken.splitlines().index("        title: " + "B" * 30) + 1
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/validate", {"source": broken, "version": ""}
    )
    text = await page(response)
    assert response.status == 422
    assert f"line {line}</strong>: questions.0.options.1.title" in text
    assert "is 30 chars, max 24 when shown as list" in text
    assert f"{line} |         title: {'B' * 30}" in text  # the line itself

    response = await admin.post(
        f"/console/scripts/{SCRIPT}/validate", {"source": "id: b2b_default\nversion: [1\n"}
    )
    text = await page(response)
    assert response.status == 422 and "line 3" in text and "invalid YAML" in text


async def test_validate_applies_the_icp_checks_of_dialogs_check(admin: ConsoleClient) -> None:
    # The ICP scores option "build" of "need": a script without it is refused.
    broken = FILE_TEXT.replace("- id: build", "- id: make")
    response = await admin.post(f"/console/scripts/{SCRIPT}/validate", {"source": broken})
    assert response.status == 422
    assert "scores option 'build' of 'need'" in await page(response)


async def test_validate_accepts_a_sound_script_and_proposes_a_free_version(
    admin: ConsoleClient,
) -> None:
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/validate", {"source": FILE_TEXT, "version": ""}
    )
    text = await page(response)
    assert response.status == 200 and "No problems found." in text
    assert "Version '2026-12' exists already: publish as '2026-12.1'" in text


async def test_publish_refuses_an_invalid_script(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    broken = v2().replace("greeting:", "greting:")
    response = await admin.post(f"/console/scripts/{SCRIPT}/publish", {"source": broken})
    assert response.status == 422
    assert "Not published" in await page(response)
    async with sessions() as db:
        assert await script_versions.list_versions(db) == []


async def test_publish_refuses_a_version_used_before(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The file's own version is taken...
    response = await admin.post(f"/console/scripts/{SCRIPT}/publish", {"source": FILE_TEXT})
    text = await page(response)
    assert response.status == 409 and "The next free version is '2026-12.1'" in text
    assert 'name="version" value="2026-12.1"' in text
    # ...and so is one published before.
    assert (await admin.post(f"/console/scripts/{SCRIPT}/publish", {"source": v2()})).ok
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/publish", {"source": v2().replace("team?", "crew?")}
    )
    assert response.status == 409 and "'2027-01.1'" in await page(response)
    async with sessions() as db:
        assert [r.version for r in await script_versions.list_versions(db)] == ["2027-01"]


async def test_publish_stores_a_valid_version_for_new_conversations(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    # The version typed in the form replaces the text's own.
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/publish", {"source": v2(), "version": "2027-02"}
    )
    assert response.status == 200
    async with sessions() as db:
        [row] = await script_versions.list_versions(db)
    assert (row.script_id, row.version, row.published_by) == (SCRIPT, "2027-02", ADMIN)
    assert 'version: "2027-02"' in row.source and "How big is your team?" in row.source
    catalog = admin.client.app[CATALOG]  # this process sees it at once
    assert catalog.current(SCRIPT).version == "2027-02"
    assert catalog.get(SCRIPT, "2026-12") is not None  # running conversations keep theirs


async def test_publish_refuses_another_scripts_id(admin: ConsoleClient) -> None:
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/publish",
        {"source": v2().replace("id: b2b_default", "id: other")},
    )
    assert response.status == 422 and "line 5" in await page(response)
    assert "this page edits 'b2b_default'" in await page(response)


# -- diff --------------------------------------------------------------------------------------


async def test_the_diff_shows_the_changed_lines_escaped(admin: ConsoleClient) -> None:
    source = edited(version="2027-01").replace(SECOND_QUESTION, "How big is your <team>?")
    assert (await admin.post(f"/console/scripts/{SCRIPT}/publish", {"source": source})).ok
    response = await admin.get(f"/console/scripts/{SCRIPT}/diff")  # before the current
    raw = await response.text()
    assert response.status == 200
    assert "<team>" not in raw and "&lt;team&gt;" in raw
    text = html.unescape(raw)
    assert f'<span class="del">-    text: {SECOND_QUESTION}</span>' in text
    assert '<span class="add">+    text: How big is your <team>?</span>' in text
    assert '<span class="add">+version: "2027-01"</span>' in text
    assert "greeting" not in text  # unchanged lines far from a change are left out

    same = await admin.get(f"/console/scripts/{SCRIPT}/diff?a=2026-12&b=2026-12")
    assert "the same text" in await same.text()
    missing = await admin.get(f"/console/scripts/{SCRIPT}/diff?a=nope")
    assert missing.status == 404


# -- try it ------------------------------------------------------------------------------------


async def test_try_it_answers_with_the_first_question_and_advances(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    path = f"/console/scripts/{SCRIPT}/try"
    source = v2()  # unpublished text
    hx = {"HX-Request": "true"}
    response = await admin.post(path, {"source": source, "message": "hi"}, headers=hx)
    text = await page(response)
    assert response.status == 200 and text.lstrip().startswith('<section class="card try"')
    assert FIRST_QUESTION in text
    assert 'name="said" value="text:hi"' in text
    assert 'name="choice" value="need:build"' in text  # the options, to tap

    response = await admin.post(
        path, {"source": source, "said": "text:hi", "choice": "need:build"}, headers=hx
    )
    text = await page(response)
    assert "[Build something]" in text  # what the prospect tapped
    assert "How big is your team?" in text  # the edited text's second question
    assert "slot need = 'build'" in text
    assert text.count('name="said"') == 2

    response = await admin.post(
        path,
        {"source": source, "said": ["text:hi", "choice:need:build"], "message": "about 60"},
        headers=hx,
    )
    assert "slot company_size = '51-200'" in await page(response)

    restarted = await admin.post(
        path, {"source": source, "said": "text:hi", "restart": "1"}, headers=hx
    )
    assert 'name="said"' not in await restarted.text()
    async with sessions() as db:  # nothing stored
        assert await script_versions.list_versions(db) == []


async def test_try_it_refuses_a_broken_script(admin: ConsoleClient) -> None:
    response = await admin.post(
        f"/console/scripts/{SCRIPT}/try",
        {"source": "id: b2b_default\n", "message": "hi"},
        headers={"HX-Request": "true"},
    )
    text = await page(response)
    assert "Fix the script first" in text and "greeting" in text
    assert 'name="said"' not in text


# -- campaigns ---------------------------------------------------------------------------------


async def test_campaigns_seen_on_leads_and_typed_in_get_links(
    admin: ConsoleClient, sessions: async_sessionmaker[AsyncSession]
) -> None:
    async with sessions.begin() as db:
        for phone in ("+14155550111", "+14155550112"):
            await intake(
                db,
                LeadIn(phone=phone, source="fb-spring", attribution={"campaign": "fb-spring"}),
                default_region="US",
                now=utcnow(),
            )
    text = await page(await admin.get("/console/scripts/campaigns?name=!!!"))
    assert "has no letters or digits" in text and "fb-spring" in text
    text = await page(await admin.get("/console/scripts/campaigns?name=Summer Promo"))
    assert "fb-spring" in text and "2 lead(s)" in text
    assert "Summer Promo" in text and "typed in" in text
    assert "https://wa.me/14155550100?text=" in text
    assert "/console/campaigns/fb-spring/qr.svg" in text
    assert "/console/campaigns/summer-promo/qr.png" in text


async def test_qr_codes_are_served_as_svg_and_png(admin: ConsoleClient) -> None:
    svg = await admin.get("/console/campaigns/fb-spring/qr.svg")
    assert svg.status == 200 and svg.content_type == "image/svg+xml"
    body = await svg.text()
    assert re.search(r"<svg\b[^>]*xmlns=\"http://www.w3.org/2000/svg\"", body)
    assert body.rstrip().endswith("</svg>")
    png = await admin.get("/console/campaigns/fb-spring/qr.png")
    assert png.status == 200 and png.content_type == "image/png"
    data = await png.read()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and b"IHDR" in data[:16]
    assert (await admin.get("/console/campaigns/Not_A_Slug/qr.svg")).status == 404


def test_without_a_usable_number_campaigns_keep_their_code_but_get_no_link() -> None:
    for number, problem in [("", "set LEADBOT_WHATSAPP_NUMBER"), ("12", "country code")]:
        made = campaign_link("FB Spring '26", number)
        assert (made.slug, made.link) == ("fb-spring-26", None)
        assert made.ref == ref_code("fb-spring-26")
        assert problem in (number_problem(number) or "")
    assert number_problem(NUMBER) is None
    with pytest.raises(ValueError, match="no letters or digits"):
        campaign_link("!!!", NUMBER)
