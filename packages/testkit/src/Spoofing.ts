/** Every forwarding header a client can write to pass itself off as another address, scheme or site. */
export const spoofedForwardingHeaders = {
  "x-forwarded-for": "6.6.6.6",
  "x-forwarded-proto": "https",
  "x-forwarded-host": "bank.example",
  forwarded: "for=6.6.6.6;proto=https;host=bank.example",
  "x-real-ip": "6.6.6.6",
  "fly-client-ip": "6.6.6.6",
  "true-client-ip": "6.6.6.6",
  "x-forwarded-ssl": "on",
  "x-forwarded-port": "443",
  "x-forwarded-prefix": "/admin"
} as const
