// The catalogue: the product list with its filters, and a product's page.
import { api } from "./api.js";
import * as cart from "./cart.js";
import { h, fill, add, money, errorBox, notice, initial } from "./ui.js";

const PAGE_SIZE = 12; // product.StorefrontPageSize: the page size the catalogue cache keeps
let categories = null; // the tree, fetched once

async function categoryOptions() {
  categories ??= (await api("GET", "/categories")).items;
  const out = [];
  const walk = (nodes, depth) => {
    for (const c of nodes) {
      out.push({ slug: c.slug, label: `${"\u2003".repeat(depth)}${c.name}` });
      walk(c.children ?? [], depth + 1);
    }
  };
  walk(categories, 0);
  return out;
}

// The orders of the list; none (the API's default) is newest first, or with
// a search best matches first, when newest first must be asked for.
const sorts = (searching) => [
  ...(searching ? [["", "Best match"], ["-created_at", "Newest first"]] : [["", "Newest first"]]),
  ["price", "Price: low to high"], ["-price", "Price: high to low"], ["name", "Name: A to Z"],
];

// catalogue is #/?q=&category=&min_price=&max_price=&in_stock=1&sort=&page=
export async function catalogue(main, params) {
  const q = new URLSearchParams();
  for (const k of ["q", "category", "min_price", "max_price", "sort"]) if (params.get(k)) q.set(k, params.get(k));
  if (params.get("in_stock")) q.set("in_stock", "true");
  const page = Math.max(1, Number(params.get("page")) || 1);
  q.set("page", page);
  q.set("page_size", PAGE_SIZE);

  const results = h("section", { "aria-labelledby": "results-title", id: "results" });
  main.replaceChildren(h("h1", {}, params.get("q") ? `Results for “${params.get("q")}”` : "Shop"),
    h("div", { class: "layout" }, h("div", {}, await filters(params)), results));

  let list;
  try {
    list = await api("GET", `/products?${q}`);
  } catch (e) {
    results.replaceChildren(h("h2", { id: "results-title" }, "Products"), errorBox(e));
    return;
  }
  const pages = Math.max(1, Math.ceil(list.total / PAGE_SIZE));
  fill(results,
    h("h2", { id: "results-title" }, `${list.total} ${list.total === 1 ? "product" : "products"}`),
    list.items.length
      ? h("ul", { class: "grid", id: "products" }, list.items.map(productCard))
      : h("p", {}, "Nothing matches. Try fewer filters."),
    pages > 1 ? h("nav", { class: "pager", "aria-label": "Pages" },
      page > 1 ? h("a", { href: pageLink(params, page - 1), rel: "prev" }, "← Previous") : null,
      h("span", {}, `Page ${page} of ${pages}`),
      page < pages ? h("a", { href: pageLink(params, page + 1), rel: "next" }, "Next →") : null) : null);
}

function pageLink(params, page) {
  const p = new URLSearchParams(params);
  p.set("page", page);
  return `#/?${p}`;
}

async function filters(params) {
  let options = [];
  let failed = null;
  try {
    options = await categoryOptions();
  } catch (e) {
    failed = e;
  }
  const form = h("form", { class: "filters", role: "search", "aria-label": "Products" },
    h("label", {}, "Search", h("input", { type: "search", name: "q", value: params.get("q") ?? "", placeholder: "e.g. headphones" })),
    h("label", {}, "Category", h("select", { name: "category" },
      h("option", { value: "" }, "All categories"),
      options.map((o) => h("option", { value: o.slug, selected: params.get("category") === o.slug }, o.label)))),
    failed ? errorBox(failed) : null,
    h("div", { class: "row" },
      h("label", {}, "Min price", h("input", { type: "number", name: "min_price", min: "0", step: "0.01", inputmode: "decimal", value: params.get("min_price") ?? "" })),
      h("label", {}, "Max price", h("input", { type: "number", name: "max_price", min: "0", step: "0.01", inputmode: "decimal", value: params.get("max_price") ?? "" }))),
    h("label", { class: "check" }, h("input", { type: "checkbox", name: "in_stock", checked: Boolean(params.get("in_stock")) }), "In stock only"),
    h("label", {}, "Sort", h("select", { name: "sort" }, sorts(Boolean(params.get("q"))).map(([v, l]) => h("option", { value: v, selected: (params.get("sort") ?? "") === v }, l)))),
    h("button", { type: "submit" }, "Show products"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const p = new URLSearchParams();
    for (const [k, v] of new FormData(form)) {
      const s = String(v).trim();
      if (!s) continue;
      if (k === "min_price" || k === "max_price") p.set(k, Number(s).toFixed(2));
      else if (k === "in_stock") p.set(k, "1");
      else p.set(k, s);
    }
    location.hash = `#/?${p}`;
  });
  return form;
}

function inStock(p) {
  return p.stock_quantity > 0 || (p.variants ?? []).some((v) => v.stock_quantity > 0);
}

function productCard(p) {
  const link = `#/product/${encodeURIComponent(p.slug)}`;
  const simple = !(p.variants ?? []).length;
  const msg = h("p", { class: "sr-only", role: "status" });
  return h("li", { class: "card", "data-product": p.slug },
    h("div", { class: "thumb", "aria-hidden": "true" }, initial(p.name)),
    h("h2", {}, h("a", { href: link }, p.name)),
    p.short_description ? h("p", { class: "muted" }, p.short_description) : null,
    h("p", { class: "price" }, money(p.price, p.currency),
      p.compare_price ? h("span", { class: "was" }, h("span", { class: "sr-only" }, "was "), money(p.compare_price, p.currency)) : null),
    h("p", {}, inStock(p) ? h("span", { class: "badge ok" }, "In stock") : h("span", { class: "badge bad" }, "Out of stock")),
    simple && p.stock_quantity > 0
      ? h("button", { type: "button", "aria-label": `Add ${p.name} to cart`, onclick: () => {
        cart.add(lineOf(p, null), 1);
        msg.textContent = `${p.name} added to the cart`;
      } }, "Add to cart")
      : h("a", { class: "button secondary", href: link }, simple ? "Details" : "Choose options"),
    msg);
}

function lineOf(p, v) {
  return { product_id: p.id, variant_id: v?.id ?? null, slug: p.slug, name: v ? `${p.name} — ${v.name}` : p.name,
    price: v?.price ?? p.price, currency: v?.currency ?? p.currency };
}

// product is #/product/<slug or id>: its variants, their stock, and the
// quantity to add.
export async function product(main, _params, ref) {
  let p;
  try {
    p = (await api("GET", `/products/${encodeURIComponent(ref)}`)).product;
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Product"), errorBox(e), h("p", {}, h("a", { href: "#/" }, "Back to the shop")));
    return;
  }
  const variants = p.variants ?? [];
  const status = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "stack narrow", id: "add-to-cart" });
  const choice = () => {
    const id = new FormData(form).get("variant");
    return variants.find((v) => v.id === id) ?? null;
  };
  const stockOf = (v) => (v ? v.stock_quantity : p.stock_quantity);
  const priceLine = h("p", { class: "price" });
  const stockLine = h("p", {});
  const qty = h("input", { type: "number", name: "quantity", min: "1", value: "1", required: true, inputmode: "numeric" });
  const addButton = h("button", { type: "submit" }, "Add to cart");
  const refresh = () => {
    const v = choice();
    priceLine.textContent = money(v?.price ?? p.price, v?.currency ?? p.currency);
    const n = stockOf(v);
    stockLine.replaceChildren(n > 0 ? h("span", { class: "badge ok" }, `${n} in stock`) : h("span", { class: "badge bad" }, "Out of stock"));
    qty.max = String(Math.max(1, n));
    addButton.disabled = n <= 0 || (variants.length > 0 && !v);
  };
  add(form,
    variants.length ? h("fieldset", {}, h("legend", {}, "Options"), variants.map((v, i) =>
      h("label", { class: "check" }, h("input", { type: "radio", name: "variant", value: v.id, checked: i === 0, onchange: refresh }),
        `${v.name} — ${money(v.price, v.currency)}`,
        Object.keys(v.attributes ?? {}).length ? h("span", { class: "muted" }, ` (${Object.entries(v.attributes).map(([k, x]) => `${k}: ${x}`).join(", ")})`) : null,
        v.stock_quantity > 0 ? null : h("span", { class: "badge bad" }, "out of stock")))) : null,
    priceLine, stockLine, h("label", {}, "Quantity", qty), addButton, status);
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const v = choice();
    const n = Number(qty.value);
    if (!Number.isInteger(n) || n < 1) {
      status.replaceChildren(errorBox({ message: "the quantity must be a whole number above 0" }));
      return;
    }
    if (n > stockOf(v)) {
      status.replaceChildren(errorBox({ message: `only ${stockOf(v)} left in stock` }));
      return;
    }
    cart.add(lineOf(p, v), n);
    status.replaceChildren(notice(`Added ${n} × ${lineOf(p, v).name} to the cart.`), h("p", {}, h("a", { href: "#/cart" }, "Go to the cart")));
  });
  refresh();
  main.replaceChildren(
    h("p", {}, h("a", { href: "#/" }, "← Shop")),
    h("article", { class: "layout" },
      h("div", { class: "thumb large", role: "img", "aria-label": `${p.name} (no photo in the demo)` }, initial(p.name)),
      h("div", {}, h("h1", {}, p.name),
        p.compare_price ? h("p", { class: "muted" }, "Was ", money(p.compare_price, p.currency)) : null,
        h("p", {}, p.description || p.short_description), h("p", { class: "muted" }, `SKU ${p.sku}`), form)));
}
