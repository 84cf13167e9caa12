"""Scripts, for admins (issue 14, item 7): dialog scripts and their versions, editing with
the checks of ``leadbot dialogs check``, publishing, diffs, a try-it chat, campaign links.

- ``GET /console/scripts``: every script with its versions (the file's, each published one
  with who and when), which one new conversations get, and whether each is sound; the
  cadences, read-only (:mod:`bot.console.script_library`).
- ``GET /console/scripts/{id}/edit`` (``?from=<version>``): the YAML in a textarea;
  ``POST …/validate`` lists every problem with its line; ``POST …/publish`` checks the same
  way, refuses a version the script has already, stores a new version
  (:mod:`scheduler.store.script_versions`) and refreshes this process's script catalog at
  once (other workers within seconds: :mod:`bot.script_catalog`). Running conversations
  keep the version they started on.
- ``GET /console/scripts/{id}/diff?a=&b=``: a unified diff of two versions.
- ``POST /console/scripts/{id}/try``: the editor's text played as a chat
  (:mod:`bot.console.try_chat`); nothing stored, nothing sent.
- ``GET /console/scripts/campaigns``: click-to-chat links with ref codes, and
  ``GET /console/campaigns/{slug}/qr.svg|qr.png`` their QR codes.

Every handler is :func:`~bot.console.auth.admin_only`.
"""

from __future__ import annotations

import difflib
import logging
import re
from typing import Any

from aiohttp import web

from bot.console import campaign_links, try_chat
from bot.console.auth import admin_only
from bot.console.render import current, render
from bot.console.script_library import build_library, checking_icp
from bot.http.appkeys import SESSIONS, SETTINGS
from bot.http.inputs import clean_text
from bot.script_catalog import CATALOG, REFRESHER
from dialogs.experiments import controls
from dialogs.loader import ScriptError, check_script_text, set_version
from dialogs.script import Script
from dialogs.yaml_source import Problem
from scheduler.errors import VersionTakenError
from scheduler.pipeline.experiments import ExperimentReport, experiments_report
from scheduler.store import campaigns, script_versions
from scheduler.store.models import utcnow

log = logging.getLogger("leadbot.console")
routes = web.RouteTableDef()

BASE = "/console/scripts"
SOURCE_MAX = 200_000  # characters of script YAML: a real script is a few thousand
VERSION_MAX = 50  # the script_versions.version column
_TRAILING_NUMBER = re.compile(r"(.*\.)(\d+)")


# -- the list ------------------------------------------------------------------------------


@routes.get(BASE)
@admin_only
async def scripts_page(request: web.Request) -> web.Response:
    """Every script with its versions and their status, and the cadences."""
    catalog = request.app[CATALOG]
    async with request.app[SESSIONS]() as db:
        rows = await script_versions.list_versions(db)
        # One aggregate query, grouped in SQL: as fast at a million leads as at ten.
        reports = await experiments_report(db, controls=controls(catalog.scripts().values()))
    library = build_library(request.app[SETTINGS], rows, catalog)
    experiments: dict[str, list[ExperimentReport]] = {}
    for found in reports:
        experiments.setdefault(found.script_id, []).append(found)
    # Said only when true (the link is the publish form's redirect, but anyone can make one).
    script_id, _, version = request.query.get("published", "").partition(":")
    running = catalog.current_entry(script_id)
    if running is None or running.version != version:
        script_id = version = ""
    return render(
        request,
        "scripts.html",
        {
            "library": library,
            "published": (script_id, version),
            "experiments": experiments,
            "running": {k: v.experiment for k, v in catalog.scripts().items() if v.experiment},
        },
    )


# -- editing and publishing -----------------------------------------------------------------


def _script_id(request: web.Request) -> str:
    script_id = request.match_info["id"]
    if script_id not in request.app[CATALOG]:
        raise web.HTTPNotFound(reason=f"no script {script_id!r}")
    return script_id


async def _sources(request: web.Request, script_id: str) -> dict[str, str]:
    """Every version of the script with its text: the file's, then the published ones
    oldest first (stored rows too, should one no longer load into the catalog)."""
    found = {e.version: e.source for e in request.app[CATALOG].entries(script_id)}
    async with request.app[SESSIONS]() as db:
        for row in await script_versions.list_versions(db, script_id):
            found.setdefault(row.version, row.source)
    return found


def next_version(base: str, used: set[str] | dict[str, str]) -> str:
    """``base`` when no version of the script has it; else the first free of ``base`` with
    its last ``.N`` raised (``1.4`` → ``1.5``) or ``.1``, ``.2``… added (``2026-12`` →
    ``2026-12.1``)."""
    candidate = base[:VERSION_MAX]
    while candidate in used:
        found = _TRAILING_NUMBER.fullmatch(candidate)
        raised = f"{found.group(1)}{int(found.group(2)) + 1}" if found else f"{candidate}.1"
        candidate = raised[-VERSION_MAX:]
    return candidate


async def _edited(
    request: web.Request, script_id: str
) -> tuple[str, str, Script | None, list[Problem]]:
    """The editor's form: the text, the version asked for, and the text's checks."""
    form = await request.post()
    source = _field(form, "source", SOURCE_MAX)
    version = _field(form, "version", VERSION_MAX).strip()
    script, problems = _problems(request, script_id, source)
    return source, version, script, problems


def _problems(
    request: web.Request, script_id: str, source: str
) -> tuple[Script | None, list[Problem]]:
    """The checks of ``leadbot dialogs check`` on ``source``, and that it is this script."""
    settings = request.app[SETTINGS]
    icp, icp_problems = checking_icp(settings)
    name = f"{script_id} (edited)"
    script, problems = check_script_text(source, name, prompts_dir=settings.prompts_dir, icp=icp)
    problems += [Problem(str(settings.icp_file), None, line) for line in icp_problems]
    if script is not None and script.id != script_id:
        problems.append(
            Problem(name, _line_of_key(source, "id"), f"id: this page edits {script_id!r}")
        )
    return script, problems


def _line_of_key(source: str, key: str) -> int | None:
    found = re.search(rf"^{re.escape(key)}\s*:", source, re.MULTILINE)
    return None if found is None else source.count("\n", 0, found.start()) + 1


def _field(form: Any, name: str, limit: int) -> str:
    value = form.get(name, "")
    if not isinstance(value, str):
        raise web.HTTPBadRequest(reason=f"{name} must be text")
    if len(value) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(value))
    return clean_text(value).replace("\r\n", "\n")  # PostgreSQL refuses NUL in text


async def _editor(
    request: web.Request,
    script_id: str,
    source: str,
    *,
    version: str,
    status: int = 200,
    **extra: Any,
) -> web.Response:
    values: dict[str, Any] = {
        "script_id": script_id,
        "source": source,
        "lines": source.split("\n"),
        "version": version,
        "versions": list(await _sources(request, script_id)),
        "current_version": request.app[CATALOG].current(script_id).version,
        "problems": None,
        "notice": "",
        "conversation": None,
        "try_problems": [],
    }
    return render(request, "scripts_edit.html", {**values, **extra}, status=status)


@routes.get(BASE + "/{id}/edit")
@admin_only
async def edit_page(request: web.Request) -> web.Response:
    """The current version's YAML (or ``?from=<version>``'s) in the editor."""
    script_id = _script_id(request)
    sources = await _sources(request, script_id)
    start = request.query.get("from") or request.app[CATALOG].current(script_id).version
    if start not in sources:
        raise web.HTTPNotFound(reason=f"{script_id} has no version {start!r}")
    return await _editor(request, script_id, sources[start], version=next_version(start, sources))


@routes.post(BASE + "/{id}/validate")
@admin_only
async def validate(request: web.Request) -> web.Response:
    """Every problem of the edited text, with its line; and the version it would get."""
    script_id = _script_id(request)
    source, version, script, problems = await _edited(request, script_id)
    notice = ""
    if not problems and script is not None:
        used = await _sources(request, script_id)
        wanted = version or script.version
        if wanted in used:
            version = next_version(wanted, used)
            notice = f"Sound. Version {wanted!r} exists already: publish as {version!r}."
        else:
            notice = f"Sound: ready to publish as version {wanted!r}."
    status = 422 if problems else 200
    return await _editor(
        request,
        script_id,
        source,
        version=version,
        problems=problems,
        notice=notice,
        status=status,
    )


@routes.post(BASE + "/{id}/publish")
@admin_only
async def publish(request: web.Request) -> web.Response:
    """Store the edited text as a new version, for new conversations from now on."""
    script_id = _script_id(request)
    source, version, script, problems = await _edited(request, script_id)
    if script is not None and not problems and version and version != script.version:
        try:
            source = set_version(source, version, f"{script_id} (edited)")
        except ScriptError as exc:
            problems = exc.problems
        else:
            script, problems = _problems(request, script_id, source)
    if problems or script is None:
        return await _editor(
            request,
            script_id,
            source,
            version=version,
            problems=problems,
            notice="Not published: fix the problems first.",
            status=422,
        )
    used = await _sources(request, script_id)
    try:
        if script.version in used:
            raise VersionTakenError(f"{script_id} has a version {script.version!r} already")
        async with request.app[SESSIONS].begin() as db:
            await script_versions.add_version(
                db,
                script_id=script_id,
                version=script.version,
                source=source,
                published_by=current(request).user.email,
                now=utcnow(),
            )
    except VersionTakenError as exc:
        proposed = next_version(script.version, await _sources(request, script_id))
        return await _editor(
            request,
            script_id,
            source,
            version=proposed,
            problems=[],
            notice=f"Not published: {exc.message}. The next free version is {proposed!r}.",
            status=409,
        )
    try:
        await request.app[REFRESHER].refresh()  # this process at once; others within seconds
    except Exception:  # stored all the same: the periodic refresh picks it up
        log.exception("scripts: refreshing after publishing %s failed", script_id)
    raise web.HTTPSeeOther(f"{BASE}?published={script_id}:{script.version}")


# -- diff --------------------------------------------------------------------------------------


@routes.get(BASE + "/{id}/diff")
@admin_only
async def diff_page(request: web.Request) -> web.Response:
    """A unified diff of versions ``a`` and ``b`` (default: the one before the current,
    and the current)."""
    script_id = _script_id(request)
    sources = await _sources(request, script_id)
    versions = list(sources)
    current_version = request.app[CATALOG].current(script_id).version
    b = request.query.get("b") or current_version
    before = versions[max(0, versions.index(b) - 1)] if b in versions else versions[0]
    a = request.query.get("a") or before
    for asked in (a, b):
        if asked not in sources:
            raise web.HTTPNotFound(reason=f"{script_id} has no version {asked!r}")
    lines = difflib.unified_diff(
        sources[a].splitlines(),
        sources[b].splitlines(),
        fromfile=f"{script_id} {a}",
        tofile=f"{script_id} {b}",
        lineterm="",
    )
    return render(
        request,
        "scripts_diff.html",
        {
            "script_id": script_id,
            "versions": versions,
            "a": a,
            "b": b,
            "lines": [(_line_kind(line), line) for line in lines],
        },
    )


def _line_kind(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "del"}.get(line[:1], "same")


# -- try it ------------------------------------------------------------------------------------


@routes.post(BASE + "/{id}/try")
@admin_only
async def try_it(request: web.Request) -> web.Response:
    """One more turn of the try-it chat on the editor's text (replayed from the start)."""
    script_id = _script_id(request)
    settings = request.app[SETTINGS]
    form = await request.post()
    source = _field(form, "source", SOURCE_MAX)
    said: list[try_chat.Said] = []
    if not form.get("restart"):
        raw = [v for v in form.getall("said", []) if isinstance(v, str)]
        said = [s for s in map(try_chat.Said.decode, raw) if s is not None]
        choice = _field(form, "choice", 200).strip()
        message = _field(form, "message", try_chat.TEXT_MAX).strip()
        if choice:
            said.append(try_chat.Said("choice", choice))
        elif message:
            said.append(try_chat.Said("text", message))
    script, problems = _problems(request, script_id, source)
    icp, _ = checking_icp(settings)
    conversation = None
    if script is not None and icp is not None and not problems:
        conversation = await try_chat.play(
            script, said, icp=icp, now=utcnow(), calendly_url=settings.calendly_url
        )
    if "HX-Request" in request.headers:
        values = {"script_id": script_id, "conversation": conversation, "try_problems": problems}
        return render(request, "_scripts_try.html", values)
    return await _editor(
        request, script_id, source, version="", conversation=conversation, try_problems=problems
    )


# -- campaigns ---------------------------------------------------------------------------------


@routes.get(BASE + "/campaigns")
@admin_only
async def campaigns_page(request: web.Request) -> web.Response:
    """Campaigns leads came from, plus one typed in (``?name=``), with their links."""
    number = request.app[SETTINGS].whatsapp_number
    async with request.app[SESSIONS]() as db:
        seen = await campaigns.seen_campaigns(db)
    links: dict[str, campaign_links.CampaignLink] = {}
    error = ""
    typed = request.query.get("name", "").strip()[:200]
    if typed:
        try:
            made = campaign_links.campaign_link(typed, number)
            links[made.slug] = made
        except ValueError as exc:
            error = str(exc)
    for found in seen:
        try:
            made = campaign_links.campaign_link(
                found.name, number, leads=found.leads, last_lead_at=found.last_lead_at
            )
        except ValueError:
            continue  # an imported campaign name with no letters or digits
        links.setdefault(made.slug, made)
    values = {
        "links": list(links.values()),
        "typed": typed,
        "error": error,
        "number_problem": campaign_links.number_problem(number),
    }
    return render(request, "scripts_campaigns.html", values)


def _campaign_link(request: web.Request) -> str:
    slug = request.match_info["slug"]
    number = request.app[SETTINGS].whatsapp_number
    if not campaign_links.is_slug(slug):  # then slugify keeps it as it is
        raise web.HTTPNotFound(reason="not a campaign slug")
    link = campaign_links.campaign_link(slug, number).link
    if link is None:
        raise web.HTTPNotFound(reason=campaign_links.number_problem(number) or "no link")
    return link


@routes.get("/console/campaigns/{slug}/qr.svg")
@admin_only
async def qr_svg(request: web.Request) -> web.Response:
    """The QR code of a campaign's click-to-chat link, as SVG."""
    body = campaign_links.qr_svg(_campaign_link(request))
    return web.Response(body=body, content_type="image/svg+xml", headers=_QR_HEADERS)


@routes.get("/console/campaigns/{slug}/qr.png")
@admin_only
async def qr_png(request: web.Request) -> web.Response:
    """The QR code of a campaign's click-to-chat link, as PNG."""
    body = campaign_links.qr_png(_campaign_link(request))
    return web.Response(body=body, content_type="image/png", headers=_QR_HEADERS)


# A link depends only on the slug and the configured number: cacheable for a while.
_QR_HEADERS = {"Cache-Control": "private, max-age=3600"}
