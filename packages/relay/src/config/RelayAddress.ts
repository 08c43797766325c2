import { Context, Deferred, Effect, Layer } from "effect"

export interface Address {
  /** The port the relay listens on (useful when it was started with port 0). */
  readonly port: number
  /** Where other relays reach this one to proxy a request. */
  readonly internalUrl: string
}

/**
 * Where this relay can be reached. It is known only once the server listens,
 * so parts built before the server (the tunnel registry) read it lazily.
 */
export class RelayAddress extends Context.Tag("effect-relay/RelayAddress")<RelayAddress, {
  readonly get: Effect.Effect<Address>
  readonly set: (address: Address) => Effect.Effect<void>
}>() {
  static layer = Layer.effect(
    RelayAddress,
    Effect.map(Deferred.make<Address>(), (known) =>
      RelayAddress.of({
        get: Deferred.await(known),
        set: (address) => Deferred.succeed(known, address).pipe(Effect.asVoid)
      }))
  )
}
