"""Request plumbing and page rendering shared by the storefront's handlers (see app.py).

Display helpers (`money`, `label`, `crumbs`, `segment`; the templates and replay code use them),
the paging and form constants (PAGE_SIZE, MAX_QUANTITY, FORM_PAGES, STALE_FORM), and
StorefrontBase: the catalogs, visits, event log and Jinja2 environment, with what every handler
needs: resolving the request's store and visit, logging a customer event, rendering a template
(issuing a one-time nonce on pages with forms, setting the visit cookies), 303 redirects, 404
pages, a sorted and paged product listing, and the app lifespan (event log flusher).
"""

from __future__ import annotations

import contextlib
import math
import os
from urllib.parse import quote, urlencode

import jinja2
import markupsafe
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from simpersona_jax.storefront.catalog import SORTS, StoreCatalog
from simpersona_jax.storefront.eventlog import EventLog
from simpersona_jax.storefront.visits import Visit, VisitRefused, Visits

PAGE_SIZE = 12
HOME_COLLECTIONS = 24  # the largest top-level collections linked from the home page
MAX_QUANTITY = 99  # per cart line
FORM_PAGES = ("product", "cart", "checkout")  # pages whose forms carry a nonce
SORT_LABELS = (
    ("featured", "Featured"),
    ("price_asc", "Price: low to high"),
    ("price_desc", "Price: high to low"),
    ("title", "Name"),
)
_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
STALE_FORM = "This form was already sent or has expired; nothing was changed."


def money(x: float) -> str:
    return f"${x:,.2f}"


def label(path: str) -> str:
    leaf = path.rsplit(".", 1)[-1]
    if leaf.isdigit():  # numeric category ids (sources without category names)
        return f"Category {leaf[-4:]}"
    return leaf.replace("_", " ").title()


def crumbs(path: str) -> list[str]:
    parts = path.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def segment(value: str) -> str:
    """`value` as one URL path segment ('/' encoded too)."""
    return quote(str(value), safe="")


class StorefrontBase:
    """Catalogs, visits, the event log and templates, and the plumbing of the page handlers."""

    def __init__(
        self,
        catalogs: dict[str, StoreCatalog],
        log: EventLog,
        flush_interval_s: float = 1.0,
        visits: Visits | None = None,
    ):
        self.catalogs = catalogs
        self.log = log
        self.flush_interval_s = flush_interval_s
        self.visits = visits if visits is not None else Visits()
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(_TEMPLATES), autoescape=True, auto_reload=False
        )
        self.env.globals.update(money=money, label=label)
        self.env.filters["segment"] = segment

    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        self.log.start(self.flush_interval_s)
        try:
            yield
        finally:
            self.log.close()  # server shutdown: every logged event goes to disk

    async def _refused(self, request: Request, exc: VisitRefused) -> Response:
        return HTMLResponse(
            f"<h1>Request refused</h1><p>{markupsafe.escape(str(exc))}</p>", status_code=exc.status
        )

    def _visit(self, request: Request, store: str) -> Visit:
        """The request's visit (VisitRefused, answered as 400/409, for bad or foreign ids)."""
        return self.visits.resolve(store, request.query_params, request.cookies)

    def _store(self, request: Request) -> StoreCatalog | None:
        return self.catalogs.get(request.path_params["store"])

    def _event(self, cat: StoreCatalog, visit: Visit, event_type: str, product=None, **kw):
        if product is not None:
            kw.update(
                product_id=product.product_id,
                category=product.category,
                brand=product.brand,
                title=product.title,
                price=product.price,
            )
        self.log.append(cat.store_id, visit.buyer_id, visit.session_id, event_type, **kw)

    def _render(
        self, template: str, cat: StoreCatalog, visit: Visit, status: int = 200, **ctx
    ) -> HTMLResponse:
        kind = ctx["page_kind"]
        html = self.env.get_template(template).render(
            store_id=cat.store_id,
            store_name=cat.store_id.replace("_", " ").title(),
            base=f"/s/{segment(cat.store_id)}",
            cart_count=sum(visit.cart.values()),
            nonce=visit.issue_nonce(kind) if kind in FORM_PAGES else "",
            **ctx,
        )
        response = HTMLResponse(html, status_code=status)
        self._cookies(response, cat, visit)
        return response

    def _cookies(self, response: Response, cat: StoreCatalog, visit: Visit) -> None:
        for name, value, max_age in self.visits.cookies(visit):
            response.set_cookie(
                name,
                value,
                max_age=max_age,
                path=f"/s/{segment(cat.store_id)}",
                httponly=True,
                samesite="lax",
            )

    def _redirect(self, cat: StoreCatalog, visit: Visit, url: str) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        self._cookies(response, cat, visit)
        return response

    def _not_found(self, request: Request, message: str) -> Response:
        cat = self._store(request)
        if cat is None:
            return HTMLResponse(
                f"<h1>Not found</h1><p>{markupsafe.escape(message)}</p>", status_code=404
            )
        visit = self._visit(request, cat.store_id)
        return self._render(
            "notfound.html", cat, visit, status=404, page_kind="notfound", message=message
        )

    def _listing(self, request: Request, products: list, page_url_base: str, extra: dict) -> dict:
        sort = request.query_params.get("sort", "featured")
        if sort not in SORTS:
            sort = "featured"
        try:
            page = max(1, int(request.query_params.get("page", "1")))
        except ValueError:
            page = 1
        n_pages = max(1, math.ceil(len(products) / PAGE_SIZE))
        page = min(page, n_pages)
        ordered = SORTS[sort](products)

        def page_url(p: int, s: str) -> str:
            return page_url_base + "?" + urlencode({**extra, "sort": s, "page": p})

        return dict(
            products=ordered[(page - 1) * PAGE_SIZE : page * PAGE_SIZE],
            total=len(products),
            page=page,
            n_pages=n_pages,
            sort=sort,
            sorts=SORT_LABELS,
            page_url=page_url,
        )
