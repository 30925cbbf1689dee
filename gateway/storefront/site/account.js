// Signing up and in, the order history, and an order's page, whose status
// follows the order's event stream live.
import { api, login, user, isAdmin, watchOrder } from "./api.js";
import { h, fill, add, money, when, errorBox, field, busy, statusBadge, reasonText, sentence } from "./ui.js";
import { adminPanel } from "./admin.js";

function next(params) {
  const n = params.get("next") ?? "";
  return n.startsWith("/") ? `#${n}` : "#/";
}

export function loginView(main, params) {
  const out = h("div", { "aria-live": "assertive" });
  const form = h("form", { class: "stack narrow", id: "login" },
    field("Email", { type: "email", name: "email", required: true, autocomplete: "username" }),
    field("Password", { type: "password", name: "password", required: true, autocomplete: "current-password" }),
    h("button", { type: "submit" }, "Log in"), out);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(form);
    busy(form, async () => {
      try {
        await login(String(f.get("email")).trim(), String(f.get("password")));
        location.hash = next(params);
      } catch (err) {
        out.replaceChildren(errorBox(err));
      }
    });
  });
  main.replaceChildren(h("h1", {}, "Log in"), form,
    h("p", {}, "New here? ", h("a", { href: `#/register${params.get("next") ? `?next=${encodeURIComponent(params.get("next"))}` : ""}` }, "Create an account")));
}

export function registerView(main, params) {
  const out = h("div", { "aria-live": "assertive" });
  const form = h("form", { class: "stack narrow", id: "register" },
    h("div", { class: "row" }, field("First name", { name: "first_name", required: true, autocomplete: "given-name" }),
      field("Last name", { name: "last_name", required: true, autocomplete: "family-name" })),
    field("Email", { type: "email", name: "email", required: true, autocomplete: "email" }),
    field("Password (8 characters or more)", { type: "password", name: "password", required: true, minlength: "8", autocomplete: "new-password" }),
    h("button", { type: "submit" }, "Create account"), out);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = Object.fromEntries(new FormData(form));
    const body = { email: f.email.trim(), password: f.password, first_name: f.first_name.trim(), last_name: f.last_name.trim() };
    busy(form, async () => {
      try {
        await api("POST", "/auth/register", body);
        await login(body.email, body.password);
        location.hash = next(params);
      } catch (err) {
        out.replaceChildren(errorBox(err));
      }
    });
  });
  main.replaceChildren(h("h1", {}, "Create an account"), form,
    h("p", {}, "Have one? ", h("a", { href: "#/login" }, "Log in")));
}

export function needLogin(main, title, here) {
  main.replaceChildren(h("h1", {}, title), h("p", {}, "Please ", h("a", { href: `#/login?next=${encodeURIComponent(here)}` }, "log in"), " first."));
}

export async function ordersView(main, params) {
  if (!user()) return needLogin(main, "Your orders", "/orders");
  const page = Math.max(1, Number(params.get("page")) || 1);
  main.replaceChildren(h("h1", {}, "Your orders"));
  try {
    const list = await api("GET", `/orders?page=${page}&page_size=20`, undefined, { auth: true });
    if (!list.items.length) {
      main.append(h("p", {}, "No orders yet. ", h("a", { href: "#/" }, "Browse the shop")));
      return;
    }
    add(main, orderTable(list.items), pager("#/orders", page, list));
  } catch (e) {
    main.append(errorBox(e));
  }
}

export function orderTable(items, extra) {
  return h("div", { class: "table-wrap" }, h("table", { class: "orders" },
    h("thead", {}, h("tr", {}, ["Order", "Placed", "Status", "Total"].map((c) => h("th", { scope: "col", class: c === "Total" ? "num" : null }, c)),
      extra ? h("th", { scope: "col" }, "Actions") : null)),
    h("tbody", {}, items.map((o) => h("tr", { "data-order": o.id },
      h("td", {}, h("a", { href: `#/orders/${o.id}` }, o.order_number)),
      h("td", {}, when(o.created_at)), h("td", {}, statusBadge(o.status)),
      h("td", { class: "num" }, money(o.total_amount, o.currency)),
      extra ? h("td", {}, extra(o)) : null)))));
}

export function pager(base, page, list) {
  const pages = Math.max(1, Math.ceil(list.total / list.page_size));
  const sep = base.includes("?") ? "&" : "?";
  return pages > 1 ? h("nav", { class: "pager", "aria-label": "Pages" },
    page > 1 ? h("a", { href: `${base}${sep}page=${page - 1}` }, "← Previous") : null, h("span", {}, `Page ${page} of ${pages}`),
    page < pages ? h("a", { href: `${base}${sep}page=${page + 1}` }, "Next →") : null) : null;
}

// orderView is #/orders/<id>. The status line is one element, updated in
// place from the stream (a live region: screen readers say the change);
// the rest is redrawn from GET /orders/{id} after each change.
export async function orderView(main, _params, id) {
  if (!user()) return needLogin(main, "Order", `/orders/${id}`);
  let order;
  try {
    order = (await api("GET", `/orders/${encodeURIComponent(id)}`, undefined, { auth: true })).order;
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Order"), errorBox(e));
    return;
  }
  const status = h("p", { id: "order-status", role: "status", "aria-live": "polite", "aria-atomic": "true" });
  const live = h("p", { id: "live", class: "muted" }, "Connecting to live updates…");
  const body = h("div", {});
  const draw = () => {
    const last = order.status_history?.at(-1);
    status.dataset.status = order.status;
    status.className = `status status-${order.status}`;
    fill(status, h("strong", {}, sentence(statusWords[order.status] ?? order.status)),
      order.status === "cancelled" && last?.reason ? h("span", { id: "cancel-reason" }, ` Reason: ${reasonText(last.reason)}.`) : null);
    fill(body, details(order), isAdmin() ? adminPanel(order, reload) : null);
  };
  const reload = async () => {
    try {
      order = (await api("GET", `/orders/${encodeURIComponent(id)}`, undefined, { auth: true })).order;
      draw();
    } catch (e) {
      body.prepend(errorBox(e));
    }
  };
  draw();
  main.replaceChildren(h("h1", {}, `Order ${order.order_number}`), status, live, body);
  const stop = watchOrder(id, (ev) => {
    if (ev.status === order.status) return;
    order = { ...order, status: ev.status, status_history: [...(order.status_history ?? []), { status: ev.status, reason: ev.reason ?? undefined, at: ev.at }] };
    draw();
    reload(); // the payment and the totals, as they are now
  }, (state, err) => {
    live.replaceChildren(state === "live" ? "Live: this page updates by itself."
      : state === "reconnecting" ? "Reconnecting to live updates…"
        : h("span", {}, "Live updates stopped: ", sentence(err?.message ?? "unknown error")));
    live.dataset.state = state;
  });
  return stop;
}

const statusWords = {
  pending: "pending: waiting for the payment",
  confirmed: "confirmed: paid, being prepared",
  shipped: "shipped",
  delivered: "delivered",
  cancelled: "cancelled",
  refunded: "refunded",
};

function address(a) {
  return a ? `${a.street}, ${a.city}, ${a.state} ${a.zip_code}, ${a.country}` : "—";
}

function details(o) {
  const row = (label, value) => h("tr", {}, h("th", { scope: "row" }, label), h("td", { class: "num" }, money(value, o.currency)));
  return h("div", {},
    h("h2", {}, "Items"),
    h("div", { class: "table-wrap" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Product"), h("th", { scope: "col", class: "num" }, "Quantity"), h("th", { scope: "col", class: "num" }, "Total"))),
      h("tbody", {}, o.items.map((i) => h("tr", {}, h("td", {}, i.name), h("td", { class: "num" }, String(i.quantity)), h("td", { class: "num" }, money(i.total_price, o.currency))))))),
    h("table", { class: "narrow" }, h("tbody", {}, row("Subtotal", o.subtotal), row("Tax", o.tax_amount), row("Shipping", o.shipping_amount),
      Number(o.discount_amount) ? row("Discount", `-${o.discount_amount}`) : null, row("Total", o.total_amount))),
    h("h2", {}, "Delivery and payment"),
    h("p", {}, `Ships to ${address(o.shipping_address)}.`),
    o.payment ? h("p", { id: "payment" }, `Card ${o.payment.card ? `${o.payment.card.brand} ending ${o.payment.card.last4}` : ""}: payment ${o.payment.status}`,
      o.payment.failure_code ? ` (${reasonText(o.payment.failure_code)})` : "",
      Number(o.payment.refunded_amount) ? `, ${money(o.payment.refunded_amount, o.currency)} refunded` : "", ".") : null,
    h("h2", {}, "History"),
    h("ol", { class: "history", id: "history" }, (o.status_history ?? []).map((c) =>
      h("li", {}, statusBadge(c.status), ` ${c.at ? when(c.at) : ""}`, c.reason ? ` — ${reasonText(c.reason)}` : ""))),
    h("p", {}, h("a", { href: "#/orders" }, "All your orders")));
}
