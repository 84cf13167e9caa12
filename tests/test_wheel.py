"""The wheel carries every data file the code loads at runtime, and an install finds them.

A non-editable install has no source tree to fall back on: prompts, dialog scripts, the ICP,
the cadence and its templates, the enrichment lists and the migrations must be inside the
wheel, where the default settings point. This builds the wheel (``pip wheel``: hatchling
comes from the package index or pip's cache), installs it into a temporary folder and loads
each default file with a fresh interpreter whose ``leadbot`` is that install, not this
checkout. Takes a few seconds (one build, one install, one interpreter).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

from scheduler.intake.enrichment.offline import disposable_domains, free_mail_domains

ROOT = Path(__file__).resolve().parents[1]
# The folders the wheel ships (pyproject's [tool.hatch.build.targets.wheel] packages).
SHIPPED = ("bot", "dialogs", "scheduler", "crm_sync", "prompts")

# Runs inside the installed copy: every default path must resolve into it and load.
PROBE = """
import asyncio, inspect, json, sys
from pathlib import Path

import bot, dialogs, scheduler
from bot.cli.dialogs import DEFAULT_DIALOGS_DIR, DEFAULT_ICP_FILE, DEFAULT_PROMPTS_DIR
from bot.settings import Settings
from dialogs.icp import load_icp
from dialogs.loader import check_dir, load_scripts
from dialogs.prompts import load_prompt
from scheduler.followups.cadence import load_cadence
from scheduler.followups.drafting import LLMDrafter
from scheduler.intake.email_qualify import PROMPT_NAME
from scheduler.intake.enrichment.offline import disposable_domains, free_mail_domains
from scheduler.store.engine import create_engine
from scheduler.store.migrate import current_revision, head_revision, upgrade

target = Path(sys.argv[1]).resolve()
settings = Settings(_env_file=None)
paths = [bot.__file__, dialogs.__file__, scheduler.__file__, settings.dialogs_dir,
         settings.prompts_dir, settings.cadence_file, settings.icp_file,
         DEFAULT_DIALOGS_DIR, DEFAULT_ICP_FILE, DEFAULT_PROMPTS_DIR]
outside = [str(p) for p in paths if not Path(p).resolve().is_relative_to(target)]

scripts = load_scripts(settings.dialogs_dir, prompts_dir=settings.prompts_dir)
draft_prompt = inspect.signature(LLMDrafter.__init__).parameters["prompt_name"].default
prompts = sorted({s.prompt for s in scripts.values()} | {draft_prompt, PROMPT_NAME})
for name in prompts:
    load_prompt(settings.prompts_dir, name)
icp = load_icp(settings.icp_file)
cadence = load_cadence(settings.cadence_file)  # renders every template once
problems = check_dir(DEFAULT_DIALOGS_DIR, DEFAULT_PROMPTS_DIR, icp=load_icp(DEFAULT_ICP_FILE))

async def migrate():
    engine = create_engine("sqlite+aiosqlite:///" + str(target.parent / "probe.db"))
    try:
        await upgrade(engine)
        return await current_revision(engine)
    finally:
        await engine.dispose()

print(json.dumps({
    "outside": outside,
    "scripts": sorted(scripts),
    "prompts": prompts,
    "templates": sorted({st.template for seq in cadence.sequences.values() for st in seq.steps}),
    "check_problems": [str(p) for p in problems],
    "domains": [len(free_mail_domains()), len(disposable_domains())],
    "migrated": list(asyncio.run(migrate())) == list(head_revision()),
}))
"""


def _data_files() -> set[str]:
    """Every non-Python file under the shipped folders, as a wheel path."""
    found = set()
    for folder in SHIPPED:
        for path in (ROOT / folder).rglob("*"):
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and "__pycache__" not in (path.parts)
            ):
                found.add(path.relative_to(ROOT).as_posix())
    return found


def test_an_installed_wheel_finds_every_data_file(tmp_path: Path) -> None:
    dist, target = tmp_path / "dist", tmp_path / "site"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "-q", "-w", str(dist)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert build.returncode == 0, build.stderr
    [wheel] = dist.glob("leadbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    data = _data_files()
    assert {"prompts/interpret.yaml", "dialogs/icp/default.yaml"} <= data  # the walk works
    assert data - names == set(), "data files missing from the wheel"
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)

    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "-q",
            "--target",
            str(target),
            str(wheel),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert install.returncode == 0, install.stderr
    # The installed copy comes first; run from an empty folder so no checkout is on the path.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LEADBOT_", "OPENAI_"))}
    env["PYTHONPATH"] = str(target)
    probe = subprocess.run(
        [sys.executable, "-c", PROBE, str(target)],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    assert probe.returncode == 0, probe.stderr
    found = json.loads(probe.stdout.strip().splitlines()[-1])
    assert found["outside"] == []  # every default path points into the install
    assert found["scripts"] == ["b2b_default", "b2b_es", "b2b_pt"]
    assert found["prompts"] == ["draft_followup", "interpret", "qualify_email_lead"]
    assert "first_reply.txt" in found["templates"]
    assert found["check_problems"] == []
    assert found["domains"] == [len(free_mail_domains()), len(disposable_domains())]
    assert found["migrated"] is True
