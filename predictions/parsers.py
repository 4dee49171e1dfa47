"""The JSON body parser for prediction endpoints (NaN/Infinity literals reach validation)."""

from __future__ import annotations

from rest_framework.parsers import BaseParser

from predictions.validation import parse_json


class StrictJSONParser(BaseParser):
    """`application/json` via orjson; NaN/Infinity become sentinels that validation refuses."""

    media_type = "application/json"

    def parse(self, stream, media_type=None, parser_context=None):
        return parse_json(stream.read() if stream is not None else b"")
