/**
 * The client half of bench:forward's "localtunnel" system, in a process of its
 * own: localtunnel's npm client opens the tunnel `bench` on a localtunnel
 * server and forwards what arrives to the target on 127.0.0.1. Prints
 * `{"url": ...}` once the tunnel is open.
 *
 * argv: targetPort serverUrl (http://127.0.0.1:port)
 */
import localtunnel from "localtunnel"

const [targetPort, server] = process.argv.slice(2)
if (!Number.isInteger(Number(targetPort)) || server === undefined) {
  throw new Error(`usage: localtunnel-client <targetPort> <http://server:port>, got ${process.argv.slice(2).join(" ")}`)
}

const tunnel = await localtunnel({ port: Number(targetPort), host: server, subdomain: "bench", local_host: "127.0.0.1" })
console.log(JSON.stringify({ url: tunnel.url }))
