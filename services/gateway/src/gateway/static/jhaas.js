// Every page (web/templates/base.html). A form that came back with problems:
// its error summary takes the focus, so a screen reader reads it first and a
// keyboard user starts from it; its links move the focus to their field.
"use strict";

(() => {
  const summary = document.querySelector("[data-focus-on-load]");
  if (summary) summary.focus();
  document.addEventListener("click", (event) => {
    const link = event.target.closest(".error-summary a[href^='#']");
    if (!link) return;
    const field = document.getElementById(link.getAttribute("href").slice(1));
    if (!field) return;
    event.preventDefault();
    field.focus();
    field.scrollIntoView({ block: "center" });
  });
})();
