// The cart and the checkout: an address and a sandbox card, POST /orders
// with an Idempotency-Key, then the order's page.
import { api, user, newKey } from "./api.js";
import * as cart from "./cart.js";
import { h, money, errorBox, field, busy } from "./ui.js";

export function cartView(main) {
  const ls = cart.lines();
  if (!ls.length) {
    main.replaceChildren(h("h1", {}, "Cart"), h("p", {}, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the shop")));
    return;
  }
  const currency = ls[0].currency;
  main.replaceChildren(h("h1", {}, "Cart"),
    h("div", { class: "table-wrap" }, h("table", { id: "cart" },
      h("caption", { class: "sr-only" }, "The products in your cart"),
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), h("th", { scope: "col", class: "num" }, "Price"),
        h("th", { scope: "col" }, "Quantity"), h("th", { scope: "col", class: "num" }, "Total"), h("th", { scope: "col" }, h("span", { class: "sr-only" }, "Remove")))),
      h("tbody", {}, ls.map((l, i) => h("tr", {},
        h("td", {}, h("a", { href: `#/product/${encodeURIComponent(l.slug)}` }, l.name)),
        h("td", { class: "num" }, money(l.price, l.currency)),
        h("td", {}, h("input", { type: "number", min: "0", value: String(l.quantity), "aria-label": `Quantity of ${l.name}`,
          onchange: (e) => { cart.setQuantity(i, Math.max(0, Math.floor(Number(e.target.value) || 0))); cartView(main); } })),
        h("td", { class: "num" }, money(Number(l.price) * l.quantity, l.currency)),
        h("td", {}, h("button", { type: "button", class: "secondary", "aria-label": `Remove ${l.name}`, onclick: () => { cart.setQuantity(i, 0); cartView(main); } }, "Remove"))))),
      h("tfoot", {}, h("tr", {}, h("th", { scope: "row", colspan: "3" }, "Subtotal"), h("td", { class: "num" }, money(cart.subtotal(ls), currency)), h("td", {}))))),
    h("p", { class: "muted" }, "Tax and shipping are added at checkout; prices are the catalogue's when you order."),
    h("p", { class: "actions" }, h("a", { class: "button", href: "#/checkout", id: "to-checkout" }, "Check out"), h("a", { href: "#/" }, "Keep shopping")));
}

// The sandbox's cards (docs/api.md).
const cards = [
  ["4242424242424242", "succeeds: the order is confirmed"],
  ["4000000000000002", "is declined: the order is cancelled (card_declined)"],
  ["4000000000009995", "fails with insufficient funds: the order is cancelled (insufficient_funds)"],
];

export function checkout(main) {
  const ls = cart.lines();
  if (!user()) {
    main.replaceChildren(h("h1", {}, "Checkout"),
      h("p", {}, "Please ", h("a", { href: "#/login?next=/checkout" }, "log in"), " or ", h("a", { href: "#/register?next=/checkout" }, "create an account"), " to check out."));
    return;
  }
  if (!ls.length) {
    cartView(main);
    return;
  }
  // One Idempotency-Key per body: resubmitting the same checkout (a lost
  // answer, a double click) cannot order twice; a corrected one is another.
  let key = newKey(), sent = null;
  const out = h("div", { "aria-live": "assertive" });
  const year = new Date().getFullYear();
  const form = h("form", { class: "stack narrow", id: "checkout", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Shipping address"),
      field("Street", { name: "street", required: true, autocomplete: "street-address" }),
      h("div", { class: "row" }, field("City", { name: "city", required: true, autocomplete: "address-level2" }),
        field("State", { name: "state", required: true, autocomplete: "address-level1" })),
      h("div", { class: "row" }, field("ZIP code", { name: "zip_code", required: true, autocomplete: "postal-code" }),
        field("Country", { name: "country", required: true, value: "US", autocomplete: "country" }))),
    h("fieldset", {}, h("legend", {}, "Card"),
      h("p", { id: "cards-help" }, "This is the sandbox: no card is charged. Use one of these numbers:"),
      h("ul", { class: "cards-help" }, cards.map(([n, what]) => h("li", {}, h("code", {}, n), ` ${what}`))),
      field("Card number", { name: "number", required: true, inputmode: "numeric", autocomplete: "cc-number", value: cards[0][0], "aria-describedby": "cards-help" }),
      h("div", { class: "row" },
        field("Expiry month", { name: "exp_month", type: "number", min: "1", max: "12", required: true, value: "12" }),
        field("Expiry year", { name: "exp_year", type: "number", min: String(year), required: true, value: String(year + 3) }),
        field("CVC", { name: "cvc", required: true, inputmode: "numeric", autocomplete: "cc-csc", value: "123" }))),
    h("p", {}, `${cart.count()} item(s), ${money(cart.subtotal(ls), ls[0].currency)} before tax and shipping.`),
    h("button", { type: "submit", id: "place-order" }, "Place order"), out);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    const trim = (k) => String(f[k] ?? "").trim();
    const body = {
      items: ls.map((l) => ({ product_id: l.product_id, ...(l.variant_id ? { variant_id: l.variant_id } : {}), quantity: l.quantity })),
      shipping_address: { street: trim("street"), city: trim("city"), state: trim("state"), zip_code: trim("zip_code"), country: trim("country") },
      payment: { method: "card", card: { number: trim("number").replace(/[\s-]/g, ""), exp_month: Number(f.exp_month), exp_year: Number(f.exp_year), cvc: trim("cvc") } },
    };
    const json = JSON.stringify(body);
    if (sent !== null && sent !== json) key = newKey();
    sent = json;
    busy(form, async () => {
      out.replaceChildren();
      try {
        const { order } = await api("POST", "/orders", body, { auth: true, headers: { "Idempotency-Key": key } });
        cart.clear();
        location.hash = `#/orders/${order.id}`;
      } catch (err) {
        out.replaceChildren(errorBox(err));
      }
    });
  });
  main.replaceChildren(h("h1", {}, "Checkout"), form);
}
