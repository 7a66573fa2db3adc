import type { GroupState } from "../rc/limiter.js";
import { JOB_STATES } from "../store/outbound.js";
import { html, page, type Html, type PageOptions } from "./html.js";
import type { FaxView, InboundView } from "./views-data.js";

/** The console's pages: pure functions from data to HTML. */

type Base = Omit<PageOptions, "title">;

function hidden(csrf: string | undefined): Html {
  return html`<input type="hidden" name="_csrf" value="${csrf ?? ""}">`;
}

function when(iso: string | null): string {
  return iso === null ? "" : iso.slice(0, 19).replace("T", " ") + " UTC";
}

export function signInPage(o: Base & { next: string; error?: string | undefined }): Html {
  return page(
    { ...o, title: "Sign in", flash: o.error !== undefined ? { text: o.error, error: true } : undefined },
    html`<form method="post" action="/signin" class="card">
${hidden(o.csrf)}<input type="hidden" name="next" value="${o.next}">
<label for="username">User name</label><input id="username" name="username" autocomplete="username" required>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
<p><button type="submit">Sign in</button></p></form>`,
  );
}

export interface OutboxFilters {
  state: string;
  sender: string;
  number: string;
}

function statusClass(s: string): string {
  return /Failed|Cancelled/.test(s) ? "bad" : s === "Delivered" || s === "Sent" ? "ok" : "";
}

function jobActions(f: FaxView, csrf: string | undefined): Html {
  const cancel = ["received", "parsed", "submitted"].includes(f.state)
    ? html`<form class="inline" method="post" action="/outbox/${f.id}/cancel">${hidden(csrf)}<button class="secondary" type="submit">Cancel</button></form>`
    : html``;
  const resend = f.rcMessageId !== null ? html`<form class="inline" method="post" action="/outbox/${f.id}/resend">${hidden(csrf)}<button class="secondary" type="submit">Resend</button></form>` : html``;
  const retry =
    f.rcMessageId === null && ["received", "parsed", "submitting", "failed"].includes(f.state)
      ? html`<form class="inline" method="post" action="/outbox/${f.id}/retry">${hidden(csrf)}<button class="secondary" type="submit">Retry now</button></form>`
      : html``;
  return html`${retry} ${cancel} ${resend}`;
}

export function outboxPage(o: Base & { faxes: FaxView[]; filters: OutboxFilters; next: string | null }): Html {
  const f = o.filters;
  const options = ["", ...JOB_STATES].map((s) => html`<option value="${s}"${s === f.state ? " selected" : ""}>${s === "" ? "any state" : s}</option>`);
  const rows = o.faxes.map(
    (x) => html`<tr data-fax="${x.id}">
<td data-label="Fax"><a href="/outbox/${x.id}">${x.id}</a><div class="muted">${when(x.receivedAt)}</div></td>
<td data-label="State" class="state">${x.state}<div class="muted">${x.stateText}</div></td>
<td data-label="Sender">${x.sender || "<>"}</td>
<td data-label="Recipients">${x.recipients.map((r) => html`<div>${r.number}: <span class="recipient-status ${statusClass(r.status)}">${r.status}</span>${r.error !== null ? html`<div class="muted">${r.error}</div>` : ""}</div>`)}</td>
<td data-label="Pages">${x.pages ?? ""}</td>
<td data-label="Error" class="bad">${x.error ?? ""}</td>
<td>${jobActions(x, o.csrf)}</td></tr>`,
  );
  const q = (after: string): string => `/outbox?${new URLSearchParams({ state: f.state, sender: f.sender, number: f.number, after }).toString()}`;
  return page(
    { ...o, title: "Outbox", refresh: 5 },
    html`<form method="get" action="/outbox" class="filters card"><select name="state" aria-label="state">${options}</select>
<input name="sender" placeholder="sender" value="${f.sender}" aria-label="sender"><input name="number" placeholder="number" value="${f.number}" aria-label="number">
<button type="submit">Filter</button></form>
${o.faxes.length === 0 ? html`<p>No faxes.</p>` : html`<table><thead><tr><th>Fax</th><th>State</th><th>Sender</th><th>Recipients</th><th>Pages</th><th>Error</th><th></th></tr></thead><tbody>${rows}</tbody></table>`}
${o.next !== null ? html`<p><a href="${q(o.next)}">Older faxes →</a></p>` : ""}
<p class="muted">This page reloads every 5 seconds.</p>`,
  );
}

export function faxPage(o: Base & { fax: FaxView }): Html {
  const x = o.fax;
  return page(
    { ...o, title: `Fax ${x.id}`, refresh: ["notified", "cancelled"].includes(x.state) ? undefined : 5 },
    html`<div class="card"><p class="state">${x.state}: ${x.stateText}</p>
<p>Sender: ${x.sender || "<>"} · submitted by ${x.submittedBy ?? "mail"} · ${when(x.receivedAt)}</p>
<p>Pages: ${x.pages ?? "not known yet"} · Documents: ${x.documents.map((d) => d.filename).join(", ") || "none"}</p>
<table><thead><tr><th>Number</th><th>Status</th><th>Error</th></tr></thead><tbody>
${x.recipients.map((r) => html`<tr><td data-label="Number">${r.number}</td><td data-label="Status" class="recipient-status ${statusClass(r.status)}">${r.status}</td><td data-label="Error">${r.error ?? ""}</td></tr>`)}
</tbody></table>
${x.error !== null ? html`<p class="bad">${x.error}</p>` : ""}
<p>${jobActions(x, o.csrf)}</p></div>`,
  );
}

export function inboxPage(o: Base & { faxes: InboundView[]; next: string | null }): Html {
  const rows = o.faxes.map(
    (x) => html`<tr data-fax="${x.id}">
<td><a href="/inbox/${x.id}/document" target="_blank" rel="noopener"><img class="thumb" src="/inbox/${x.id}/thumb.png" alt="first page of the fax from ${x.from || "unknown"}" loading="lazy"></a></td>
<td data-label="From">${x.from || "withheld"}${x.fromName !== null ? html` <span class="muted">(${x.fromName})</span>` : ""}<div class="muted">${when(x.receivedAt)}</div></td>
<td data-label="To">${x.to.join(", ")}</td><td data-label="Pages">${x.pages ?? ""}</td>
<td data-label="Mailed to">${x.mailTo.join(", ")}<div class="muted">${x.state}${x.error !== null ? html` · <span class="bad">${x.error}</span>` : ""}</div></td>
<td><a class="open-pdf" href="/inbox/${x.id}/document" target="_blank" rel="noopener">Open PDF</a>
<form class="inline" method="post" action="/inbox/${x.id}/redeliver">${hidden(o.csrf)}<button class="secondary" type="submit">Mail again</button></form>
<form class="inline" method="post" action="/inbox/${x.id}/forward">${hidden(o.csrf)}<input name="to" placeholder="fax number" aria-label="forward to number" size="14" required><button class="secondary" type="submit">Forward</button></form></td></tr>`,
  );
  return page(
    { ...o, title: "Inbox" },
    html`${o.faxes.length === 0 ? html`<p>No received faxes.</p>` : html`<table><thead><tr><th></th><th>From</th><th>To</th><th>Pages</th><th>Mailed to</th><th></th></tr></thead><tbody>${rows}</tbody></table>`}
${o.next !== null ? html`<p><a href="/inbox?after=${o.next}">Older faxes →</a></p>` : ""}`,
  );
}

export function sendPage(o: Base & { senders: readonly string[]; error?: string | undefined; values?: { to: string; coverText: string } }): Html {
  return page(
    { ...o, title: "Send a fax", flash: o.error !== undefined ? { text: o.error, error: true } : o.flash },
    o.senders.length === 0
      ? html`<p>Your account has no sender address, so it cannot send faxes. Ask an administrator to add one to web.users.</p>`
      : html`<form method="post" action="/send?_csrf=${encodeURIComponent(o.csrf ?? "")}" enctype="multipart/form-data" class="card">
<p class="muted">Sent as ${o.senders[0] ?? ""}; the report is mailed there.</p>
<label for="to">Fax numbers (one per line or comma-separated)</label><textarea id="to" name="to" rows="2" required>${o.values?.to ?? ""}</textarea>
<label for="file">Documents (PDF, Word, images, text)</label><input id="file" name="file" type="file" multiple required>
<label for="coverText">Cover page text (optional)</label><textarea id="coverText" name="coverText" rows="3">${o.values?.coverText ?? ""}</textarea>
<p><button type="submit">Send</button></p></form>`,
  );
}

export function statusPage(
  o: Base & {
    outbound: Record<string, number>;
    inbound: Record<string, number>;
    limits: Record<string, GroupState>;
    checks: Record<string, string>;
    errors: { id: string; when: string; text: string; kind: string }[];
    doctor: { at: number; checks: readonly { name: string; status: string; message: string; fix?: string }[] } | undefined;
  },
): Html {
  const doctor = o.doctor;
  const counts = (c: Record<string, number>): Html[] => Object.entries(c).map(([k, v]) => html`<tr><td>${k}</td><td>${v}</td></tr>`);
  const now = Date.now();
  return page(
    { ...o, title: "Status" },
    html`<div class="card"><h2>Health</h2><table><tbody>${Object.entries(o.checks).map(([k, v]) => html`<tr><td>${k}</td><td class="${v === "ok" ? "ok" : "bad"}">${v}</td></tr>`)}</tbody></table></div>
<div class="card"><h2>Queue</h2><table><thead><tr><th>Outbound state</th><th>Jobs</th></tr></thead><tbody>${counts(o.outbound)}</tbody></table>
<table><thead><tr><th>Received faxes</th><th>Count</th></tr></thead><tbody>${counts(o.inbound)}</tbody></table></div>
<div class="card"><h2>RingCentral rate limits</h2><table><thead><tr><th>Group</th><th>Remaining</th><th>Waiting</th><th>Held</th></tr></thead><tbody>
${Object.entries(o.limits).map(([g, s]) => html`<tr><td>${g}</td><td>${s.remaining} of ${s.limit} per ${s.windowSeconds} s</td><td>${s.waiting}</td><td>${s.heldUntil > now ? `for ${Math.ceil((s.heldUntil - now) / 1000)} s` : "no"}</td></tr>`)}
</tbody></table></div>
<div class="card"><h2>Recent errors</h2>${o.errors.length === 0 ? html`<p>None.</p>` : html`<table><tbody>${o.errors.map((e) => html`<tr><td>${e.when}</td><td>${e.kind} <a href="${e.kind === "sent" ? "/outbox/" : "/inbox#"}${e.id}">${e.id}</a></td><td class="bad">${e.text}</td></tr>`)}</tbody></table>`}</div>
<div class="card"><h2>Doctor</h2>${
      doctor === undefined
        ? html`<p>The doctor checks the configuration, data directory, RingCentral login and permissions, the mail server and exposure (as <code>faxbridge doctor</code>).</p>`
        : html`<p class="muted">Run at ${new Date(doctor.at).toISOString().slice(0, 19).replace("T", " ")} UTC</p><table class="doctor"><tbody>${doctor.checks.map(
            (c) => html`<tr><td>${c.name}</td><td class="${c.status === "ok" ? "ok" : "bad"}">${c.status}</td><td>${c.message}${c.fix !== undefined ? html`<div class="muted">${c.fix}</div>` : ""}</td></tr>`,
          )}</tbody></table>`
    }
<form method="post" action="/status/doctor"><input type="hidden" name="_csrf" value="${o.csrf ?? ""}"><button type="submit">Run the doctor</button></form></div>`,
  );
}

export function messagePage(o: Base & { title: string; text: string; action?: Html }): Html {
  return page(o, html`<div class="card"><p>${o.text}</p>${o.action ?? ""}</div>`);
}
