"""The operator API's JSON parser (REST_FRAMEWORK's DEFAULT_PARSER_CLASSES).

DRF's own JSONParser hands the body to `json.load`, so deeply nested JSON raised
RecursionError, which no exception handler turns into a response: an HTML 500. This one
parses through `bulkops.untrusted_json`, and every refusal is DRF's ParseError, which the
API's exception handler answers as a 400 in its error shape. A module of its own: DRF
imports the parser classes while it defines APIView, before bulkops.api could be loaded.
"""

from __future__ import annotations

from typing import Any

from rest_framework.exceptions import ParseError
from rest_framework.parsers import JSONParser, get_encoding
from rest_framework.utils.json import strict_constant

from bulkops import untrusted_json


class DepthCheckedJsonParser(JSONParser):
    def parse(self, stream: Any, media_type: str | None = None, parser_context: Any = None) -> Any:
        encoding = get_encoding(parser_context or {})  # refuses bz2_codec and the like
        try:
            return untrusted_json.loads(
                stream.read().decode(encoding),
                parse_constant=strict_constant if self.strict else None,
            )
        except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
            raise ParseError(f"JSON parse error - {error}") from None
