// Starts the vendored Swagger UI (web/swagger.py) on the gateway's own OpenAPI document.
// Without deep links: Swagger UI puts each one inside the operation's button, a link
// in a button that screen readers and keyboards cannot use (axe: nested-interactive).
"use strict";

(() => {
  const root = document.getElementById("swagger-ui");
  const nameTheServerList = () => {
    // Swagger UI wraps the server list in an empty <label>: give the list its name.
    const servers = document.getElementById("servers");
    if (servers && !servers.hasAttribute("aria-label")) servers.setAttribute("aria-label", "Server");
  };
  window.ui = SwaggerUIBundle({
    url: root.dataset.specUrl,
    domNode: root,
    deepLinking: false,
    // Its highlighter's colours fall short of AA contrast on its dark background.
    syntaxHighlight: { activated: false },
    presets: [SwaggerUIBundle.presets.apis],
    onComplete: nameTheServerList,
  });
})();
