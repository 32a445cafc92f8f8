"""A trivial handler on Rempart's own HTTP stack: the baseline the decision benchmark divides by.

It parses the JSON body and answers the wforce `allow` shape, so HTTP + JSON costs are the
same as for `rempart serve` and the difference is the engine (plus journal and metrics).
"""

from __future__ import annotations

import asyncio
import sys

from rempart.httpserver import Auth, HttpApp, Request, Response, Router, json_response


def handler(request: Request) -> Response:
    request.json()
    return json_response({"status": 0, "msg": "", "r_attrs": {}})


async def main(port: int) -> None:
    router = Router()
    router.add("POST", "/", handler, auth=Auth.PUBLIC)
    app = HttpApp(router)
    bound = await app.start("127.0.0.1", port)
    print(f"echo listening on http://127.0.0.1:{bound}/", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    import uvloop

    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 0))
