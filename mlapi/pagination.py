"""Page-number pagination for every list: `?page=`, `count`, `next`, `previous`, `results`."""

from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    """The contract's pagination, with an optional `page_size` capped at 500."""

    page_size_query_param = "page_size"
    max_page_size = 500
