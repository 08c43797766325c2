/**
 * Which relay URL a session dials next, among the configured ones (a pure function, so the rule
 * is tested on its own).
 *
 * In order of preference: a URL no other session aims at, other than the one this session last
 * dialled; then any URL no other session aims at; then any other than the last; then any. Within
 * the first set that is not empty, the session's home URL (`urls[session mod n]`) if it is there,
 * else one at random. So sessions spread over distinct URLs while there are enough, a session
 * that lost its relay (a drain, a crash) tries another free one first, and a session never joins
 * another's URL while a free one exists.
 */

export interface RelayChoiceInput {
  readonly urls: ReadonlyArray<string>
  /** The session's index. */
  readonly session: number
  /** The URLs other sessions aim at now. */
  readonly aimedByOthers: ReadonlySet<string>
  /** The URL of this session's previous attempt. */
  readonly last?: string | undefined
}

/** `random(n)` gives an integer in [0, n). */
export const chooseRelay = (input: RelayChoiceInput, random: (n: number) => number): string => {
  const { aimedByOthers, last, urls } = input
  const home = urls[input.session % urls.length]!
  const free = (url: string) => !aimedByOthers.has(url)
  const tiers: ReadonlyArray<(url: string) => boolean> = [
    (url) => free(url) && url !== last,
    free,
    (url) => url !== last,
    () => true
  ]
  for (const admits of tiers) {
    const choices = urls.filter(admits)
    if (choices.length === 0) continue
    return choices.includes(home) ? home : choices[random(choices.length)]!
  }
  return home
}
