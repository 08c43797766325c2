/**
 * The relay's few HTML pages, for a person's browser (a request whose `Accept` names
 * `text/html`): an error, with how to get a token when one is missing or is for another org, and
 * the page after signing out. API clients get JSON (`ErrorResponse`). Small, no script, no
 * outside resources, and a Content-Security-Policy that allows nothing else.
 */
import * as http from "node:http"
import type { HttpError } from "./ErrorResponse.js"

/** Whether a client asked for HTML: a browser's navigation does, its `fetch()` does not (`*\/*`). */
export const prefersHtml = (accept: string | undefined): boolean => accept !== undefined && /\btext\/html\b/i.test(accept)

export const htmlHeaders = {
  "content-type": "text/html; charset=utf-8",
  "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "cache-control": "no-store"
} as const

const escape = (text: string) =>
  text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", "\"": "&quot;", "'": "&#39;" })[c]!)

const page = (title: string, body: string) =>
  `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escape(title)}</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}code{background:#f2f2f2;padding:0 .25rem}small{color:#666}</style>
</head><body><main>
${body}
</main></body></html>
`

/**
 * An error as a page. A missing or refused token (401, 403 for another org) says what to do:
 * get a token for the host's org (`npx effect-relay token --org ORG` where the relay's secret is)
 * and open the address with `?token=` added, or paste it into the form (a GET of the same
 * address, which logs in on a host's hostname).
 */
export const errorPage = (error: HttpError, org: string | undefined): string => {
  const reason = `<p><small>${error.status} ${escape(error.error)}: ${escape(error.message)}</small></p>`
  if (error.error !== "unauthorized" && error.error !== "forbidden") {
    return page(`${error.status} ${http.STATUS_CODES[error.status] ?? ""}`, `<h1>${escape(http.STATUS_CODES[error.status] ?? "Error")}</h1>\n<p>${escape(error.message)}</p>`)
  }
  const orgText = org === undefined ? "ORG" : org
  return page(
    "This host needs a token",
    `<h1>This host needs a token</h1>
<p>${error.error === "forbidden" ? `The token given is not for org <b>${escape(orgText)}</b>.` : "This page is served through a relay, which lets in only people with a token."}
Ask whoever runs the relay for a token for org <b>${escape(orgText)}</b>; with the relay's secret, it is made by</p>
<pre><code>npx effect-relay token --org ${escape(orgText)}</code></pre>
<p>Then open this address with <code>?token=</code> and the token added, or paste the token here:</p>
<form method="get"><input name="token" type="password" autocomplete="off" required aria-label="token"> <button>Open</button></form>
${reason}`
  )
}

/** What `/_logout` answers. */
export const signedOutPage = (hostname: string | undefined): string =>
  page(
    "Signed out",
    `<h1>Signed out</h1>\n<p>This browser no longer has a session${hostname === undefined ? "" : ` for <b>${escape(hostname)}</b>`}. Open a page with <code>?token=</code> to sign in again.</p>`
  )
