export * from "./FuzzRunner.js"
export { type Prng, parseSeed, prng, randomSeed } from "./Prng.js"
