"""``GET /dashboard``: a self-contained savings page that reads ``/v1/stats`` and refreshes itself."""

from __future__ import annotations

from pathlib import Path

from litestar import Response, get

__all__ = ["HANDLERS"]


def _page() -> bytes:
    return (Path(__file__).parent / "static" / "dashboard.html").read_bytes()


@get("/dashboard")
async def dashboard() -> Response[bytes]:
    return Response(content=_page(), media_type="text/html", headers={"Cache-Control": "no-cache"})


HANDLERS = [dashboard]
