"""The storefront ASGI app (Starlette + Jinja2, server-rendered, no client-side JS).

Several stores under `/s/<store_id>/`: home, collection `/c/<category path>` (paging, sorting),
search `/search?q=`, product `/p/<product_id>` (title, brand, price, related, add to cart),
cart `/cart` (change quantity, remove), checkout form `/checkout`, confirmation `/order/<id>`.

Visits (`visits.py`): a signed, server-issued cookie keys each visit; `?buyer=<id>&session=<id>`
on an entry URL names the ids the log carries (the driver uses this), checked before anything is
logged. Product ids and category paths are URL-encoded in links (a `/` included).

Customer events (canonical schema, one row each, exactly once): page_viewed (home),
collection_viewed (category), search_submitted (query), product_viewed, product_added_to_cart /
product_removed_from_cart (quantity; a cart quantity change logs the difference),
cart_viewed, checkout_started (checkout form shown with a non-empty cart) and checkout_completed
(one row per purchased line). Every page with forms carries a one-time nonce issued by the
server, so a resubmitted, invented or missing nonce changes nothing and logs nothing (409); the
page a POST redirects to is not a new view and logs nothing. Quantities are 1-2 ASCII digits and
a cart line holds at most MAX_QUANTITY. `/order/<id>` shows only orders placed in this visit.

This module holds the route table and the page handlers; the plumbing they share (store and
visit lookup, event logging, rendering with nonces and cookies, listings) is in `pages.py`.
"""

from __future__ import annotations

import re
import uuid

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from simpersona_jax.storefront.catalog import StoreCatalog
from simpersona_jax.storefront.eventlog import EventLog, EventLogWriteError
from simpersona_jax.storefront.pages import (
    HOME_COLLECTIONS,
    MAX_QUANTITY,
    PAGE_SIZE,
    STALE_FORM,
    StorefrontBase,
    crumbs,
    segment,
)
from simpersona_jax.storefront.visits import VisitRefused, Visits

_QUANTITY = re.compile(r"[0-9]{1,2}")  # ASCII digits only: no signs, spaces, '_' or other scripts


class Storefront(StorefrontBase):
    """Holds catalogs, visits and the event log; `app` is the ASGI application.

    The app's lifespan runs the event log's background flusher (every `flush_interval_s`) and
    flushes the log on shutdown."""

    def __init__(
        self,
        catalogs: dict[str, StoreCatalog],
        log: EventLog,
        flush_interval_s: float = 1.0,
        visits: Visits | None = None,
    ):
        super().__init__(catalogs, log, flush_interval_s, visits)
        self.app = Starlette(
            lifespan=self._lifespan,
            routes=[
                Route("/", self.stores),
                Route("/_health", self.health),
                Route("/_admin/flush", self.flush, methods=["POST"]),
                Route("/s/{store}/", self.home),
                Route("/s/{store}/c/{path:path}", self.collection),
                Route("/s/{store}/search", self.search),
                Route("/s/{store}/p/{pid:path}", self.product),
                Route("/s/{store}/cart", self.cart),
                Route("/s/{store}/cart/add", self.cart_add, methods=["POST"]),
                Route("/s/{store}/cart/update", self.cart_update, methods=["POST"]),
                Route("/s/{store}/cart/remove", self.cart_remove, methods=["POST"]),
                Route("/s/{store}/checkout", self.checkout, methods=["GET", "POST"]),
                Route("/s/{store}/order/{order_id}", self.order),
            ],
            exception_handlers={VisitRefused: self._refused},
        )

    # ---- pages ----------------------------------------------------------------------------
    async def stores(self, request: Request) -> Response:
        html = self.env.get_template("stores.html").render(stores=sorted(self.catalogs))
        return HTMLResponse(html)

    async def health(self, request: Request) -> Response:
        """ok is false (503) once the event log has failed to write several flushes in a row."""
        body = {
            "ok": not self.log.error,
            "stores": len(self.catalogs),
            "visits": len(self.visits),
            "written": self.log.written,
            "pending": self.log.pending(),
        }
        if self.log.error:
            body["error"] = self.log.error
        return JSONResponse(body, status_code=503 if self.log.error else 200)

    async def flush(self, request: Request) -> Response:
        try:
            self.log.flush()
        except EventLogWriteError as e:
            return JSONResponse(
                {"written": self.log.written, "pending": self.log.pending(), "error": str(e)},
                status_code=500,
            )
        return JSONResponse({"written": self.log.written, "pending": self.log.pending()})

    async def home(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        self._event(cat, visit, "page_viewed")
        return self._render(
            "home.html",
            cat,
            visit,
            page_kind="home",
            collections=cat.top_collections(HOME_COLLECTIONS),
            products=cat.products[:PAGE_SIZE],
        )

    async def collection(self, request: Request) -> Response:
        cat = self._store(request)
        path = request.path_params["path"]
        if cat is None or path not in cat.collections:
            return self._not_found(request, f"no collection {path!r}")
        visit = self._visit(request, cat.store_id)
        base = f"/s/{segment(cat.store_id)}/c/{segment(path)}"
        listing = self._listing(request, cat.collections[path], base, {})
        self._event(cat, visit, "collection_viewed", category=path)
        return self._render(
            "collection.html",
            cat,
            visit,
            page_kind="collection",
            path=path,
            crumbs=crumbs(path),
            subcollections=cat.subcollections(path),
            **listing,
        )

    async def search(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        query = (request.query_params.get("q") or "").strip()[:200]
        base = f"/s/{segment(cat.store_id)}/search"
        listing = self._listing(request, cat.search(query), base, {"q": query})
        if query and "page" not in request.query_params and "sort" not in request.query_params:
            self._event(cat, visit, "search_submitted", query=query)
        return self._render("search.html", cat, visit, page_kind="search", query=query, **listing)

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
        return self._product_page(
            cat, visit, product, notice=f"Added {added} to your cart." if added else None
        )

    def _cart_page(self, cat, visit, notice=None, error=None, status=200):
        lines = [dict(product=cat.by_id[pid], quantity=q) for pid, q in visit.cart.items()]
        subtotal = sum(line["product"].price * line["quantity"] for line in lines)
        return self._render(
            "cart.html",
            cat,
            visit,
            status=status,
            page_kind="cart",
            lines=lines,
            subtotal=subtotal,
            notice=notice,
            error=error,
        )

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
        """The form's quantity when it is 1-2 ASCII digits from `low` to MAX_QUANTITY."""
        text = form.get("quantity")
        if not isinstance(text, str) or not _QUANTITY.fullmatch(text):
            return None
        q = int(text)
        return q if low <= q <= MAX_QUANTITY else None

    def _product_page(self, cat, visit, product, status=200, notice=None, error=None):
        return self._render(
            "product.html",
            cat,
            visit,
            status=status,
            page_kind="product",
            product=product,
            crumbs=crumbs(product.category),
            related=cat.related(product),
            notice=notice,
            error=error,
        )

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
            return self._product_page(
                cat,
                visit,
                product,
                status=400,
                error=(f"Quantity must be a whole number from 1 to {MAX_QUANTITY}."),
            )
        in_cart = visit.cart.get(product.product_id, 0)
        if in_cart + quantity > MAX_QUANTITY:
            return self._product_page(
                cat,
                visit,
                product,
                status=400,
                error=(f"At most {MAX_QUANTITY} of a product fit in the cart; it holds {in_cart}."),
            )
        if not visit.take_nonce(str(form.get("nonce", "")), "product"):
            return self._product_page(cat, visit, product, status=409, error=STALE_FORM)
        visit.cart[product.product_id] = in_cart + quantity
        self._event(cat, visit, "product_added_to_cart", product, quantity=quantity)
        url = f"/s/{segment(cat.store_id)}/p/{segment(product.product_id)}?added={quantity}"
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
            return self._cart_page(
                cat, visit, error="That product is not in your cart.", status=400
            )
        quantity = 0 if remove else self._quantity(form, 0)
        if quantity is None:
            return self._cart_page(
                cat,
                visit,
                status=400,
                error=(f"Quantity must be a whole number from 0 to {MAX_QUANTITY}."),
            )
        if not visit.take_nonce(str(form.get("nonce", "")), "cart"):
            return self._cart_page(cat, visit, status=409, error=STALE_FORM)
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
        return self._redirect(cat, visit, f"/s/{segment(cat.store_id)}/cart?updated=1")

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
            return self._render(
                "checkout.html",
                cat,
                visit,
                page_kind="checkout",
                n_items=n_items,
                subtotal=subtotal,
                form={},
            )
        form = await request.form()
        missing = [f for f in ("name", "email", "address") if not str(form.get(f, "")).strip()]
        if not missing and "@" not in str(form.get("email")):
            missing = ["email"]
        error = f"Please fill in: {', '.join(missing)}." if missing else None
        if not missing and not visit.take_nonce(str(form.get("nonce", "")), "checkout"):
            error = STALE_FORM
        if error:
            return self._render(
                "checkout.html",
                cat,
                visit,
                status=400 if missing else 409,
                page_kind="checkout",
                n_items=n_items,
                subtotal=subtotal,
                form=form,
                error=error,
            )
        order_id = uuid.uuid4().hex[:10].upper()
        for pid, quantity in visit.cart.items():
            self._event(cat, visit, "checkout_completed", cat.by_id[pid], quantity=quantity)
        visit.cart.clear()
        visit.orders.append(order_id)
        return self._redirect(cat, visit, f"/s/{segment(cat.store_id)}/order/{order_id}")

    async def order(self, request: Request) -> Response:
        cat = self._store(request)
        if cat is None:
            return self._not_found(request, "unknown store")
        visit = self._visit(request, cat.store_id)
        order_id = request.path_params["order_id"]
        if order_id not in visit.orders:
            return self._render(
                "notfound.html",
                cat,
                visit,
                status=404,
                page_kind="notfound",
                message="No order with that number was placed in this visit.",
            )
        return self._render(
            "confirmation.html", cat, visit, page_kind="confirmation", order_id=order_id
        )
