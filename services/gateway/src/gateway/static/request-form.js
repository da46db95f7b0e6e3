// The request form and the change form (web/templates/requests/): the course's time
// zone preselected from the browser, the policy's limits checked while the person
// types (the rule's words come with the page, in its language, as data-* attributes),
// a preset filling in its resources, and the answer to a change re-read while it waits.
// The server checks everything again; this only tells earlier.
"use strict";

(() => {
  const UNITS = { GiB: 1024 ** 3, MiB: 1024 ** 2 };
  const form = document.querySelector("[data-request-form]");
  if (!form) return;
  const byId = (id) => document.getElementById(id);

  // --- the time zone: the browser's, where the page left the choice to it
  const zone = byId("timezone");
  const detected = (() => {
    try {
      return Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch {
      return "";
    }
  })();
  if (zone && zone.hasAttribute("data-detect-zone") && detected) {
    if ([...zone.options].some((option) => option.value === detected)) zone.value = detected;
  }

  // A moment the server gave in UTC (the change form's end), shown in the chosen zone
  // until the person edits it.
  const instants = [...form.querySelectorAll("fieldset[data-utc]")].filter((f) => f.dataset.utc);
  const edited = new Set();
  const showInZone = () => {
    for (const fieldset of instants) {
      const [day, hour] = fieldset.querySelectorAll("input");
      if (edited.has(day) || edited.has(hour)) continue;
      const parts = {};
      const format = new Intl.DateTimeFormat("en-CA", {
        timeZone: zone.value, year: "numeric", month: "2-digit", day: "2-digit",
        hour: "2-digit", minute: "2-digit", hourCycle: "h23",
      });
      for (const part of format.formatToParts(new Date(fieldset.dataset.utc))) {
        parts[part.type] = part.value;
      }
      day.value = `${parts.year}-${parts.month}-${parts.day}`;
      hour.value = `${parts.hour}:${parts.minute}`;
    }
  };
  if (zone && instants.length) {
    for (const fieldset of instants) {
      for (const input of fieldset.querySelectorAll("input")) {
        input.addEventListener("input", () => edited.add(input));
      }
    }
    showInZone();
    zone.addEventListener("change", showInZone);
  }

  // --- live checks
  const say = (id, text) => {
    const input = byId(id);
    const message = byId(`${id}-error`);
    if (!message) return;
    message.textContent = text;
    const field = message.closest(".field, fieldset");
    if (text) {
      input?.setAttribute("aria-invalid", "true");
      field?.classList.add("field--error");
    } else {
      input?.removeAttribute("aria-invalid");
      field?.classList.remove("field--error");
    }
  };
  const number = (text) => {
    const value = Number(String(text).trim().replace(",", "."));
    return String(text).trim() === "" || Number.isNaN(value) ? null : value;
  };

  const checkBounds = (input) => {
    const data = input.dataset;
    let value = number(input.value);
    if (value === null) return say(input.id, "");
    let min = number(data.min ?? "");
    let max = number(data.max ?? "");
    if (data.unit) {
      value *= UNITS[byId(data.unit).value] || 1;
      min = number(data.minBytes ?? "");
      max = number(data.maxBytes ?? "");
    }
    if (max !== null && value > max && data.maxMessage) return say(input.id, data.maxMessage);
    if (min !== null && value < min && data.minMessage) return say(input.id, data.minMessage);
    return say(input.id, "");
  };
  const bounded = [...form.querySelectorAll("input[data-max], input[data-max-bytes]")];
  for (const input of bounded) {
    input.addEventListener("input", () => checkBounds(input));
    input.addEventListener("blur", () => checkBounds(input));
    if (input.dataset.unit) {
      // The bounds in the unit shown (the min/max attributes follow the unit).
      const unit = byId(input.dataset.unit);
      unit.addEventListener("change", () => {
        const per = UNITS[unit.value] || 1;
        for (const [bound, bytes] of [["min", input.dataset.minBytes], ["max", input.dataset.maxBytes]]) {
          if (bytes) input.setAttribute(bound, String(Number(bytes) / per));
        }
        checkBounds(input);
      });
    }
  }

  // The end after the start (and not longer than the policy allows): both in one zone.
  const wall = (prefix) => {
    const day = byId(`${prefix}_date`)?.value;
    const hour = byId(`${prefix}_time`)?.value || "00:00";
    if (!day) return null;
    const [y, m, d] = day.split("-").map(Number);
    const [hh, mm] = hour.split(":").map(Number);
    const at = Date.UTC(y, m - 1, d, hh, mm);
    return Number.isNaN(at) ? null : at;
  };
  for (const fieldset of form.querySelectorAll("fieldset[data-after]")) {
    const check = () => {
      const start = wall(fieldset.dataset.after);
      const end = wall("end");
      if (start === null || end === null) return say("end_date", "");
      if (end <= start) return say("end_date", fieldset.dataset.afterMessage);
      const days = Number(fieldset.dataset.maxDays);
      if (days && end - start > days * 86400000) {
        return say("end_date", fieldset.dataset.maxDaysMessage);
      }
      return say("end_date", "");
    };
    for (const id of ["start_date", "start_time", "end_date", "end_time"]) {
      const input = byId(id);
      input?.addEventListener("input", check);
      input?.addEventListener("blur", check);
    }
  }

  // --- a preset fills in its resources; "my own image" shows the image field
  const custom = form.querySelector("[data-custom-image]");
  const environments = [...form.querySelectorAll("input[name='environment']")];
  const showImage = () => {
    if (custom) custom.hidden = !byId("env-custom")?.checked;
  };
  for (const radio of environments) {
    radio.addEventListener("change", () => {
      showImage();
      const data = radio.dataset;
      if (!radio.checked || data.cpu === undefined) return;
      const set = (id, value) => {
        const input = byId(id);
        if (input && value !== undefined) input.value = value;
      };
      set("cpu", data.cpu);
      set("memory", data.memory);
      set("memory_unit", data.memoryUnit);
      set("storage", data.storage);
      set("storage_unit", data.storageUnit);
      set("gpus", data.gpus);
      for (const id of ["memory_unit", "storage_unit"]) {
        byId(id)?.dispatchEvent(new Event("change")); // the bounds follow the unit
      }
      for (const input of bounded) checkBounds(input);
    });
  }
  showImage();

  // --- the answer to a change, re-read while it waits for governance; once answered,
  // the page again (the course's values and the form follow the answer)
  const answer = byId("change-answer");
  if (answer && answer.hasAttribute("data-refresh-while-pending")) {
    const poll = async () => {
      try {
        const reply = await fetch(window.location.pathname, { credentials: "same-origin" });
        if (reply.ok) {
          const page = new DOMParser().parseFromString(await reply.text(), "text/html");
          const fresh = page.getElementById("change-answer");
          if (fresh && !fresh.hasAttribute("data-refresh-while-pending")) {
            window.location.replace(window.location.pathname);
            return;
          }
        }
      } catch {
        // offline for a moment: try again
      }
      window.setTimeout(poll, 2000);
    };
    window.setTimeout(poll, 2000);
  }
})();
