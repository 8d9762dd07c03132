"""The storefront ASGI app (Starlette + Jinja2, server-rendered, no client-side JS).

Several stores under `/s/<store_id>/`: home, collection `/c/<category path>` (paging, sorting),
search `/search?q=`, product `/p/<product_id>` (title, brand, price, related, add to cart),
cart `/cart` (change quantity, remove), checkout form `/checkout`, confirmation `/order/<id>`.

Visit identity: `?buyer=<id>&session=<id>` on any store URL sets the visit's ids (the driver uses
this entry URL); otherwise they come from the `sp_buyer` / `sp_session` cookies (scoped to the
store's path), and are made up on a first visit. A session ends after 30 minutes without a request.

Customer events (canonical schema, one row each, exactly once): page_viewed (home),
collection_viewed (category), search_submitted (query), product_viewed, product_added_to_cart /
product_removed_from_cart (quantity; a cart quantity change logs the difference),
cart_viewed, checkout_started (checkout form shown with a non-empty cart) and checkout_completed
(one row per purchased line). Every form carries a one-time nonce, so a resubmitted POST changes
nothing and logs nothing; the page a POST redirects to is not a new view and logs nothing.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import math
import os
import time
import uuid
from urllib.parse import quote, urlencode

import jinja2
import markupsafe
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from simpersona_jax.storefront.catalog import SORTS, StoreCatalog
from simpersona_jax.storefront.eventlog import EventLog

PAGE_SIZE = 12
HOME_COLLECTIONS = 24  # the largest top-level collections linked from the home page
SESSION_IDLE_S = 30 * 60
SORT_LABELS = (("featured", "Featured"), ("price_asc", "Price: low to high"),
               ("price_desc", "Price: high to low"), ("title", "Name"))
_TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")


@dataclasses.dataclass
class Visit:
    """Server-side state of one session: cart lines, used form nonces, last request time."""

    buyer_id: str
    session_id: str
    cart: "collections.OrderedDict[str, int]" = dataclasses.field(default_factory=collections.OrderedDict)
    nonces: set = dataclasses.field(default_factory=set)
    last_seen: float = 0.0


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


class Storefront:
    """Holds catalogs, visits and the event log; `app` is the ASGI application."""

    def __init__(self, catalogs: dict[str, StoreCatalog], log: EventLog,
                 flush_interval_s: float = 1.0):
        self.catalogs = catalogs
        self.log = log
        self.flush_interval_s = flush_interval_s
        self.visits: dict[tuple[str, str], Visit] = {}
        self._last_flush = time.monotonic()
        self.env = jinja2.Environment(loader=jinja2.FileSystemLoader(_TEMPLATES),
                                      autoescape=True, auto_reload=False)
        self.env.globals.update(money=money, label=label)
        self.app = Starlette(lifespan=self._lifespan, routes=[
            Route("/", self.stores),
            Route("/_health", self.health),
            Route("/_admin/flush", self.flush, methods=["POST"]),
            Route("/s/{store}/", self.home),
            Route("/s/{store}/c/{path}", self.collection),
            Route("/s/{store}/search", self.search),
            Route("/s/{store}/p/{pid}", self.product),
            Route("/s/{store}/cart", self.cart),
            Route("/s/{store}/cart/add", self.cart_add, methods=["POST"]),
            Route("/s/{store}/cart/update", self.cart_update, methods=["POST"]),
            Route("/s/{store}/cart/remove", self.cart_remove, methods=["POST"]),
            Route("/s/{store}/checkout", self.checkout, methods=["GET", "POST"]),
            Route("/s/{store}/order/{order_id}", self.order),
        ])

    # ---- plumbing -------------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app):
        yield
        self.log.flush()  # server shutdown: every logged event goes to disk

    def _visit(self, request: Request, store: str) -> Visit:
        """The request's visit (ids from the query, else cookies, else new)."""
        q, c = request.query_params, request.cookies
        buyer = q.get("buyer") or c.get("sp_buyer")
        session = q.get("session") or c.get("sp_session")
        if not buyer:
            buyer = uuid.uuid4().hex
        now = time.monotonic()
        visit = self.visits.get((store, session)) if session else None
        if session is None or (visit is not None and now - visit.last_seen > SESSION_IDLE_S
                               and "session" not in q):
            session, visit = uuid.uuid4().hex, None
        if visit is None:
            if len(self.visits) % 4096 == 4095:
                self._forget_idle(now)
            visit = self.visits[(store, session)] = Visit(buyer, session)
        visit.buyer_id = buyer
        visit.last_seen = now
        return visit

    def _forget_idle(self, now: float) -> None:
        """Drops the state of sessions idle for longer than a session lasts."""
        for key in [k for k, v in self.visits.items() if now - v.last_seen > SESSION_IDLE_S]:
            del self.visits[key]

    def _store(self, request: Request) -> StoreCatalog | None:
        return self.catalogs.get(request.path_params["store"])

    def _event(self, cat: StoreCatalog, visit: Visit, event_type: str, product=None, **kw):
        if product is not None:
            kw.update(product_id=product.product_id, category=product.category,
                      brand=product.brand, title=product.title, price=product.price)
        self.log.append(cat.store_id, visit.buyer_id, visit.session_id, event_type, **kw)
        if time.monotonic() - self._last_flush > self.flush_interval_s:
            self._last_flush = time.monotonic()
            self.log.flush()

    def _render(self, template: str, cat: StoreCatalog, visit: Visit, status: int = 200, **ctx) -> HTMLResponse:
        base = f"/s/{quote(cat.store_id, safe='')}"

        def nonce() -> str:
            return uuid.uuid4().hex

        html = self.env.get_template(template).render(
            store_id=cat.store_id, store_name=cat.store_id.replace("_", " ").title(), base=base,
            cart_count=sum(visit.cart.values()), nonce=nonce, **ctx)
        response = HTMLResponse(html, status_code=status)
        self._cookies(response, cat, visit)
        return response

    def _cookies(self, response: Response, cat: StoreCatalog, visit: Visit) -> None:
        path = f"/s/{quote(cat.store_id, safe='')}"
        response.set_cookie("sp_buyer", visit.buyer_id, max_age=365 * 86400, path=path,
                            samesite="lax")
        response.set_cookie("sp_session", visit.session_id, max_age=SESSION_IDLE_S, path=path,
                            samesite="lax")

    def _redirect(self, cat: StoreCatalog, visit: Visit, url: str) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        self._cookies(response, cat, visit)
        return response

    def _not_found(self, request: Request, message: str) -> Response:
        cat = self._store(request)
        if cat is None:
            return HTMLResponse(f"<h1>Not found</h1><p>{markupsafe.escape(message)}</p>",
                                status_code=404)
        visit = self._visit(request, cat.store_id)
        return self._render("notfound.html", cat, visit, status=404, page_kind="notfound",
                            message=message)

    @staticmethod
    def _used(visit: Visit, form) -> bool:
        """True when the form's nonce was already used (a resubmission); marks it used."""
        nonce = form.get("nonce") or ""
        if nonce in visit.nonces:
            return True
        if nonce:
            visit.nonces.add(nonce)
        return False

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

        return dict(products=ordered[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], total=len(products),
                    page=page, n_pages=n_pages, sort=sort, sorts=SORT_LABELS, page_url=page_url)

    # ---- pages ----------------------------------------------------------------------------
    async def stores(self, request: Request) -> Response:
        html = self.env.get_template("stores.html").render(stores=sorted(self.catalogs))
        return HTMLResponse(html)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"ok": True, "stores": len(self.catalogs), "written": self.log.written,
                             "pending": self.log.pending()})

    async def flush(self, request: Request) -> Response:
        self.log.flush()
        return JSONResponse({"written": self.log.written})

    async def home(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        self._event(cat, visit, "page_viewed")
        return self._render("home.html", cat, visit, page_kind="home",
                            collections=cat.top_collections(HOME_COLLECTIONS),
                            products=cat.products[:PAGE_SIZE])

    async def collection(self, request: Request) -> Response:
        cat = self._store(request)
        path = request.path_params["path"]
        if cat is None or path not in cat.collections:
            return self._not_found(request, f"no collection {path!r}")
        visit = self._visit(request, cat.store_id)
        base = f"/s/{quote(cat.store_id, safe='')}/c/{quote(path, safe='')}"
        listing = self._listing(request, cat.collections[path], base, {})
        self._event(cat, visit, "collection_viewed", category=path)
        return self._render("collection.html", cat, visit, page_kind="collection",
                            path=path, crumbs=crumbs(path), subcollections=cat.subcollections(path),
                            **listing)

    async def search(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        query = (request.query_params.get("q") or "").strip()[:200]
        base = f"/s/{quote(cat.store_id, safe='')}/search"
        listing = self._listing(request, cat.search(query), base, {"q": query})
        if query and "page" not in request.query_params and "sort" not in request.query_params:
            self._event(cat, visit, "search_submitted", query=query)
        return self._render("search.html", cat, visit, page_kind="search", query=query,
                            **listing)

    async def product(self, request: Request) -> Response:
        cat = self._store(request)
        pid = request.path_params["pid"]
        product = cat.by_id.get(pid) if cat else None
        if product is None:
            return self._not_found(request, f"no product {pid!r}")
        visit = self._visit(request, cat.store_id)
        added = request.query_params.get("added")
        if added is None:
            self._event(cat, visit, "product_viewed", product)
        return self._render("product.html", cat, visit, page_kind="product", product=product,
                            crumbs=crumbs(product.category), related=cat.related(product),
                            notice=f"Added {added} to your cart." if added else None)

    def _cart_page(self, cat, visit, notice=None, error=None, status=200):
        lines = [dict(product=cat.by_id[pid], quantity=q) for pid, q in visit.cart.items()]
        subtotal = sum(line["product"].price * line["quantity"] for line in lines)
        return self._render("cart.html", cat, visit, status=status, page_kind="cart",
                            lines=lines, subtotal=subtotal, notice=notice, error=error)

    async def cart(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        updated = request.query_params.get("updated")
        if updated is None:
            self._event(cat, visit, "cart_viewed")
        return self._cart_page(cat, visit, notice="Cart updated." if updated else None)

    @staticmethod
    def _quantity(form, low: int) -> int | None:
        try:
            q = int(str(form.get("quantity", "1")).strip())
        except ValueError:
            return None
        return q if low <= q <= 99 else None

    async def cart_add(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        form = await request.form()
        product = cat.by_id.get(str(form.get("product_id", "")))
        if product is None:
            return self._not_found(request, "no such product")
        visit = self._visit(request, cat.store_id)
        quantity = self._quantity(form, 1)
        if quantity is None:
            return self._render("product.html", cat, visit, status=400, page_kind="product",
                                product=product, crumbs=crumbs(product.category),
                                related=cat.related(product),
                                error="Quantity must be a whole number from 1 to 99.")
        if not self._used(visit, form):
            visit.cart[product.product_id] = visit.cart.get(product.product_id, 0) + quantity
            self._event(cat, visit, "product_added_to_cart", product, quantity=quantity)
        url = f"/s/{quote(cat.store_id, safe='')}/p/{quote(product.product_id, safe='')}?added={quantity}"
        return self._redirect(cat, visit, url)

    async def cart_update(self, request: Request) -> Response:
        return await self._change_line(request, remove=False)

    async def cart_remove(self, request: Request) -> Response:
        return await self._change_line(request, remove=True)

    async def _change_line(self, request: Request, remove: bool) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        form = await request.form()
        visit = self._visit(request, cat.store_id)
        pid = str(form.get("product_id", ""))
        if pid not in visit.cart:
            return self._cart_page(cat, visit, error="That product is not in your cart.",
                                   status=400)
        quantity = 0 if remove else self._quantity(form, 0)
        if quantity is None:
            return self._cart_page(cat, visit, status=400,
                                   error="Quantity must be a whole number from 0 to 99.")
        if not self._used(visit, form):
            old = visit.cart[pid]
            product = cat.by_id[pid]
            if quantity == 0:
                del visit.cart[pid]
            else:
                visit.cart[pid] = quantity
            if quantity > old:
                self._event(cat, visit, "product_added_to_cart", product, quantity=quantity - old)
            elif quantity < old:
                self._event(cat, visit, "product_removed_from_cart", product, quantity=old - quantity)
        return self._redirect(cat, visit, f"/s/{quote(cat.store_id, safe='')}/cart?updated=1")

    async def checkout(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        if not visit.cart:
            return self._cart_page(cat, visit, error="Your cart is empty.")
        n_items = sum(visit.cart.values())
        subtotal = sum(cat.by_id[p].price * q for p, q in visit.cart.items())
        if request.method == "GET":
            self._event(cat, visit, "checkout_started")
            return self._render("checkout.html", cat, visit, page_kind="checkout",
                                n_items=n_items, subtotal=subtotal, form={})
        form = await request.form()
        missing = [f for f in ("name", "email", "address") if not str(form.get(f, "")).strip()]
        if not missing and "@" not in str(form.get("email")):
            missing = ["email"]
        if missing:
            return self._render("checkout.html", cat, visit, status=400, page_kind="checkout",
                                n_items=n_items, subtotal=subtotal, form=form,
                                error=f"Please fill in: {', '.join(missing)}.")
        if self._used(visit, form):
            return self._cart_page(cat, visit, notice="This order was already placed.")
        order_id = uuid.uuid4().hex[:10].upper()
        for pid, quantity in visit.cart.items():
            self._event(cat, visit, "checkout_completed", cat.by_id[pid], quantity=quantity)
        visit.cart.clear()
        return self._redirect(cat, visit, f"/s/{quote(cat.store_id, safe='')}/order/{order_id}")

    async def order(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        return self._render("confirmation.html", cat, visit, page_kind="confirmation",
                            order_id=request.path_params["order_id"])
