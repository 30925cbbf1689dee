// Starts Swagger UI on the gateway's own OpenAPI document. A file of its own,
// not an inline script, so the page's Content-Security-Policy allows only
// scripts the gateway serves.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "/api/v1/openapi.json", // the servers entry, /api/v1, is on this gateway too: "Try it out" calls it
    dom_id: "#swagger-ui",
    deepLinking: true,
    displayRequestDuration: true,
    defaultModelsExpandDepth: 0,
    docExpansion: "list",
    // No call to the public validator service: the page works offline.
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
