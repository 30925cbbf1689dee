// A tiny storefront flow with the typed client: log in, find a product in
// stock, check out, read the order back. `tsc --noEmit` (make test) checks it
// against the generated types, so a change to the API that breaks it breaks
// the build.
import { mercatoClient, type Schema } from "./index";

export async function checkout(gatewayUrl: string, email: string, password: string): Promise<Schema<"Order">> {
  let accessToken: string | undefined;
  const api = mercatoClient(gatewayUrl, () => accessToken);

  const login = await api.POST("/auth/login", { body: { email, password } });
  if (login.error) throw new Error(`login: ${login.error.error.code}`);
  accessToken = login.data.access_token;

  const products = await api.GET("/products", { params: { query: { in_stock: true, sort: "price", page_size: 1 } } });
  if (products.error) throw new Error(`products: ${products.error.error.message}`);
  const product = products.data.items[0];
  if (!product) throw new Error("nothing in stock");

  const placed = await api.POST("/orders", {
    params: { header: { "Idempotency-Key": `checkout-${product.id}` } },
    body: {
      items: [{ product_id: product.id, quantity: 1 }],
      shipping_address: { street: "1 Main St", city: "Springfield", state: "IL", zip_code: "62701", country: "US" },
      payment: { method: "card", card: { number: "4242424242424242", exp_month: 12, exp_year: 2030, cvc: "123" } },
    },
  });
  if (placed.error) {
    // Every error is the one error body; details say more (the line out of stock, why a card was refused).
    throw new Error(`checkout: ${placed.error.error.code} ${JSON.stringify(placed.error.error.details ?? {})}`);
  }

  const order = await api.GET("/orders/{id}", { params: { path: { id: placed.data.order.id } } });
  if (order.error) throw new Error(`order: ${order.error.error.code}`);
  return order.data.order; // status "pending", "confirmed" once the payment's webhook lands
}
