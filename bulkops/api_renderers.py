"""A JSON renderer for operator API answers that carry FHIR resources.

DRF's JSONRenderer writes every number through Python's float, so a decimal read from
an export file with its precision kept (`bulkops.fhir.resource_json`) would leave as
`11208.9` where the file says `11208.90`, and `1.000000000000000000001` as `1.0`. This
one writes such numbers as their text, in the same compact form; anything that is not
plain JSON (a value only DRF's encoder knows) is left to DRF's renderer.
"""

from __future__ import annotations

from typing import Any

from rest_framework.renderers import JSONRenderer

from bulkops.fhir import resource_json


class ExactNumberJsonRenderer(JSONRenderer):
    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: dict[str, Any] | None = None,
    ) -> bytes:
        if data is None:
            return b""
        try:
            return resource_json.dumps(data).encode()
        except ValueError:
            return super().render(data, accepted_media_type, renderer_context)
