// wfo serve pages: the only script (the Content-Security-Policy allows no other, and no inline
// script). Every text it writes goes through textContent, never innerHTML.
"use strict";

function followRun(el) {
  // The run page: poll the run's status while it waits or runs; reload when it ends.
  const url = "/ui/runs/" + encodeURIComponent(el.dataset.run) + "/status";
  const poll = async () => {
    try {
      const response = await fetch(url, { credentials: "same-origin", cache: "no-store" });
      if (response.status === 401) {
        window.location.reload(); // the session ended: the page sends to the sign-in form
        return;
      }
      if (response.ok) {
        const body = await response.json();
        if (body.status !== el.textContent) {
          el.textContent = body.status;
          el.className = "status status-" + body.status;
        }
        if (!["queued", "starting", "running"].includes(body.status)) {
          window.location.reload();
          return;
        }
      }
    } catch (e) {
      // the server is restarting or the network is down: try again
    }
    window.setTimeout(poll, 700);
  };
  window.setTimeout(poll, 500);
}

function liveValidation(form) {
  // The configuration form: send it to the server as it changes; show field errors, effective
  // values and their sources.
  const url = form.dataset.validate;
  const state = document.getElementById("check-state");
  let timer = null;
  let sent = 0;
  const check = async () => {
    const mine = ++sent;
    state.textContent = "checking…";
    const data = new URLSearchParams(new FormData(form));
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRF-Token": form.elements.csrf_token.value },
      body: data,
    });
    if (mine !== sent) return; // a later check is under way
    let body = null;
    try { body = await response.json(); } catch (e) { body = null; }
    if (!body || !("valid" in body)) {
      state.textContent = "cannot check now (HTTP " + response.status + ")";
      return;
    }
    for (const el of form.querySelectorAll("[data-error-for]")) el.textContent = "";
    for (const el of form.querySelectorAll(".field.invalid")) el.classList.remove("invalid");
    for (const error of body.errors) {
      const el = form.querySelector('[data-error-for="' + CSS.escape(error.field) + '"]');
      if (el) {
        el.textContent = error.message;
        el.closest(".field").classList.add("invalid");
        const details = el.closest("details");
        if (details) details.open = true;
      }
    }
    for (const [key, effective] of Object.entries(body.effective)) {
      const value = form.querySelector('[data-effective-for="' + CSS.escape(key) + '"]');
      const source = form.querySelector('[data-source-for="' + CSS.escape(key) + '"]');
      if (value) value.textContent = effective.value;
      if (source) source.textContent = effective.source;
    }
    state.textContent = body.valid
      ? "valid: the effective values below are what a run would use"
      : body.errors.length + " problem(s): " + body.errors.map((e) => e.field + ": " + e.message).join("; ");
    state.className = body.valid ? "check valid" : "check invalid";
    form.dataset.checked = body.valid ? "valid" : "invalid";
  };
  const later = () => {
    window.clearTimeout(timer);
    timer = window.setTimeout(check, 300);
  };
  form.addEventListener("input", later);
  form.addEventListener("change", later);
}

document.addEventListener("DOMContentLoaded", () => {
  const status = document.getElementById("run-status");
  if (status && status.dataset.active === "yes") followRun(status);
  const form = document.getElementById("config-form");
  if (form && form.dataset.validate) liveValidation(form);
});
