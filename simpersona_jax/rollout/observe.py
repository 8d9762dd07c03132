"""Observation of a live page: marks interactive elements with `bid` and renders compact text.

One `page.evaluate` runs OBSERVE_JS in the page: it numbers every visible interactive element
(links, buttons, inputs, selects, text areas) with a `bid` attribute, in document order, and
returns them with the page facts a shopper reads. `Observation.text` is the view the agent gets
(DESIGN.md): page kind and URL path, the facts (title, price, cart count, notices), then one
`[bid] role "name"` line per element. Training traces and simulation use this same code.
"""

from __future__ import annotations

import dataclasses
import json

OBSERVE_JS = r"""
() => {
  const q = (s) => document.querySelector(s);
  const txt = (el) => (el ? (el.innerText || el.textContent || '').replace(/\s+/g, ' ').trim() : '');
  const sel = 'a[href], button, input:not([type=hidden]), select, textarea, [role=button]';
  for (const el of document.querySelectorAll('[bid]')) el.removeAttribute('bid');
  const elements = [];
  let n = 0;
  for (const el of document.querySelectorAll(sel)) {
    const st = getComputedStyle(el);
    if (st.display === 'none' || st.visibility === 'hidden' || el.disabled) continue;
    const r = el.getBoundingClientRect();
    if (r.width === 0 && r.height === 0) continue;
    const tag = el.tagName.toLowerCase();
    const type = (el.getAttribute('type') || '').toLowerCase();
    let role = el.getAttribute('role');
    if (!role) {
      if (tag === 'a') role = 'link';
      else if (tag === 'button' || ['submit', 'button', 'reset'].includes(type)) role = 'button';
      else if (tag === 'select') role = 'combobox';
      else if (tag === 'textarea') role = 'textbox';
      else if (type === 'search') role = 'searchbox';
      else if (type === 'number') role = 'spinbutton';
      else if (type === 'checkbox' || type === 'radio') role = type;
      else role = 'textbox';
    }
    let name = el.getAttribute('aria-label') || '';
    if (!name && el.labels && el.labels.length) name = txt(el.labels[0]);
    if (!name) name = txt(el);
    if (!name) name = el.getAttribute('placeholder') || el.getAttribute('title') || el.value || '';
    const bid = String(++n);
    el.setAttribute('bid', bid);
    const editable = tag === 'textarea' || (tag === 'input' && !['submit', 'button', 'reset', 'checkbox', 'radio'].includes(type));
    elements.push({bid, role, name: name.slice(0, 120), href: el.getAttribute('href') || '',
                   value: editable ? String(el.value).slice(0, 120) : null,
                   product_id: el.getAttribute('data-product-id') || ''});
  }
  const params = new URLSearchParams(location.search);
  params.delete('buyer'); params.delete('session');
  const qs = params.toString();
  const price = q('[data-price]');
  const cart = q('[data-cart-count]');
  return {
    kind: (document.body && document.body.dataset.page) || 'unknown',
    url: location.href,
    path: location.pathname + (qs ? '?' + qs : ''),
    heading: txt(q('h1')),
    title: txt(q('[data-title]')),
    price: price ? txt(price) : '',
    cart: cart ? txt(cart) : '',
    notice: txt(q('[role=status]')),
    alert: txt(q('[role=alert]')),
    elements,
  };
}
"""


@dataclasses.dataclass(frozen=True)
class Element:
    bid: str
    role: str
    name: str
    href: str = ""
    value: str | None = None
    product_id: str = ""

    def line(self) -> str:
        s = f"[{self.bid}] {self.role} {json.dumps(self.name, ensure_ascii=False)}"
        if self.value:
            s += f" value={json.dumps(self.value, ensure_ascii=False)}"
        return s


@dataclasses.dataclass(frozen=True)
class Observation:
    kind: str
    url: str
    path: str
    heading: str = ""
    title: str = ""
    price: str = ""
    cart: str = ""
    notice: str = ""
    alert: str = ""
    elements: tuple[Element, ...] = ()
    error: str = ""  # the driver's report on the previous action ("" when it went through)

    @classmethod
    def from_js(cls, d: dict) -> "Observation":
        return cls(
            kind=d["kind"],
            url=d["url"],
            path=d["path"],
            heading=d["heading"],
            title=d["title"],
            price=d["price"],
            cart=d["cart"],
            notice=d["notice"],
            alert=d["alert"],
            elements=tuple(Element(**e) for e in d["elements"]),
        )

    def with_error(self, error: str) -> "Observation":
        return dataclasses.replace(self, error=error)

    def element(self, bid: str) -> Element | None:
        for e in self.elements:
            if e.bid == bid:
                return e
        return None

    @property
    def text(self) -> str:
        lines = [f"page: {self.kind} {self.path}"]
        if self.kind == "product":
            lines += [f"title: {self.title}", f"price: {self.price}"]
        elif self.heading:
            lines.append(f"heading: {self.heading}")
        lines.append(f"cart: {self.cart or 0}")
        if self.notice:
            lines.append(f"notice: {self.notice}")
        if self.alert:
            lines.append(f"alert: {self.alert}")
        if self.error:
            lines.append(f"error: {self.error}")
        lines += [e.line() for e in self.elements]
        return "\n".join(lines)


async def observe(page) -> Observation:
    """Marks the page's interactive elements and returns its observation."""
    return Observation.from_js(await page.evaluate(OBSERVE_JS))
