/**
 * Server-rendered HTML: template literals and one escaping rule. `html`
 * escapes every interpolated value unless it is already Html (the output of
 * another `html` call), so page code cannot forget to escape.
 */
export class Html {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toString(): string {
    return this.text;
  }
}

export function esc(value: unknown): string {
  return String(value ?? "").replace(/[&<>"'`]/g, (c) => `&#${c.charCodeAt(0)};`);
}

type Part = Html | string | number | null | undefined | readonly (Html | string)[];

export function html(strings: TemplateStringsArray, ...values: Part[]): Html {
  let out = strings[0] ?? "";
  values.forEach((v, i) => {
    if (Array.isArray(v)) out += v.map((x) => (x instanceof Html ? x.text : esc(x))).join("");
    else if (v instanceof Html) out += v.text;
    else out += esc(v);
    out += strings[i + 1] ?? "";
  });
  return new Html(out);
}

const CSS = `
*{box-sizing:border-box}body{font:16px/1.45 system-ui,sans-serif;margin:0;color:#1b1b1b;background:#f6f7f9}
header{background:#1d3557;color:#fff;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.8rem;align-items:center}
header a{color:#fff;text-decoration:none;font-weight:600}header .who{margin-left:auto;font-weight:400}
header form{display:inline}header button{background:none;border:1px solid #fff;color:#fff;border-radius:4px;padding:.2rem .6rem}
main{padding:1rem;max-width:72rem;margin:auto}h1{font-size:1.4rem;margin:.2rem 0 1rem}
table{border-collapse:collapse;width:100%;background:#fff}th,td{text-align:left;padding:.45rem;border-bottom:1px solid #ddd;vertical-align:top}
.state{font-weight:600}.bad{color:#a4161a}.ok{color:#2b9348}.muted{color:#666;font-size:.9rem}
form.inline{display:inline}button,input[type=submit]{font:inherit;padding:.35rem .8rem;border-radius:4px;border:1px solid #1d3557;background:#1d3557;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1d3557}input,textarea,select{font:inherit;padding:.35rem;max-width:100%}
label{display:block;margin:.6rem 0 .2rem;font-weight:600}.card{background:#fff;padding:1rem;border-radius:6px;margin-bottom:1rem}
.flash{padding:.6rem 1rem;border-radius:4px;margin-bottom:1rem;background:#e9f5ec}.flash.error{background:#fde8e8}
img.thumb{width:96px;border:1px solid #ccc;background:#fff}.filters input,.filters select{margin-right:.4rem}
@media (max-width:640px){table,thead,tbody,tr,td,th{display:block}thead{display:none}tr{background:#fff;margin-bottom:.8rem;border:1px solid #ddd;border-radius:6px}td{border:none;padding:.3rem .6rem}td[data-label]::before{content:attr(data-label) ": ";font-weight:600}td:empty{display:none}}
`;

export interface PageOptions {
  readonly title: string;
  readonly user?: { name: string; admin: boolean } | undefined;
  readonly csrf?: string | undefined;
  readonly flash?: { text: string; error?: boolean } | undefined;
  /** Seconds between reloads (live status without JavaScript). */
  readonly refresh?: number | undefined;
}

export function page(o: PageOptions, body: Html): Html {
  const nav =
    o.user === undefined
      ? html``
      : html`<a href="/outbox">Outbox</a><a href="/inbox">Inbox</a><a href="/send">Send</a>${o.user.admin ? html`<a href="/status">Status</a>` : ""}
<span class="who">${o.user.name}${o.user.admin ? " (admin)" : ""}</span>
<form method="post" action="/signout"><input type="hidden" name="_csrf" value="${o.csrf ?? ""}"><button type="submit">Sign out</button></form>`;
  return html`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
${o.refresh !== undefined ? html`<meta http-equiv="refresh" content="${o.refresh}">` : ""}
<title>${o.title} · faxbridge</title><style>${new Html(CSS)}</style></head>
<body><header><a href="/">faxbridge</a>${nav}</header>
<main>${o.flash !== undefined ? html`<div class="flash${o.flash.error === true ? " error" : ""}" role="status">${o.flash.text}</div>` : ""}<h1>${o.title}</h1>
${body}</main></body></html>`;
}
