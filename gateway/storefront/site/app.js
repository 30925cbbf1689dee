// The shop's entry: the navigation and the hash router. Every page is a
// function drawing into <main>; one that watches something returns a
// function that stops it when the page is left.
import { user, isAdmin, logout, onSession } from "./api.js";
import * as cart from "./cart.js";
import { h, errorBox } from "./ui.js";
import { catalogue, product } from "./shop.js";
import { cartView, checkout } from "./checkout.js";
import { loginView, registerView, ordersView, orderView } from "./account.js";
import { adminView } from "./admin.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");

const routes = [
  [/^\/$/, catalogue],
  [/^\/product\/([^/]+)$/, product],
  [/^\/cart$/, cartView],
  [/^\/checkout$/, checkout],
  [/^\/login$/, loginView],
  [/^\/register$/, registerView],
  [/^\/orders$/, ordersView],
  [/^\/orders\/([^/]+)$/, orderView],
  [/^\/admin$/, adminView],
];

let stop = null;
let first = true;
let shown = 0; // the navigation whose page main shows

// route draws the page of the hash. A view that waits for the API draws
// after its answer, when the shopper may have moved on: it is given main
// as seen through a guard that drops what it draws once another page is
// shown, and what it watches is stopped at once.
async function route() {
  stop?.();
  stop = null;
  const n = ++shown;
  const here = new Proxy(main, {
    get(el, k) {
      const v = Reflect.get(el, k);
      return typeof v === "function" ? (...args) => (n === shown ? v.apply(el, args) : undefined) : v;
    },
  });
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  const params = new URLSearchParams(query ?? "");
  drawNav(path);
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    try {
      const arg = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
      const s = await view(here, params, arg);
      if (typeof s === "function") {
        if (n === shown) stop = s;
        else s();
      }
    } catch (e) {
      here.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(e));
    }
    if (n === shown) focusMain();
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, "There is no such page. ", h("a", { href: "#/" }, "Go to the shop")));
  focusMain();
}

// After a page change, focus moves to the content (not on first load):
// keyboard and screen reader users start there, as after a page load.
function focusMain() {
  if (!first) {
    scrollTo(0, 0);
    main.focus({ preventScroll: true });
  }
  first = false;
  const title = main.querySelector("h1")?.textContent;
  document.title = title ? `${title} · Mercato shop` : "Mercato shop";
}

function drawNav(path = (location.hash.replace(/^#/, "") || "/").split("?")[0]) {
  const link = (href, text, extra) => {
    const here = href.slice(1) === path || (href === "#/orders" && path.startsWith("/orders/"));
    return h("li", {}, h("a", { href, "aria-current": here ? "page" : null }, text, extra ?? null));
  };
  const u = user();
  nav.replaceChildren(...[
    link("#/", "Shop"),
    link("#/cart", "Cart ", h("span", { class: "count", id: "cart-count", "aria-label": `${cart.count()} items` }, String(cart.count()))),
    u ? link("#/orders", "Orders") : null,
    u && isAdmin() ? link("#/admin", "Admin") : null,
    u ? h("li", {}, h("span", { class: "muted", id: "signed-in" }, u.first_name || u.email)) : null,
    u ? h("li", {}, h("button", { type: "button", class: "secondary", id: "logout", onclick: signOut }, "Log out"))
      : link("#/login", "Log in"),
    u ? null : link("#/register", "Register"),
  ].filter(Boolean));
}

async function signOut() {
  try {
    await logout();
    location.hash = "#/";
  } catch (e) {
    main.prepend(errorBox(e));
  }
}

onSession(() => drawNav());
cart.onCart(() => drawNav());
addEventListener("hashchange", route);
route();
