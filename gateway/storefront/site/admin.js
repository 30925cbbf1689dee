// The admin's view: every order, by status; an order's fulfilment (shipped,
// delivered) and refunds of its payment.
import { api, isAdmin, newKey } from "./api.js";
import { h, add, money, errorBox, notice, field, busy } from "./ui.js";
import { orderTable, pager, needLogin } from "./account.js";

const statuses = ["", "pending", "confirmed", "shipped", "delivered", "cancelled", "refunded"];
const nextStatus = { confirmed: "shipped", shipped: "delivered" };

async function setStatus(order, status) {
  await api("POST", `/orders/${order.id}/status`, { status }, { auth: true });
}

export async function adminView(main, params) {
  if (!isAdmin()) return needLogin(main, "Admin", "/admin");
  const status = params.get("status") ?? "";
  const page = Math.max(1, Number(params.get("page")) || 1);
  const filter = h("form", { class: "actions", id: "admin-filter" },
    h("label", {}, "Status", h("select", { name: "status" }, statuses.map((s) => h("option", { value: s, selected: s === status }, s || "any")))),
    h("button", { type: "submit" }, "Show"));
  filter.addEventListener("submit", (e) => {
    e.preventDefault();
    const s = new FormData(filter).get("status");
    location.hash = s ? `#/admin?status=${s}` : "#/admin";
  });
  const out = h("div", { "aria-live": "polite" });
  main.replaceChildren(h("h1", {}, "Admin: orders"), filter, out);
  const q = new URLSearchParams({ page, page_size: 20 });
  if (status) q.set("status", status);
  let list;
  try {
    list = await api("GET", `/orders?${q}`, undefined, { auth: true });
  } catch (e) {
    out.replaceChildren(errorBox(e));
    return;
  }
  const msg = h("div", { "aria-live": "polite" });
  add(main, msg, list.items.length ? orderTable(list.items, (o) => nextStatus[o.status]
    ? h("button", { type: "button", class: "secondary", "data-action": `mark-${nextStatus[o.status]}`, onclick: async (e) => {
      e.target.disabled = true;
      try {
        await setStatus(o, nextStatus[o.status]);
        msg.replaceChildren(notice(`Order ${o.order_number} marked ${nextStatus[o.status]}.`));
        adminView(main, params);
      } catch (err) {
        e.target.disabled = false;
        msg.replaceChildren(errorBox(err));
      }
    } }, `Mark ${nextStatus[o.status]}`) : null) : h("p", {}, "No orders."),
  pager(status ? `#/admin?status=${status}` : "#/admin", page, list));
}

// adminPanel is the admin's part of an order's page.
export function adminPanel(order, reload) {
  const out = h("div", { "aria-live": "polite" });
  const act = (fn) => async (e) => {
    const form = e.target.closest("form") ?? e.target.parentElement;
    e.preventDefault?.();
    await busy(form, async () => {
      try {
        await fn(form);
        await reload();
      } catch (err) {
        out.replaceChildren(errorBox(err));
      }
    });
  };
  const next = nextStatus[order.status];
  const pay = order.payment;
  const refundable = pay?.id && (pay.status === "captured" || pay.status === "partially_refunded");
  const left = refundable ? (Number(order.total_amount) - Number(pay.refunded_amount)).toFixed(2) : "0.00";
  let refundKey = newKey(), refundSent = null;
  const refund = refundable ? h("form", { class: "stack narrow", id: "refund" },
    h("fieldset", {}, h("legend", {}, "Refund"),
      field(`Amount (up to ${money(left, order.currency)}; empty: all of it)`, { name: "amount", inputmode: "decimal", placeholder: left }),
      field("Reason", { name: "reason", maxlength: "255" }),
      h("button", { type: "submit", class: "danger" }, "Refund"))) : null;
  refund?.addEventListener("submit", act(async (form) => {
    const f = new FormData(form);
    const body = {};
    const amount = String(f.get("amount")).trim();
    if (amount) body.amount = Number(amount).toFixed(2);
    if (String(f.get("reason")).trim()) body.reason = String(f.get("reason")).trim();
    const json = JSON.stringify(body);
    if (refundSent !== null && refundSent !== json) refundKey = newKey();
    refundSent = json;
    await api("POST", `/payments/${pay.id}/refunds`, body, { auth: true, headers: { "Idempotency-Key": refundKey } });
  }));
  return h("section", { "aria-labelledby": "admin-title", class: "admin" },
    h("h2", { id: "admin-title" }, "Admin"),
    next ? h("p", {}, h("button", { type: "button", id: `mark-${next}`, onclick: act(() => setStatus(order, next)) }, `Mark ${next}`)) : null,
    refund, !next && !refund ? h("p", { class: "muted" }, "Nothing to do for this order.") : null, out);
}
