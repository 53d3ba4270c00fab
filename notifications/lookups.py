"""`field__any_of=[...]`: membership in a long list as one array parameter.

`field__in` with 10,000 values builds 10,000 placeholders that Django prepares
one by one and psycopg splits and quotes one by one; that was a quarter of a
100k-recipient fan-out's time (the preference filter asks about every
recipient). On PostgreSQL `any_of` sends the list as one array
(`field = ANY(%s)`); elsewhere it is a plain IN. Registered per field where a
long list is expected (`field.register_lookup(AnyOf)`). Give it a set:
Django walks every element of a list or tuple value while it builds a query.
"""

from __future__ import annotations

from django.core.exceptions import EmptyResultSet
from django.db.models import Lookup


class AnyOf(Lookup):
    lookup_name = "any_of"
    prepare_rhs = False

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        values = list(self.rhs)
        if not values:
            raise EmptyResultSet
        if connection.vendor == "postgresql":
            if all(type(v) is int for v in values):
                # Ids as one array literal: psycopg's list dumper quotes element by
                # element in Python, about 10 ms of CPU per 10,000 ids.
                return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, "{" + ",".join(map(str, values)) + "}"]
            return f"{lhs} = ANY(%s)", [*lhs_params, values]
        return f"{lhs} IN ({', '.join(['%s'] * len(values))})", [*lhs_params, *values]
