// The course pages (web/templates/courses/). A course's status timeline follows the
// server's events (/courses/{id}/timeline, server-sent events) and announces each change;
// the copy button puts the join link on the clipboard and says so.
"use strict";

(() => {
  const list = document.getElementById("timeline");
  if (list && window.EventSource) {
    const announce = document.getElementById("timeline-announce");
    const now = document.getElementById("course-status");
    const hub = document.getElementById("hub-link");
    const source = new EventSource(list.dataset.stream);
    const show = (data) => {
      const items = list.querySelectorAll("li[data-step]");
      items.forEach((item, index) => {
        const step = data.steps[index];
        if (!step) return;
        item.dataset.state = step.state;
        if (step.state === "current" || step.state === "stopped") {
          item.setAttribute("aria-current", "step");
        } else {
          item.removeAttribute("aria-current");
        }
        const stateName = "t" + step.state.charAt(0).toUpperCase() + step.state.slice(1);
        item.querySelector(".timeline__state").textContent = list.dataset[stateName] || step.state;
        item.querySelector(".timeline__note").textContent = step.note;
        item.querySelector(".timeline__time").textContent = step.time;
      });
      if (data.status !== list.dataset.status) {
        list.dataset.status = data.status;
        now.textContent = data.label;
        now.className = "status status--" + data.status;
        announce.textContent = list.dataset.tNow + " " + data.label;
        // What the page offers may differ now (the join link once approved, ...).
        const reload = document.getElementById("timeline-reload");
        if (reload) reload.hidden = false;
      }
      if (hub) {
        const link = hub.querySelector("a");
        if (data.hub_url) {
          link.href = data.hub_url;
          hub.hidden = false;
        } else {
          hub.hidden = true;
        }
      }
      if (data.final) source.close();
    };
    source.addEventListener("status", (event) => show(JSON.parse(event.data)));
    source.addEventListener("end", () => source.close());
  }

  document.querySelectorAll("button[data-copy]").forEach((button) => {
    const input = document.getElementById(button.dataset.copy);
    const status = document.getElementById("copy-status");
    if (!input || !navigator.clipboard) return;
    button.hidden = false;
    button.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(input.value);
        status.textContent = button.dataset.copied;
      } catch {
        input.focus();
        input.select();
        status.textContent = button.dataset.failed;
      }
    });
  });
})();
