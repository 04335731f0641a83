"""The baseline: a bare aiohttp server answering every request with a fixed JSON body."""

from __future__ import annotations

import sys

from aiohttp import web

BODY = (b'{"id":"urn:ngsi-ld:Streetlight:1","type":"Streetlight",'
        b'"powerState":{"type":"Property","value":"on"}}')


async def fixed(_: web.Request) -> web.Response:
    return web.Response(body=BODY, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", fixed)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
