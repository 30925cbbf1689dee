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

async function route() {
  stop?.();
  stop = null;
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, query] = raw.split("?", 2);
  const params = new URLSearchParams(query ?? "");
  drawNav(path);
  for (const [re, view] of routes) {
    const m = re.exec(path);
    if (!m) continue;
    try {
      const arg = m[1] === undefined ? undefined : decodeURIComponent(m[1]);
      const s = await view(main, params, arg);
      if (typeof s === "function") stop = s;
    } catch (e) {
      main.replaceChildren(h("h1", {}, "Something went wrong"), errorBox(e));
    }
    focusMain();
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
