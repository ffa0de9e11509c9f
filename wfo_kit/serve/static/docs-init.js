// Swagger UI for wfo serve, served by the server itself (no CDN). The schema and every call need
// an API token: asked once per browser tab, kept in sessionStorage, sent as a bearer token.
(function () {
  "use strict";
  var KEY = "wfo-api-token";
  var token = window.sessionStorage.getItem(KEY);
  if (!token) {
    token = window.prompt("API token (from `wfo users add NAME --role ROLE`)") || "";
    window.sessionStorage.setItem(KEY, token);
  }
  window.ui = window.SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    validatorUrl: null, // never send the schema to an outside validator
    deepLinking: true,
    presets: [window.SwaggerUIBundle.presets.apis],
    requestInterceptor: function (request) {
      var url = new URL(request.url, window.location.href);
      if (url.origin === window.location.origin) {
        request.headers.Authorization = "Bearer " + token;
      }
      return request;
    },
  });
})();
