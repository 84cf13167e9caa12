"""The output filter every draft passes: :mod:`dialogs.output_filter`, under its old name.

It lives in ``dialogs/`` since the LLM interpreter checks the question wording it proposes
with the same rules (and ``dialogs`` imports nothing of ours).
"""

from __future__ import annotations

from dialogs.output_filter import DraftPolicy, clean, problems, truncate

__all__ = ["DraftPolicy", "clean", "problems", "truncate"]
