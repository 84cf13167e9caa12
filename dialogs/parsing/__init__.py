"""Pure, dependency-light parsers that turn a prospect's words into values.

Every parser takes already-normalized text (see :mod:`dialogs.parsing.normalize`), never raises
on arbitrary input, and returns the verbatim span its value came from as evidence.
"""
