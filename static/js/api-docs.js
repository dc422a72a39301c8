// The API docs page (/api/docs): Swagger UI (static/vendor/swagger-ui/) over /api/openapi.json.
// No validator badge (it would load an image from validator.swagger.io, which the CSP refuses).
(function () {
  "use strict";
  function start() {
    var root = document.getElementById("swagger-ui");
    if (!root || typeof window.SwaggerUIBundle !== "function") return;
    window.SwaggerUIBundle({
      url: root.dataset.url,
      domNode: root,
      deepLinking: true,
      validatorUrl: null,
      tryItOutEnabled: false,
      presets: [window.SwaggerUIBundle.presets.apis],
      layout: "BaseLayout",
    });
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
