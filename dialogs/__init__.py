"""The conversation brain: script model, dialog engine, interpreters and ICP scoring.

Pure: nothing here does I/O except loading script, ICP and prompt files (all YAML, read by
:mod:`dialogs.yaml_source`). Import what you need from its module (``dialogs.engine``,
``dialogs.loader``, ``dialogs.script``, …); the package itself exports nothing.
"""
