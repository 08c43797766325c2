/**
 * The tunnel endpoint for a relay base URL: `${relayUrl}/tunnel?hostId=...`
 * with http(s) turned into ws(s).
 */
export const tunnelUrl = (relayUrl: string, hostId: string): string => {
  const url = new URL(relayUrl)
  if (url.protocol === "http:") url.protocol = "ws:"
  else if (url.protocol === "https:") url.protocol = "wss:"
  url.pathname = `${url.pathname.replace(/\/+$/, "")}/tunnel`
  url.search = ""
  url.hash = ""
  url.searchParams.set("hostId", hostId)
  return url.toString()
}

/**
 * The relay URL as it may appear in logs: no credentials, no query string
 * (a token could hide in either).
 */
export const displayUrl = (relayUrl: string): string => {
  try {
    const url = new URL(relayUrl)
    url.username = ""
    url.password = ""
    url.search = ""
    url.hash = ""
    return url.toString()
  } catch {
    return "<invalid url>"
  }
}
