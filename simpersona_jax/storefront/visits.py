"""Server-side visits of the storefront: who a request belongs to, its cart and its forms.

A visit is one session of one buyer in one store. Its key is a random token the server issues
in a cookie signed with a secret made for this server run (itsdangerous), so a visit cannot be
entered by guessing or forging a cookie. A browser names the ids the event log carries with
`?buyer=<id>&session=<id>` on its entry URL (the driver does); without them the ids come from
the signed `sp_buyer` cookie or are made up. Client-supplied ids must match ID_PATTERN (charset
and length) or the request is refused before anything is logged. A session id belongs to one
buyer while the server remembers it: naming it with another buyer id is refused. Entering with
ids of a live visit but without its cookie starts a new visit (an empty cart) under those ids.

Visits idle for `idle_s` (30 minutes: a session ends) are dropped, and at most `max_visits` are
kept (the least recently used go first), so memory is bounded whatever clients send. Forms carry
one-time nonces issued per rendered page (`issue_nonce`) and accepted once (`take_nonce`);
unknown, reused or expired ones are refused. Orders are remembered so `/order/<id>` shows only
orders placed in this visit.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import secrets
import time
import uuid
from typing import Callable, Mapping

from itsdangerous import BadSignature, URLSafeSerializer

SESSION_IDLE_S = 30 * 60
MAX_VISITS = 20_000
NONCES_PER_VISIT = 32  # unused forms remembered per visit (older ones expire)
ORDERS_PER_VISIT = 16
ID_PATTERN = re.compile(r"[A-Za-z0-9._:@#+=~|/-]{1,128}")
ID_RULE = "1 to 128 characters from A-Z a-z 0-9 . _ : @ # + = ~ | / -"
VISIT_COOKIE, BUYER_COOKIE = "sp_visit", "sp_buyer"


class VisitRefused(ValueError):
    """A request that cannot be given a visit; `status` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclasses.dataclass(eq=False)
class Visit:
    """One session: cart lines, unused form nonces (nonce -> page kind), placed orders."""

    token: str
    store_id: str
    buyer_id: str
    session_id: str
    cart: "collections.OrderedDict[str, int]" = dataclasses.field(
        default_factory=collections.OrderedDict
    )
    nonces: "collections.OrderedDict[str, str]" = dataclasses.field(
        default_factory=collections.OrderedDict
    )
    orders: collections.deque = dataclasses.field(
        default_factory=lambda: collections.deque(maxlen=ORDERS_PER_VISIT)
    )
    last_seen: float = 0.0

    def issue_nonce(self, kind: str) -> str:
        """A fresh one-time nonce for the forms of a `kind` page."""
        nonce = secrets.token_hex(12)
        self.nonces[nonce] = kind
        while len(self.nonces) > NONCES_PER_VISIT:
            self.nonces.popitem(last=False)
        return nonce

    def take_nonce(self, nonce: str, kind: str) -> bool:
        """True (and the nonce is used up) when it was issued for a `kind` page and not used."""
        if self.nonces.get(nonce) != kind:
            return False
        del self.nonces[nonce]
        return True


def checked_id(name: str, value: str | None) -> str | None:
    """`value` when it is a valid id, None when absent or empty; VisitRefused otherwise."""
    if not value:
        return None
    if not ID_PATTERN.fullmatch(value):
        raise VisitRefused(
            400,
            f"bad {name} id {value[:40]!r}{'...' if len(value) > 40 else ''}: must be {ID_RULE}",
        )
    return value


class Visits:
    """The live visits of one server run (tokens, session owners) and their signed cookies."""

    def __init__(
        self,
        max_visits: int = MAX_VISITS,
        idle_s: float = SESSION_IDLE_S,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        if max_visits < 1:
            raise ValueError(f"max_visits must be >= 1, got {max_visits}")
        self.max_visits, self.idle_s, self.clock = max_visits, idle_s, clock
        self._signer = URLSafeSerializer(secret or secrets.token_bytes(32), salt="sp-storefront")
        self._by_token: "collections.OrderedDict[str, Visit]" = collections.OrderedDict()
        self._owners: dict[tuple[str, str], list] = {}  # (store, session) -> [buyer, n visits]

    def __len__(self) -> int:
        return len(self._by_token)

    def resolve(self, store_id: str, query: Mapping[str, str], cookies: Mapping[str, str]) -> Visit:
        """The request's visit: its cookie's when that matches the query's ids, else a new one."""
        buyer = checked_id("buyer", query.get("buyer"))
        session = checked_id("session", query.get("session"))
        now = self.clock()
        self._evict(now)
        visit = self._by_token.get(self._load(cookies.get(VISIT_COOKIE), "visit") or "")
        if (
            visit is not None
            and visit.store_id == store_id
            and session in (None, visit.session_id)
            and buyer in (None, visit.buyer_id)
        ):
            self._by_token.move_to_end(visit.token)
            visit.last_seen = now
            return visit
        if buyer is None:
            buyer = self._load(cookies.get(BUYER_COOKIE), "buyer") or uuid.uuid4().hex
        session = session or uuid.uuid4().hex
        owner = self._owners.get((store_id, session))
        if owner is not None and owner[0] != buyer:
            raise VisitRefused(409, f"session {session!r} belongs to another buyer")
        visit = Visit(secrets.token_hex(16), store_id, buyer, session, last_seen=now)
        self._by_token[visit.token] = visit
        if owner is None:
            self._owners[(store_id, session)] = [buyer, 1]
        else:
            owner[1] += 1
        self._evict(now)
        return visit

    def cookies(self, visit: Visit) -> list[tuple[str, str, int]]:
        """(name, signed value, max age in seconds) of the cookies that carry `visit`."""
        return [
            (VISIT_COOKIE, self._signer.dumps(visit.token, salt="visit"), int(self.idle_s)),
            (BUYER_COOKIE, self._signer.dumps(visit.buyer_id, salt="buyer"), 365 * 86400),
        ]

    def _load(self, value: str | None, salt: str) -> str | None:
        if not value:
            return None
        try:
            out = self._signer.loads(value, salt=salt)
        except BadSignature:
            return None
        return out if isinstance(out, str) else None

    def _evict(self, now: float) -> None:
        """Drops idle visits and, past the bound, the least recently used."""
        while self._by_token:
            token, oldest = next(iter(self._by_token.items()))
            if len(self._by_token) <= self.max_visits and now - oldest.last_seen <= self.idle_s:
                return
            del self._by_token[token]
            key = (oldest.store_id, oldest.session_id)
            owner = self._owners[key]
            owner[1] -= 1
            if owner[1] == 0:
                del self._owners[key]
