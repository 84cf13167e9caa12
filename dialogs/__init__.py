"""The conversation brain: script model, dialog engine, interpreters and ICP scoring.

Pure: nothing here does I/O except loading script, ICP and prompt files (all YAML, read by
:mod:`dialogs.yaml_source`). Import from the modules themselves (``dialogs.engine``,
``dialogs.loader``, ``dialogs.script``, …): this package imports nothing, so that a module at
the bottom of every layer (``dialogs.errors``, the root of leadbot's errors) costs nothing to
import (``leadbot --help`` loads it and must not load pydantic).
"""
