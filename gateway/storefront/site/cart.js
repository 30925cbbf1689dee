// The cart, kept in this browser (localStorage): lines of
// {product_id, variant_id, slug, name, price, currency, quantity}. Prices
// are what the page showed; the order's come from the catalogue.

const CART = "mercato.cart";
const listeners = new Set();

export function lines() {
  try {
    const v = JSON.parse(localStorage.getItem(CART));
    return Array.isArray(v) ? v : [];
  } catch {
    return [];
  }
}

function save(ls) {
  localStorage.setItem(CART, JSON.stringify(ls));
  for (const fn of listeners) fn(ls);
}

addEventListener("storage", (e) => { if (e.key === CART) for (const fn of listeners) fn(lines()); });

export function onCart(fn) { listeners.add(fn); }
export function count() { return lines().reduce((n, l) => n + l.quantity, 0); }

export function add(line, quantity) {
  const ls = lines();
  const same = ls.find((l) => l.product_id === line.product_id && (l.variant_id ?? null) === (line.variant_id ?? null));
  if (same) same.quantity += quantity;
  else ls.push({ ...line, quantity });
  save(ls);
}

export function setQuantity(i, quantity) {
  const ls = lines();
  if (!ls[i]) return;
  if (quantity > 0) ls[i].quantity = quantity;
  else ls.splice(i, 1);
  save(ls);
}

export function clear() { save([]); }

export function subtotal(ls = lines()) {
  return ls.reduce((cents, l) => cents + Math.round(Number(l.price) * 100) * l.quantity, 0) / 100;
}
