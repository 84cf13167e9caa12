"""Insert a batch of rows as ONE statement with a fixed set of parameters.

``connection.execute(insert, [row, row, ...])`` makes SQLAlchemy process every row's
parameters in Python and render a statement per batch size ("insertmanyvalues"); for the
webhook's inbox that per-row work cost more than SQLite's own (measured: ~270 µs of CPU a
message at 7 messages a batch, against ~150 µs for the same rows sent as one parameter).

:class:`BulkInsert` sends the rows *by column* instead, so the statement is compiled and
prepared once whatever the batch size:

- PostgreSQL: ``INSERT … SELECT * FROM unnest(:c_a, :c_b, …)``, one typed array a column;
- SQLite (no arrays): ``INSERT … SELECT json_extract(value, '$[0]'), … FROM json_each(:rows)``
  over one JSON array of rows.

Columns that are the same for every row of a batch (a channel, a timestamp) are plain
bound parameters, converted by their column's type as usual. Both forms end in ``ON
CONFLICT DO NOTHING`` with an optional ``RETURNING`` of the rows actually inserted.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import (
    JSON,
    Insert,
    Integer,
    Select,
    String,
    Table,
    Text,
    bindparam,
    cast,
    func,
    select,
    true,
)
from sqlalchemy.dialects import postgresql, sqlite

_ROW_TYPES = (String, Text, Integer, JSON)


class BulkInsert:
    """``INSERT … ON CONFLICT DO NOTHING`` of many rows of ``table`` in one statement.

    ``columns`` come from each row (strings, integers or JSON documents); ``constants`` are
    the same for the whole batch and given by name to :meth:`parameters`; ``conflict`` names
    the unique index whose conflicts are ignored; ``returning`` columns come back for the
    rows inserted.
    """

    def __init__(
        self,
        table: Table,
        *,
        columns: Sequence[str],
        constants: Sequence[str] = (),
        conflict: Sequence[str],
        returning: Sequence[str] = (),
    ) -> None:
        for name in columns:
            if not isinstance(table.c[name].type, _ROW_TYPES):
                raise TypeError(f"{table.name}.{name}: only strings, integers and JSON by row")
        self.table = table
        self.columns = tuple(columns)
        self.constants = tuple(constants)
        self.conflict = tuple(conflict)
        self.returning = tuple(returning)
        self._json = tuple(isinstance(table.c[name].type, JSON) for name in self.columns)
        self._statements: dict[str, Insert] = {}

    def statement(self, dialect: str) -> Insert:
        """The statement for ``dialect`` (``"sqlite"`` or ``"postgresql"``), built once."""
        statement = self._statements.get(dialect)
        if statement is None:
            build = _postgres_source if dialect == "postgresql" else _sqlite_source
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            constants = [bindparam(n, type_=self.table.c[n].type) for n in self.constants]
            source = build(self.table, self.columns, self._json, constants)
            statement = (
                insert(self.table)
                .from_select([*self.columns, *self.constants], source)
                .on_conflict_do_nothing(index_elements=list(self.conflict))
            )
            if self.returning:
                statement = statement.returning(*(self.table.c[n] for n in self.returning))
            self._statements[dialect] = statement
        return statement

    def parameters(
        self, dialect: str, rows: Sequence[Sequence[Any]], **constants: Any
    ) -> dict[str, Any]:
        """The parameters for :meth:`statement`: ``rows`` hold the ``columns`` in order."""
        if set(constants) != set(self.constants):
            raise TypeError(f"constants must be exactly: {', '.join(self.constants)}")
        if dialect == "postgresql":
            for i, (name, is_json) in enumerate(zip(self.columns, self._json, strict=True)):
                constants[f"c_{name}"] = [json.dumps(r[i]) if is_json else r[i] for r in rows]
        else:
            # JSON documents ride inside the rows' JSON array; json_extract takes them out.
            constants["rows"] = json.dumps([list(row) for row in rows])
        return constants


def _postgres_source(
    table: Table, columns: tuple[str, ...], is_json: tuple[bool, ...], constants: list[Any]
) -> Select[Any]:
    """``SELECT … FROM unnest(:c_a, :c_b, …) AS batch(a, b, …)``: one typed array a column
    (JSON documents travel as text and are cast back)."""
    arrays = [
        bindparam(f"c_{name}", type_=postgresql.ARRAY(Text if j else table.c[name].type))
        for name, j in zip(columns, is_json, strict=True)
    ]
    batch = func.unnest(*arrays).table_valued(*columns).render_derived("batch")
    values = [
        cast(batch.c[name], JSON) if j else batch.c[name]
        for name, j in zip(columns, is_json, strict=True)
    ]
    return select(*values, *constants).select_from(batch)


def _sqlite_source(
    table: Table, columns: tuple[str, ...], is_json: tuple[bool, ...], constants: list[Any]
) -> Select[Any]:
    """``SELECT json_extract(value, '$[0]'), … FROM json_each(:rows)``: one JSON array of
    rows (SQLite has no arrays)."""
    batch = func.json_each(bindparam("rows", type_=Text)).table_valued("value")
    values = [
        # json_quote leaves JSON text alone and quotes a bare string: JSON text either way.
        func.json_quote(func.json_extract(batch.c.value, f"$[{i}]"))
        if j
        else func.json_extract(batch.c.value, f"$[{i}]")
        for i, j in enumerate(is_json)
    ]
    # SQLite needs a WHERE here, or it reads the ON of ON CONFLICT as a join's.
    return select(*values, *constants).select_from(batch).where(true())
