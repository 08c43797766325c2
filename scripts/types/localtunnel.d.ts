/** The part of localtunnel 2's client API the benchmarks use (the package ships no types). */
declare module "localtunnel" {
  export interface Options {
    /** The local port to forward to. */
    readonly port: number
    /** The localtunnel server, e.g. `http://127.0.0.1:1234`. */
    readonly host?: string
    readonly subdomain?: string
    /** The local host to forward to (default localhost). */
    readonly local_host?: string
  }
  export interface Tunnel {
    readonly url: string
    close(): void
  }
  export default function localtunnel(options: Options): Promise<Tunnel>
}
