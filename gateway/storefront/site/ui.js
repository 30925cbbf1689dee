// Small DOM helpers: elements are built with h(), never from HTML strings,
// so nothing the API returns is ever parsed as markup.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "value") el.value = v;
    else if (k === "checked" || k === "selected" || k === "disabled") el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  el.append(...kept(children));
  return el;
}

// fill replaces el's children, add appends to them; both skip null,
// undefined and false, as h() does (the DOM would write them as text).
const kept = (cs) => cs.flat(Infinity).filter((c) => c !== null && c !== undefined && c !== false);
export function fill(el, ...children) { el.replaceChildren(...kept(children)); }
export function add(el, ...children) { el.append(...kept(children)); }

const formats = new Map();
export function money(amount, currency = "USD") {
  if (!formats.has(currency)) formats.set(currency, new Intl.NumberFormat("en-US", { style: "currency", currency }));
  return formats.get(currency).format(Number(amount));
}

export function when(iso) {
  return new Date(iso).toLocaleString("en-US", { dateStyle: "medium", timeStyle: "short" });
}

// errorBox says what went wrong in words: the API's message, and each
// detail (an invalid field and what is wrong with it).
export function errorBox(err) {
  const details = err?.details && typeof err.details === "object"
    ? Object.entries(err.details).map(([k, v]) => h("li", {}, `${k}: ${typeof v === "string" ? v : JSON.stringify(v)}`))
    : [];
  return h("div", { class: "error", role: "alert" },
    h("p", {}, sentence(err?.message ?? String(err))),
    details.length ? h("ul", {}, details) : null);
}

export function notice(text) {
  return h("p", { class: "notice", role: "status" }, text);
}

export function sentence(s) {
  s = String(s).trim();
  return s ? s[0].toUpperCase() + s.slice(1) + (/[.!?]$/.test(s) ? "" : ".") : s;
}

// field is a labelled input.
export function field(label, attrs) {
  return h("label", {}, label, h("input", attrs));
}

export function statusBadge(status) {
  return h("span", { class: `badge status-${status}` }, status);
}

// reasonText turns a status change's reason into words.
const reasons = {
  card_declined: "the card was declined",
  insufficient_funds: "the card has insufficient funds",
  expired_card: "the card has expired",
  processing_error: "the payment provider failed",
  reservation_expired: "the reserved stock expired before payment",
  payment_failed: "the payment failed",
  payment_rejected: "the payment was refused",
};
export function reasonText(reason) {
  if (!reason) return "";
  const words = reason.split(/:\s*/).map((p) => reasons[p] ?? p.replaceAll("_", " ")).join(": ");
  return words === reason ? reason : `${words} (${reason})`;
}

// busy disables a form's buttons while fn runs.
export async function busy(form, fn) {
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    return await fn();
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

export function initial(name) {
  return (name.match(/[A-Za-z0-9]/)?.[0] ?? "•").toUpperCase();
}
