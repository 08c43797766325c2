/**
 * A small seeded PRNG (mulberry32) and the choices the fuzz generators make with it. Everything a
 * generator produces comes from one of these, so a seed replays a run's inputs exactly.
 */

export interface Prng {
  readonly seed: number
  /** A float in [0, 1). */
  readonly next: () => number
  /** An integer in [lo, hi], both included. */
  readonly int: (lo: number, hi: number) => number
  readonly chance: (p: number) => boolean
  readonly pick: <T>(items: ReadonlyArray<T>) => T
  /** One of `choices`, each as likely as its weight. */
  readonly weighted: <T>(choices: ReadonlyArray<readonly [T, number]>) => T
  /** `n` random bytes. */
  readonly bytes: (n: number) => Buffer
  /** A new generator, independent of how much of this one is used later, for `label`. */
  readonly fork: (label: number | string) => Prng
}

/** Mixes two 32-bit values into one (murmur3's finalizer over their xor-combination). */
export const mix = (a: number, b: number): number => {
  let h = (a ^ Math.imul(b + 0x9e3779b9, 0x85ebca6b)) >>> 0
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

const labelHash = (label: number | string): number => {
  if (typeof label === "number") return label >>> 0
  let h = 0x811c9dc5
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193)
  return h >>> 0
}

/** A seed as the flags take it: a 32-bit unsigned integer, decimal or 0x-hex. */
export const parseSeed = (text: string): number => {
  const n = text.startsWith("0x") ? Number.parseInt(text.slice(2), 16) : Number(text)
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw new Error(`a seed is an integer 0..4294967295, got ${text}`)
  return n
}

export const randomSeed = (): number => (Math.random() * 0x100000000) >>> 0

export const prng = (seed: number): Prng => {
  let state = seed >>> 0
  const next = () => {
    state = (state + 0x6d2b79f5) >>> 0
    let t = state
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const int = (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1))
  return {
    seed,
    next,
    int,
    chance: (p) => next() < p,
    pick: (items) => {
      if (items.length === 0) throw new Error("pick from nothing")
      return items[Math.floor(next() * items.length)]!
    },
    weighted: (choices) => {
      const total = choices.reduce((sum, [, w]) => sum + w, 0)
      let x = next() * total
      for (const [value, w] of choices) {
        if (x < w) return value
        x -= w
      }
      return choices[choices.length - 1]![0]
    },
    bytes: (n) => {
      const out = Buffer.allocUnsafe(n)
      let i = 0
      for (; i + 4 <= n; i += 4) out.writeUInt32LE((next() * 4294967296) >>> 0, i)
      for (; i < n; i++) out[i] = Math.floor(next() * 256)
      return out
    },
    fork: (label) => prng(mix(seed, labelHash(label)))
  }
}
