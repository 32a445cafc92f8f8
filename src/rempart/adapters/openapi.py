"""The OpenAPI 3 document of Rempart's machine APIs (`openapi.json` beside this module), served
at `GET /openapi.json` to API clients.

The document is kept by hand in the repository; `tests/unit/adapters/test_openapi.py` proves that
it names every mounted API route and nothing else, and the fuzzer
(`tests/integration/test_openapi_fuzz.py`) drives a live server from it.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import orjson

from rempart.httpserver import Auth, Request, Response, Router

PATH = "/openapi.json"


@functools.cache
def document_bytes() -> bytes:
    return resources.files(__package__).joinpath("openapi.json").read_bytes()


def document() -> dict[str, Any]:
    """The document, parsed (a fresh copy each call)."""
    return orjson.loads(document_bytes())


def serve(request: Request) -> Response:
    return Response(200, document_bytes(), "application/json")


def mount(router: Router) -> None:
    router.add("GET", PATH, serve, auth=Auth.API)
