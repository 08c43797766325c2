/** The part of autocannon 8's API the benchmarks use (the package ships no types). */
declare module "autocannon" {
  export interface Options {
    readonly url: string
    readonly connections?: number
    /** Seconds. */
    readonly duration?: number
    readonly headers?: Record<string, string>
    /** Per-request timeout in seconds. */
    readonly timeout?: number
    readonly method?: string
    readonly body?: string | Buffer
  }
  /** Percentiles and averages of one measured quantity. */
  export interface Histogram {
    readonly average: number
    readonly mean: number
    readonly stddev: number
    readonly min: number
    readonly max: number
    readonly p50: number
    readonly p90: number
    readonly p99: number
  }
  export interface Result {
    readonly requests: Histogram
    /** Milliseconds, resolution 1 ms. */
    readonly latency: Histogram
    readonly throughput: Histogram
    /** Connection errors, timeouts included. */
    readonly errors: number
    readonly timeouts: number
    readonly non2xx: number
  }
  export default function autocannon(options: Options): Promise<Result>
}
