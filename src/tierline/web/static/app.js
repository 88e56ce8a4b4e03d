// tierline dashboard: small, dependency-free. Every write goes to the /v1 API with the session
// cookie and its CSRF token; the server checks the role and records the actor.
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const $$ = (sel, root) => Array.from((root || document).querySelectorAll(sel));
  const csrf = () => ($('meta[name="csrf-token"]') || {}).content || "";

  function toast(text) {
    const box = $("#status");
    if (!box) return;
    box.textContent = text;
    clearTimeout(toast.timer);
    toast.timer = setTimeout(() => { box.textContent = ""; }, 8000);
  }

  // Ask before any write; resolves true only on an explicit "Confirm".
  function confirmAction(text) {
    const dialog = $("#confirm");
    if (!dialog || typeof dialog.showModal !== "function") return Promise.resolve(window.confirm(text));
    $("#confirm-text").textContent = text;
    return new Promise((resolve) => {
      dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
      dialog.returnValue = "cancel";
      dialog.showModal();
      $("#confirm-cancel").focus();
    });
  }

  async function api(method, url, body, extraHeaders) {
    const headers = Object.assign({ "X-CSRF-Token": csrf(), Accept: "application/json" }, extraHeaders || {});
    const init = { method, headers, credentials: "same-origin" };
    if (body instanceof FormData) init.body = body;
    else if (body !== undefined) { headers["Content-Type"] = "application/json"; init.body = JSON.stringify(body); }
    const response = await fetch(url, init);
    const type = response.headers.get("content-type") || "";
    const data = type.includes("json") ? await response.json() : await response.text();
    if (!response.ok) {
      const detail = (data && data.detail) || (data && data.title) || response.statusText;
      const error = new Error(`${response.status}: ${detail}`);
      error.status = response.status;
      throw error;
    }
    return data;
  }

  function newKey() {
    const bytes = new Uint8Array(12);
    crypto.getRandomValues(bytes);
    return "dash-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- date bar: the month slider moves the date; changes show the new date -------------------
  function dateBar() {
    const form = $("#datebar");
    if (!form) return;
    const slider = $("#month", form), date = $("#date", form), out = $("#month-out");
    const submit = () => form.requestSubmit ? form.requestSubmit() : form.submit();
    if (slider) {
      const months = (slider.dataset.months || "").split(",");
      const label = (iso) => new Date(iso + "T00:00:00Z").toLocaleDateString("en-GB", { month: "short", year: "numeric", timeZone: "UTC" });
      slider.addEventListener("input", () => { const iso = months[+slider.value]; if (iso) { date.value = iso; if (out) out.textContent = label(iso); } });
      let timer = 0;  // keyboard steps fire "change" on every press: submit once they stop
      slider.addEventListener("change", () => { clearTimeout(timer); timer = setTimeout(submit, 450); });
    }
    $("#vintage", form) && $("#vintage", form).addEventListener("change", submit);
    $("#scenario", form) && $("#scenario", form).addEventListener("change", submit);
    date && date.addEventListener("change", () => { if (date.value) submit(); });
  }

  // ---- buttons that POST to the API after confirmation ------------------------------------------
  function postButtons() {
    $$("button[data-post]").forEach((button) => {
      button.addEventListener("click", async () => {
        if (!(await confirmAction(button.dataset.confirm || "Do this?"))) { toast("Cancelled."); return; }
        button.disabled = true;
        try {
          const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
          const headers = button.dataset.idem !== undefined ? { "Idempotency-Key": button.dataset.idem || newKey() } : {};
          const result = await api("POST", button.dataset.post, body, headers);
          toast(button.dataset.done || "Done.");
          const target = button.dataset.result && $(button.dataset.result);
          if (target) target.textContent = JSON.stringify(result, null, 2);
          if (button.dataset.reload !== undefined) setTimeout(() => location.reload(), 600);
        } catch (err) {
          toast(err.message);
          button.disabled = false;
        }
      });
    });
  }

  // ---- ledger: reserve form ----------------------------------------------------------------------
  function reserveForm() {
    const form = $("#reserve-form");
    if (!form) return;
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (!form.reportValidity()) return;
      const data = new FormData(form);
      const body = {
        account: data.get("account").trim(),
        tpp: Number(data.get("tpp")),
        effective_date: data.get("effective_date"),
        ttl_seconds: Number(data.get("ttl_hours") || 24) * 3600,
      };
      const text = `Reserve ${body.tpp.toLocaleString("en-US")} TPP on ${body.account} for a shipment dated ${body.effective_date}, held for ${data.get("ttl_hours") || 24} hours?`;
      if (!(await confirmAction(text))) { toast("Cancelled."); return; }
      try {
        const result = await api("POST", "/v1/ledger/reserve", body, { "Idempotency-Key": data.get("idempotency_key") });
        toast(`Held ${result.tpp.toLocaleString("en-US")} TPP on ${result.account} (hold ${result.hold_id}).`);
        setTimeout(() => { location.href = "/dashboard/ledger/account/" + encodeURIComponent(result.account); }, 700);
      } catch (err) { toast(err.message); }
    });
  }

  // ---- determination form ----------------------------------------------------------------------
  function determinationForm() {
    const add = $("#add-item");
    if (add) {
      add.hidden = false;
      add.addEventListener("click", () => {
        const rows = $$(".item-row");
        const last = rows[rows.length - 1];
        const copy = last.cloneNode(true);
        const n = rows.length + 1;
        $$("input, select", copy).forEach((el) => { if (el.tagName === "INPUT") el.value = ""; else el.selectedIndex = 0; });
        $$("[id]", copy).forEach((el) => { el.id = el.id.replace(/-\d+$/, "-" + n); });
        $$("label[for]", copy).forEach((el) => { el.htmlFor = el.htmlFor.replace(/-\d+$/, "-" + n); });
        $("legend", copy) && ($("legend", copy).textContent = "Line " + n);
        last.after(copy);
        $("input", copy).focus();
      });
    }
    const copy = $("#copy-link");
    if (copy) {
      copy.hidden = false;
      copy.addEventListener("click", async () => {
        const field = $("#share-link");
        try { await navigator.clipboard.writeText(field.value); toast("Link copied."); }
        catch (e) { field.select(); toast("Select the link and copy it."); }
      });
    }
  }

  // ---- screening: upload, progress, results ------------------------------------------------------
  function screening() {
    const form = $("#screen-form");
    if (form) {
      form.addEventListener("submit", async (event) => {
        event.preventDefault();
        if (!form.reportValidity()) return;
        const data = new FormData(form);
        if (!data.get("skip_invalid")) data.set("skip_invalid", "false");
        const button = $("button[type=submit]", form);
        button.disabled = true;
        $("#upload-status").textContent = "Uploading…";
        try {
          const job = await api("POST", "/v1/screenings", data);
          location.href = "/dashboard/screenings/" + encodeURIComponent(job.id);
        } catch (err) {
          $("#upload-status").textContent = err.message;
          button.disabled = false;
        }
      });
    }
    const panel = $("#job");
    if (!panel) return;
    const id = panel.dataset.job;
    const poll = async () => {
      try {
        const job = await api("GET", "/v1/screenings/" + encodeURIComponent(id));
        $("#job-status").textContent = job.status;
        $("#job-lines").textContent = job.lines_done.toLocaleString("en-US");
        const bar = $("#job-progress");
        if (job.status === "queued" || job.status === "running") { setTimeout(poll, 500); return; }
        if (bar) { bar.value = 1; bar.max = 1; }
        location.reload();
      } catch (err) { toast(err.message); }
    };
    if (panel.dataset.status === "queued" || panel.dataset.status === "running") poll();
    const table = $("#results");
    if (table) results(id, table);
  }

  function results(id, table) {
    const form = $("#filter-form");
    let offset = 0;
    const pageSize = 100;
    const load = async () => {
      const params = new URLSearchParams(new FormData(form));
      params.set("offset", offset);
      params.set("limit", pageSize);
      const data = await api("GET", `/dashboard/screenings/${encodeURIComponent(id)}/rows?` + params.toString());
      fillChoices(data.choices);
      const head = $("thead", table), body = $("tbody", table);
      head.innerHTML = "";
      const tr = document.createElement("tr");
      data.columns.forEach((c) => { const th = document.createElement("th"); th.scope = "col"; th.textContent = c; tr.appendChild(th); });
      head.appendChild(tr);
      body.innerHTML = "";
      data.rows.forEach((row) => {
        const line = document.createElement("tr");
        row.forEach((v) => { const td = document.createElement("td"); td.textContent = v === null ? "" : String(v); td.title = td.textContent; line.appendChild(td); });
        body.appendChild(line);
      });
      const end = Math.min(offset + data.rows.length, data.total);
      $("#results-count").textContent = `${data.total ? offset + 1 : 0}–${end} of ${data.total.toLocaleString("en-US")} matching lines (${data.all.toLocaleString("en-US")} in all)`;
      $("#prev-page").disabled = offset === 0;
      $("#next-page").disabled = end >= data.total;
    };
    const fillChoices = (choices) => {
      Object.entries(choices || {}).forEach(([name, values]) => {
        const select = $(`select[name="${name}"]`, form);
        if (!select || select.dataset.filled) return;
        values.filter((v) => v !== "").forEach((v) => { const o = document.createElement("option"); o.value = v; o.textContent = v; select.appendChild(o); });
        select.dataset.filled = "1";
      });
    };
    form.addEventListener("submit", (e) => { e.preventDefault(); offset = 0; load().catch((err) => toast(err.message)); });
    $$("select", form).forEach((s) => s.addEventListener("change", () => { offset = 0; load().catch((err) => toast(err.message)); }));
    $("#prev-page").addEventListener("click", () => { offset = Math.max(0, offset - pageSize); load(); });
    $("#next-page").addEventListener("click", () => { offset += pageSize; load(); });
    load().catch((err) => toast(err.message));
  }

  // ---- ledger: audit verification, read from the API after the page is up --------------------------
  async function verifyStatus() {
    const box = $("[data-verify]");
    if (!box) return;
    try {
      const result = await api("GET", "/v1/ledger/verify");
      box.className = result.ok ? "ok" : "error";
      box.textContent = result.ok
        ? `Audit trail verified: ${result.rows.toLocaleString("en-US")} hash-chained events, balances reconcile.`
        : `Audit verification found ${result.problems.length} problem(s): ` +
          result.problems.slice(0, 20).map((p) => Object.values(p).join(" ")).join("; ");
      if (!result.ok) box.setAttribute("role", "alert");
    } catch (err) { box.textContent = "The audit trail could not be verified: " + err.message; box.className = "error"; }
  }

  document.addEventListener("DOMContentLoaded", () => {
    verifyStatus();
    dateBar();
    postButtons();
    reserveForm();
    determinationForm();
    screening();
  });
})();
