"""Path converters shared by the URL modules of every surface."""

from django.urls import register_converter


class IdConverter:
    """A database id in a path: at most 18 digits, so it always fits a bigint.

    Django's `int` takes any number of digits and a 20-digit id failed in
    PostgreSQL ("bigint out of range") instead of being a 404.
    """

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value) -> str:
        return str(value)


register_converter(IdConverter, "id")
