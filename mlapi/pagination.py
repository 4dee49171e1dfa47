"""Page-number pagination for every list: `?page=`, `count`, `next`, `previous`, `results`."""

import re

from rest_framework import pagination
from rest_framework.exceptions import ValidationError

# ASCII digits only: str.isdigit() also takes "²" (int() then raises) and Arabic-Indic digits
# (int() reads them as numbers the schema does not allow).
POSITIVE_INT = re.compile(r"[0-9]{1,18}")


def _positive_int(request, name: str) -> int | None:
    """The query parameter as a positive integer, None when absent; 400 when malformed."""
    values = request.query_params.getlist(name)
    if not values:
        return None
    if len(values) > 1 or not POSITIVE_INT.fullmatch(values[0]) or int(values[0]) < 1:
        raise ValidationError({name: ["Must be one positive integer."]})
    return int(values[0])


class PageNumberPagination(pagination.PageNumberPagination):
    """The contract's pagination, with an optional `page_size` capped at 500.

    Malformed `page` or `page_size` values are refused (400 validation_error) instead of being
    silently replaced by defaults, so a client's typo does not look like a real page.
    """

    page_size_query_param = "page_size"
    max_page_size = 500

    def paginate_queryset(self, queryset, request, view=None):
        _positive_int(request, self.page_query_param)
        return super().paginate_queryset(queryset, request, view)

    def get_page_size(self, request) -> int:
        size = _positive_int(request, self.page_size_query_param)
        return self.page_size if size is None else min(size, self.max_page_size)
